"""The web door: JSON API over real HTTP on 127.0.0.1, and the page in headless Chromium with a fake microphone."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shutil
import stat
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from voiceclone_core import audio
from voiceclone_core.config import Settings
from voiceclone_core.service import SpeechRequest, SpeechService, build_service
from voiceclone_core.web.app import start_web

from .conftest import PARAGRAPH

ROOT = Path(__file__).resolve().parent.parent


class WebServer:
    """The web door on a free loopback port, in its own event-loop thread."""

    def __init__(self, service: SpeechService) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.runner = self.call(start_web(service, "127.0.0.1", 0))
        self.token = service.api_token.current()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/"

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def close(self) -> None:
        self.call(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def web(settings: Settings, fake_engine):
    settings.web.max_upload_mb = 2
    service = build_service(settings, engine=fake_engine)
    server = WebServer(service)
    yield server, service
    server.close()
    service.close()


def request(server: WebServer, method: str, path: str, token: str | None = "", **kw: Any) -> tuple[int, str, bytes]:
    """An HTTP request with the server's token (``token=None``: without one; a string: that one)."""
    if token is not None:
        kw["headers"] = {"Authorization": f"Bearer {token or server.token}", **kw.get("headers", {})}

    async def go() -> tuple[int, str, bytes]:
        async with aiohttp.ClientSession() as session, session.request(method, server.url + path, **kw) as r:
            return r.status, r.content_type, await r.read()

    return server.call(go())


def upload(path: Path | None = None, data: bytes | None = None, ctype: str = "audio/wav", **fields: str):
    form = aiohttp.FormData()
    for k, v in fields.items():
        form.add_field(k, v)
    form.add_field("audio", data if data is not None else path.read_bytes(), filename="take.wav", content_type=ctype)
    return form


def test_health_passage_and_page(web) -> None:
    server, _ = web
    status, ctype, body = request(server, "GET", "api/health")
    assert status == 200 and ctype == "application/json" and b'"status": "ok"' in body and b'"voices": 0' in body
    status, _, body = request(server, "GET", "api/passage?language=zh")
    assert status == 200 and "洗衣机" in json.loads(body)["text"]
    status, ctype, body = request(server, "GET", "")
    assert status == 200 and ctype == "text/html" and b"Enroll your voice" in body
    assert b'fetch("/api' not in body and b"fetch(`/api" not in body  # relative URLs: works under ingress


def test_enroll_list_preview_delete(web, speech_wav: Path) -> None:
    server, service = web
    status, _, body = request(server, "POST", "api/check", data=upload(speech_wav))
    assert status == 200 and b'"verdict": "ok"' in body
    status, _, body = request(
        server, "POST", "api/voices", data=upload(speech_wav, name="Grace", consent="Grace", transcript=PARAGRAPH)
    )
    assert status == 201 and b'"id": "grace"' in body
    assert service.voice("grace").origin == "web"
    status, _, body = request(server, "GET", "api/voices")
    assert b'"name": "Grace"' in body and b'"given_by": "Grace"' in body
    status, ctype, body = request(server, "POST", "api/voices/grace/preview", json={"text": "Hello there."})
    assert status == 200 and ctype == "audio/wav"
    assert request(server, "POST", "api/voices/grace/preview", json=["not", "an", "object"])[0] == 400
    clip, sr = audio.decode(body)
    assert sr == 16000 and len(clip) > 0.05 * sr
    status, _, _ = request(server, "DELETE", "api/voices/grace")
    assert status == 204 and service.voices() == []
    status, _, body = request(server, "DELETE", "api/voices/grace")
    assert status == 404 and json.loads(body) == {"error": "unknown voice 'grace'", "code": "unknown_voice"}
    status, _, metrics = request(server, "GET", "api/metrics")
    assert status == 200 and b'"requests": 1' in metrics


def test_rejected_take_returns_the_report_and_saves_nothing(web, tmp_path: Path) -> None:
    server, service = web
    sr = 16000
    short = np.concatenate([np.zeros(sr), 0.3 * np.sin(2 * np.pi * 150 * np.arange(sr) / sr), np.zeros(sr)])
    data = audio.encode_wav(short.astype(np.float32), sr)
    status, _, body = request(server, "POST", "api/voices", data=upload(data=data, name="Tim", consent="Tim"))
    assert status == 422 and b"rejected" in body and b'"verdict": "reject"' in body and b"speech" in body
    assert json.loads(body)["code"] == "rejected" and service.voices() == []


def test_upload_limits_content_types_and_names(web, speech_wav: Path) -> None:
    server, service = web
    big = b"RIFF" + b"\0" * (3 * 1024 * 1024)
    status, _, _ = request(server, "POST", "api/voices", data=upload(data=big, name="Big", consent="B"))
    assert status == 413
    status, _, body = request(
        server, "POST", "api/voices", data=upload(speech_wav, ctype="text/html", name="X", consent="X")
    )
    assert status == 415 and b"audio file" in body
    status, _, _ = request(server, "POST", "api/voices", json={"name": "X"})
    assert status == 415
    status, _, body = request(server, "POST", "api/voices", data=upload(data=b"not audio", name="X", consent="X"))
    assert status == 400
    status, _, body = request(server, "POST", "api/voices", data=upload(speech_wav, name="X"))
    assert status == 400 and b"consent" in body
    for bad in ("..%2F..%2Fetc", "..", "Mum", "a%00b", "x" * 60):
        status, _, _ = request(server, "DELETE", f"api/voices/{bad}")
        assert status in (400, 404), bad
    status, _, _ = request(server, "POST", "api/voices", data=upload(speech_wav, name="Evil", id="../x", consent="E"))
    assert status == 400
    assert service.voices() == [] and not any(service.settings.data_dir.glob("x*"))


HEADLESS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def fake_microphone(wav: Path) -> tuple[str, ...]:
    """Chromium flags: grant the microphone without asking and feed it ``wav``."""
    return (
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
    )


def chromium_driver(profile: Path, *args: str) -> Any:
    """Debian's headless Chromium under selenium, with its profile in ``profile`` and extra flags ``args`` (the test
    is skipped where Chromium or its driver is not installed)."""
    browser = shutil.which("chromium") or "/usr/bin/chromium"
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (Path(browser).exists() and Path(driver).exists()):
        pytest.skip("Debian chromium and chromium-driver are not installed (scripts/setup.sh installs them)")
    pytest.importorskip("selenium")
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (*HEADLESS, f"--user-data-dir={profile}", *args):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))


def signed_in_page(driver: Any, server: WebServer) -> tuple[Any, Any]:
    """Open the enrollment page, give it the API token it asks for once, and wait for its passage; returns a
    ``WebDriverWait`` that looks again when the page has re-rendered an element, and ``driver.find_element``."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 60, ignored_exceptions=(StaleElementReferenceException,))
    find = driver.find_element
    driver.get(server.url)
    wait.until(lambda d: find(By.ID, "login").is_displayed())
    find(By.ID, "token").send_keys(server.token)
    find(By.ID, "use-token").click()
    wait.until(lambda d: "kitchen" in find(By.ID, "passage").text)
    return wait, find


@pytest.mark.slow
def test_page_records_checks_enrolls_and_previews_in_chromium(
    settings: Settings, classic_engine, speech_wav: Path, tmp_path: Path
) -> None:
    driver = chromium_driver(
        tmp_path / "chrome",
        *fake_microphone(speech_wav),
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=900,1300",
    )
    from selenium.webdriver.common.by import By

    service = build_service(settings, engine=classic_engine)
    server = WebServer(service)
    try:
        wait, find = signed_in_page(driver, server)
        find(By.ID, "name").send_keys("Grace")
        find(By.ID, "consent").send_keys("Grace Hopper")
        find(By.ID, "agree").click()
        # a too-short take is rejected with its reason
        find(By.ID, "record").click()
        time.sleep(1.0)
        find(By.ID, "stop").click()
        wait.until(lambda d: find(By.ID, "verdict").text.strip() not in ("", "…"))
        assert "rejected" in find(By.ID, "verdict").text
        assert "speech" in find(By.ID, "report").text and not find(By.ID, "enroll").is_enabled()
        # a proper take: report, enroll, listed, preview audio
        find(By.ID, "record").click()
        time.sleep(9.0)
        find(By.ID, "stop").click()
        wait.until(lambda d: "Good take" in find(By.ID, "verdict").text or "warnings" in find(By.ID, "verdict").text)
        assert "s of speech" in find(By.ID, "report").text
        wait.until(lambda d: find(By.ID, "enroll").is_enabled())
        find(By.ID, "enroll").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-voice="grace"]'))
        assert "Enrolled" in find(By.ID, "verdict").text
        assert service.voice("grace").consent.given_by == "Grace Hopper"
        driver.find_element(By.CSS_SELECTOR, '[data-voice="grace"] .preview').click()
        wait.until(lambda d: int(find(By.ID, "player").get_attribute("data-bytes") or 0) > 10000)
        # "Was this made here?": speech this server made carries the mark, the family member's own recording not
        said = asyncio.run(service.synthesize(SpeechRequest("Dinner is ready.", voice="grace")))
        audio.write_wav(tmp_path / "made-here.wav", said.audio, said.sample_rate)
        for path, verdict in ((tmp_path / "made-here.wav", "Made by an AI voice"), (speech_wav, "No mark found")):
            find(By.ID, "detect-file").send_keys(str(path))
            find(By.ID, "detect").click()
            wait.until(
                lambda d, v=verdict: d.find_elements(By.ID, "detect-verdict") and v in find(By.ID, "detected").text
            )
        png = driver.get_screenshot_as_png()
    finally:
        driver.quit()
        server.close()
        service.close()
    from struct import unpack

    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    head = io.BytesIO(png[:24])
    head.seek(16)
    width, height = unpack(">II", head.read(8))
    assert width >= 600 and height >= 600
    # VOICECLONE_SCREENSHOT=docs/enrollment-page.png refreshes the README's picture of the page
    if os.environ.get("VOICECLONE_SCREENSHOT"):
        (ROOT / os.environ["VOICECLONE_SCREENSHOT"]).write_bytes(png)


def test_health_says_who_the_server_is_and_why_the_engine_cannot_start(settings: Settings) -> None:
    """A configured engine whose model is not installed: the API still answers, 503 with the reason and the model,
    and the server keeps its id (the integration raises a repair from this)."""
    settings.engine.name = "pocket"
    service = build_service(settings)
    server = WebServer(service)
    try:
        status, _, body = request(server, "GET", "api/health")
        health = json.loads(body)
        assert status == 503 and health["status"] == "unavailable"
        assert health["missing_models"] == ["pocket-tts-english"]
        assert "cannot start" in health["error"] and "voiceclone models download" in health["error"]
        assert health["server_id"] == service.server_id and re.fullmatch(r"[0-9a-f]{32}", health["server_id"])
        assert health["version"] == service.version != ""
        status, _, body = request(server, "POST", "api/voices/x/preview", json={"text": "Hello."})
        assert status >= 400 and json.loads(body)["code"]  # every request says why too, none hangs
    finally:
        server.close()
        service.close()
    again = build_service(settings)
    assert again.server_id == service.server_id  # kept in the data folder across restarts
    again.close()


def test_server_id_file_is_private_and_a_damaged_one_is_replaced(tmp_path: Path) -> None:
    from voiceclone_core.service.identity import server_id

    first = server_id(tmp_path)
    path = tmp_path / "server_id"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and server_id(tmp_path) == first
    path.write_text("garbage")
    second = server_id(tmp_path)
    assert second != first and re.fullmatch(r"[0-9a-f]{32}", second) and path.read_text().strip() == second
