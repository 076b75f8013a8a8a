"""The web door's guard: the API's token, add-on ingress, same-origin writes, rate limits, malformed uploads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from voiceclone_core import audio
from voiceclone_core.config import Settings
from voiceclone_core.service import build_service
from voiceclone_core.watermark import Watermarker

from .conftest import PARAGRAPH
from .test_web import WebServer, request, upload, web  # noqa: F401  (web: a fixture)


def test_the_api_needs_the_token_but_the_page_and_health_do_not(web, speech_wav: Path) -> None:  # noqa: F811
    server, service = web
    for method, path in (
        ("GET", "api/voices"),
        ("GET", "api/metrics"),
        ("DELETE", "api/voices/x"),
        ("GET", "api/passage"),
    ):
        status, _, body = request(server, method, path, token=None)
        assert status == 401 and json.loads(body)["code"] == "unauthorized", path
        assert request(server, method, path, token="wrong-" + server.token)[0] == 401, path
    status, _, _ = request(server, "POST", "api/voices", token=None, data=upload(speech_wav, name="Eve", consent="Eve"))
    assert status == 401 and service.voices() == []  # nothing enrolled without the token
    assert request(server, "GET", "", token=None)[0] == 200
    assert request(server, "GET", "api/health", token=None)[0] == 200
    assert request(server, "GET", "api/voices")[0] == 200


def test_a_rotated_token_works_at_once_and_the_old_one_stops(web) -> None:  # noqa: F811
    server, service = web
    old = server.token
    new = service.api_token.rotate()
    assert new != old and len(new) >= 32
    assert request(server, "GET", "api/voices", token=old)[0] == 401
    assert request(server, "GET", "api/voices", token=new)[0] == 200
    path = service.settings.data_dir / "api_token"
    assert path.stat().st_mode & 0o077 == 0  # private to the service


def test_another_sites_page_cannot_change_voices(web, speech_wav: Path) -> None:  # noqa: F811
    """Cross-site request forgery: a browser names the page's origin; a foreign one is refused before anything."""
    server, service = web
    evil = {"Origin": "http://evil.example"}
    form = upload(speech_wav, name="Grace", consent="Grace", transcript=PARAGRAPH)
    status, _, body = request(server, "POST", "api/voices", headers=evil, data=form)
    assert status == 403 and json.loads(body)["code"] == "forbidden_origin" and service.voices() == []
    assert request(server, "DELETE", "api/voices/grace", headers=evil)[0] == 403
    own = {"Origin": server.url.rstrip("/")}
    form = upload(speech_wav, name="Grace", consent="Grace", transcript=PARAGRAPH)
    assert request(server, "POST", "api/voices", headers=own, data=form)[0] == 201
    assert request(server, "GET", "api/voices", headers=evil)[0] == 200  # reading is not changing (and CORS hides it)


def test_ingress_requests_are_trusted_only_from_the_supervisors_proxy(settings: Settings, fake_engine) -> None:
    settings.web.ingress_proxy = "127.0.0.1"  # the test client plays the Supervisor's proxy
    service = build_service(settings, engine=fake_engine)
    server = WebServer(service)
    try:
        assert request(server, "GET", "api/voices", token=None)[0] == 200
        ha = {"Origin": "http://homeassistant.local:8123", "X-Forwarded-Host": "homeassistant.local:8123"}
        assert request(server, "DELETE", "api/voices/nobody", token=None, headers=ha)[0] == 404  # allowed, unknown
        forged = {"Origin": "http://evil.example", "X-Forwarded-Host": "homeassistant.local:8123"}
        assert request(server, "DELETE", "api/voices/nobody", token=None, headers=forged)[0] == 403
    finally:
        server.close()
        service.close()
    settings.web.ingress_proxy = "172.30.32.2"  # someone else is the proxy: loopback needs the token again
    service = build_service(settings, engine=fake_engine)
    server = WebServer(service)
    try:
        assert request(server, "GET", "api/voices", token=None)[0] == 401
    finally:
        server.close()
        service.close()


def test_previews_are_rate_limited_per_client(settings: Settings, fake_engine, speech_wav: Path) -> None:
    settings.web.previews_per_minute = 2
    service = build_service(settings, engine=fake_engine)
    service.enroll("Grace", speech_wav, consent="Grace", transcript=PARAGRAPH)
    server = WebServer(service)
    try:
        statuses = [request(server, "POST", "api/voices/grace/preview", json={"text": "Hi."})[0] for _ in range(3)]
        assert statuses == [200, 200, 429]
    finally:
        server.close()
        service.close()


MALFORMED = [
    ("multipart/form-data", b"--zzz\r\nContent-Disposition: form-data; name=audio\r\n\r\nxx\r\n--zzz--"),  # no boundary
    ("multipart/form-data; boundary=zzz", b"no boundary anywhere in here"),
    ("multipart/form-data; boundary=zzz", b""),
    ("multipart/form-data; boundary=" + "z" * 5000, b"--zzz\r\n"),
    (
        "multipart/form-data; boundary=zzz",
        b"--zzz\r\nContent-Disposition: form-data; name=name\r\n\r\n\xff\xfe\r\n--zzz--\r\n",
    ),
]


@pytest.mark.parametrize(("ctype", "body"), MALFORMED)
def test_malformed_uploads_get_a_4xx_with_a_reason(web, ctype: str, body: bytes) -> None:  # noqa: F811
    server, service = web
    for path in ("api/voices", "api/check"):
        status, rtype, answer = request(server, "POST", path, data=body, headers={"Content-Type": ctype})
        assert 400 <= status < 500 and rtype == "application/json", (path, status, answer[:200])
        assert json.loads(answer)["error"]
    assert service.voices() == []


def test_a_long_transcript_is_refused_not_cut(web, speech_wav: Path) -> None:  # noqa: F811
    server, service = web
    form = upload(speech_wav, name="Grace", consent="Grace", transcript="word " * 20000)  # 100 KB
    status, _, body = request(server, "POST", "api/voices", data=form)
    assert status == 413 and "transcript" in json.loads(body)["error"] and service.voices() == []
    many = upload(speech_wav, name="Grace", consent="Grace")
    for i in range(60):  # 60 unknown 60 KB fields: the whole body is bounded, not only each part
        many.add_field(f"junk{i}", "x" * 60000)
    status, _, _ = request(server, "POST", "api/voices", data=many)
    assert status == 413 and service.voices() == []


def test_every_answer_carries_security_headers(web) -> None:  # noqa: F811
    server, _ = web

    async def headers() -> dict[str, str]:
        import aiohttp

        async with aiohttp.ClientSession() as session, session.get(server.url) as r:
            return dict(r.headers)

    got = server.call(headers())
    assert "frame-ancestors 'self'" in got["Content-Security-Policy"] and got["X-Content-Type-Options"] == "nosniff"


def test_the_token_command_shows_and_rotates_the_token(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    from voiceclone_core.cli import main

    data = ["--data-dir", str(settings.data_dir)]
    assert main(["token", *data]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["token", *data]) == 0 and capsys.readouterr().out.strip() == first  # stable
    assert main(["token", "--rotate", *data]) == 0
    rotated = capsys.readouterr().out.strip()
    assert rotated != first and len(rotated) >= 32
    assert (settings.data_dir / "api_token").read_text().strip() == rotated


HOSTILE_PAGE = """<!doctype html><script>
window.results = [];
async function attack(api, wav) {
  const bytes = Uint8Array.from(atob(wav), c => c.charCodeAt(0));
  const form = new FormData();
  form.append("name", "Mum"); form.append("id", "mum"); form.append("consent", "attacker");
  form.append("audio", new Blob([bytes], {type: "audio/wav"}), "x.wav");
  for (const [method, path, body] of [["POST", "api/voices", form], ["DELETE", "api/voices/mum", null],
                                      ["POST", "api/voices/mum/preview", null]]) {
    try {
      await fetch(api + path, {method, body, mode: "no-cors", credentials: "include"});
      window.results.push("sent");
    } catch (e) { window.results.push("blocked"); }
  }
  window.done = true;
}
</script>"""


@pytest.mark.slow
@pytest.mark.parametrize("ingress", [False, True])
def test_a_page_on_another_origin_cannot_enroll_replace_or_delete(
    settings: Settings, fake_engine, speech_wav: Path, other_speech_wav: Path, tmp_path: Path, ingress: bool
) -> None:
    """Headless Chromium opens a hostile page served from another origin, which fires enroll (replacing Mum), delete
    and preview at the API. Without the token (``ingress=False``) and even where no token is needed because the
    request looks like it came through ingress (``ingress=True``), nothing changes: Mum's voice is still hers."""
    import base64

    from aiohttp import web as aioweb
    from selenium.webdriver.support.ui import WebDriverWait

    from .test_web import chromium_driver

    driver = chromium_driver(tmp_path / "chrome")
    if ingress:
        settings.web.ingress_proxy = "127.0.0.1"
    service = build_service(settings, engine=fake_engine)
    service.enroll("Mum", speech_wav, consent="Mum", transcript=PARAGRAPH, voice_id="mum")
    before = service.voice("mum")
    server = WebServer(service)
    hostile = aioweb.Application()
    hostile.router.add_get("/", lambda _: aioweb.Response(text=HOSTILE_PAGE, content_type="text/html"))
    runner = server.call(_serve(hostile))
    evil = f"http://localhost:{runner.addresses[0][1]}/"  # another origin: another host name and port
    try:
        driver.get(evil)
        wav = base64.b64encode(other_speech_wav.read_bytes()).decode()
        driver.execute_script("attack(arguments[0], arguments[1])", server.url, wav)
        WebDriverWait(driver, 30).until(lambda d: d.execute_script("return window.done === true"))
        assert driver.execute_script("return window.results.length") == 3
    finally:
        driver.quit()
        server.call(runner.cleanup())
        server.close()
    after = service.voice("mum")
    assert (after.revision, after.consent.given_by) == (before.revision, "Mum")  # not replaced, not deleted
    assert [p.id for p in service.voices()] == ["mum"]
    service.close()


async def _serve(app) -> Any:
    from aiohttp import web as aioweb

    runner = aioweb.AppRunner(app, access_log=None)
    await runner.setup()
    await aioweb.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


def _raw(server: WebServer) -> tuple[str, int]:
    return "127.0.0.1", int(server.url.rsplit(":", 1)[1].strip("/"))


def test_slow_headers_get_408_and_a_close(settings: Settings, fake_engine) -> None:
    import socket
    import time

    settings.web.header_timeout_s = 0.5
    service = build_service(settings, engine=fake_engine)
    server = WebServer(service)
    try:
        with socket.create_connection(_raw(server), timeout=5) as s:
            s.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")  # ... and the rest never comes
            started = time.monotonic()
            answer = s.recv(4096)
            assert answer.startswith(b"HTTP/1.1 408") and b'"code": "timeout"' in answer
            assert s.recv(4096) == b"" and time.monotonic() - started < 4  # closed, promptly
        assert request(server, "GET", "api/health")[0] == 200  # whole requests are unaffected
    finally:
        server.close()
        service.close()


def test_connections_from_one_address_are_capped(settings: Settings, fake_engine) -> None:
    import socket

    settings.web.max_connections_per_client = 3
    service = build_service(settings, engine=fake_engine)
    server = WebServer(service)
    held = [socket.create_connection(_raw(server), timeout=5) for _ in range(3)]
    try:
        with socket.create_connection(_raw(server), timeout=5) as extra:
            answer = extra.recv(4096)
            assert answer.startswith(b"HTTP/1.1 429") and b"too many connections" in answer
        for s in held:
            s.close()
        import time

        deadline = time.monotonic() + 5
        while request(server, "GET", "api/health")[0] != 200:  # the slots come back once they close
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        for s in held:
            s.close()
        server.close()
        service.close()


def test_ingress_rate_limits_follow_the_browser_home_assistant_saw(settings: Settings, fake_engine) -> None:
    """Through ingress every request comes from the Supervisor: limits key on the address Home Assistant saw (the
    entry before the Supervisor's), so a browser cannot dodge them by claiming other addresses."""
    from voiceclone_core.web.guard import Guard

    settings.web.ingress_proxy = "127.0.0.1"
    service = build_service(settings, engine=fake_engine)
    guard = Guard(settings.web, service.api_token)
    service.close()

    class Seen:
        remote = "127.0.0.1"

        def __init__(self, forwarded: str) -> None:
            self.headers = {"X-Forwarded-For": forwarded}

    assert guard.client(Seen("1.2.3.4, 192.168.1.20, 172.30.32.1")) == "192.168.1.20"  # spoofed first entry ignored
    assert guard.client(Seen("192.168.1.20, 172.30.32.1")) == "192.168.1.20"
    assert guard.client(Seen("")) == "127.0.0.1"


def test_detect_needs_the_token_is_bounded_and_tells_marked_from_unmarked(
    settings: Settings, fake_engine, speech_wav: Path
) -> None:
    """``api/detect`` is guarded like the rest of the API (token, same origin, upload limit, rate limit) and answers
    whether a recording carries the mark; nothing is kept."""
    settings.web.max_upload_mb = 2
    settings.web.previews_per_minute = 4
    service = build_service(settings, engine=fake_engine)
    server = WebServer(service)
    x, sr = audio.decode(speech_wav)
    marked = audio.encode_wav(Watermarker().mark(x, sr), sr)
    try:
        assert request(server, "POST", "api/detect", token=None, data=upload(data=marked))[0] == 401
        evil = {"Origin": "http://evil.example"}
        assert request(server, "POST", "api/detect", headers=evil, data=upload(data=marked))[0] == 403
        status, _, body = request(server, "POST", "api/detect", data=upload(speech_wav))
        assert status == 200 and json.loads(body)["marked"] is False
        status, _, body = request(server, "POST", "api/detect", data=upload(data=marked))
        answer = json.loads(body)
        assert status == 200 and answer["marked"] is True and answer["confidence"] > 0.9
        assert answer["method"] == "perth-implicit" and answer["payload"] is None
        assert abs(answer["seconds"] - len(x) / sr) < 0.05
        big = b"RIFF" + b"\0" * (3 * 1024 * 1024)
        assert request(server, "POST", "api/detect", data=upload(data=big))[0] == 413
        status, _, body = request(server, "POST", "api/detect", data=upload(data=b"not audio at all"))
        assert status == 400 and json.loads(body)["code"] == "invalid"
        assert request(server, "POST", "api/detect", data=upload(data=marked))[0] == 429  # the fifth in a minute
        assert service.voices() == [] and not any(service.settings.cache_dir.glob("*/*"))
    finally:
        server.close()
        service.close()
