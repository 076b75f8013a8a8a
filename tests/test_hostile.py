"""Hostile input at the HTTP and MQTT doors: generated requests and payloads, each answered with a clear error
(HTTP 4xx with a JSON reason, an MQTT error result), never a 500, a hang or a silent drop; the door still healthy
afterwards. (The Wyoming door's generated cases are in tests/test_wyoming_hostile.py.)"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from yarl import URL

from voiceclone_core.config import Settings

from .conftest import PARAGRAPH, service_with
from .test_mqtt import Broker, HomeAssistantStub, Running, Watcher, broker, ha  # noqa: F401  (fixtures)
from .test_web import WebServer, request

FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
junk_text = st.text(max_size=60)
voice_ids = st.one_of(st.just("mum"), st.just("nobody"), st.text(max_size=20), st.just("../../etc/passwd"))
paths = st.one_of(
    st.sampled_from(["api/voices", "api/check", "api/detect", "api/metrics", "api/passage", "api/health", ""]),
    voice_ids.map(lambda v: f"api/voices/{v}"),
    voice_ids.map(lambda v: f"api/voices/{v}/preview"),
    junk_text.map(lambda t: f"api/passage?language={t}"),
    junk_text.map(lambda t: f"api/{t}"),
)
content_types = st.sampled_from(
    ["application/json", "multipart/form-data", "multipart/form-data; boundary=x", "text/plain", "audio/wav", ""]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
bodies = st.one_of(
    st.binary(max_size=2048),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"text": json_values, "language": json_values}).map(lambda v: json.dumps(v).encode()),
)


@pytest.fixture
def web(settings: Settings, fake_engine, speech_wav: Path):
    settings.web.previews_per_minute = settings.web.enrollments_per_hour = 100000  # exercise handlers, not limits
    settings.web.max_upload_mb = 1
    service = service_with(settings, fake_engine, speech_wav, voice_id="mum")
    server = WebServer(service)
    yield server, service
    server.close()
    service.close()


@hsettings(max_examples=250, deadline=None, suppress_health_check=FIXTURES)
@given(
    method=st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH"]),
    path=paths,
    ctype=content_types,
    body=bodies,
    with_token=st.booleans(),
)
def test_generated_http_requests_get_a_clear_answer(web, method, path, ctype, body, with_token) -> None:
    server, service = web
    headers = {"Content-Type": ctype} if ctype else {}
    before = [(p.id, p.revision) for p in service.voices()]
    status, rtype, answer = request(server, method, path, token="" if with_token else None, headers=headers, data=body)
    assert status < 500, (method, path, ctype, body[:80], answer[:200])
    if status >= 400 and URL(server.url + path).path.startswith("/api/"):  # (the client resolves "..")
        assert rtype == "application/json" and json.loads(answer)["error"], (method, path, answer[:200])
    if not with_token:  # nothing changes without the token
        assert [(p.id, p.revision) for p in service.voices()] == before


def test_the_web_door_is_healthy_after_hostile_requests(web) -> None:
    server, _ = web
    for _ in range(20):
        request(server, "POST", "api/voices", data=b"\x00" * 1000, headers={"Content-Type": "multipart/form-data"})
    assert request(server, "GET", "api/health")[0] == 200
    status, ctype, _ = request(server, "POST", "api/voices/mum/preview", json={"text": "Still here."})
    assert status == 200 and ctype == "audio/wav"


mqtt_payloads = st.one_of(
    st.binary(max_size=512),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {},
        optional={
            "text": st.one_of(json_values, st.just("Dinner is ready."), st.text(min_size=1000, max_size=1200)),
            "voice": st.one_of(json_values, voice_ids),
            "target": st.one_of(json_values, st.just("media_player.kitchen"), st.just(["media_player.k", 5])),
            "speed": json_values,
            "volume": json_values,
            "language": st.one_of(json_values, st.just("tlh")),
            "id": json_values,
        },
    ).map(lambda v: json.dumps(v).encode()),
)


@pytest.fixture
def bridge(settings: Settings, fake_engine, speech_wav: Path, broker: Broker, ha: HomeAssistantStub, tmp_path: Path):  # noqa: F811
    from voiceclone_core.homeassistant import HomeAssistantClient
    from voiceclone_core.mqtt.bridge import MqttBridge

    settings.mqtt.host, settings.mqtt.port = "127.0.0.1", broker.port
    settings.homeassistant.url, settings.homeassistant.token = ha.url, "t"
    settings.homeassistant.media_dir = tmp_path / "media" / "voiceclone"
    settings.speech.max_text_chars = 1000
    service = service_with(settings, fake_engine, speech_wav, voice_id="mum")
    watcher = Watcher(broker.port)
    running = Running(MqttBridge(service, HomeAssistantClient.from_settings(settings)))
    watcher.wait("voiceclone/availability", lambda p: p == b"online")
    yield watcher
    running.stop()
    watcher.close()
    service.close()


def _results(watcher: Watcher) -> int:
    with watcher.lock:
        return sum(1 for topic, *_ in watcher.messages if topic == "voiceclone/speak/result")


@hsettings(max_examples=250, deadline=None, suppress_health_check=FIXTURES)
@given(payload=mqtt_payloads)
def test_generated_mqtt_commands_each_get_a_result(bridge, payload: bytes) -> None:
    watcher = bridge
    before = _results(watcher)
    watcher.publish("voiceclone/speak", payload)
    deadline = time.monotonic() + 10
    while _results(watcher) == before:
        assert time.monotonic() < deadline, f"no result for {payload[:120]!r}"
        time.sleep(0.005)
    with watcher.lock:
        last = next(p for t, p, *_ in reversed(watcher.messages) if t == "voiceclone/speak/result")
    result = json.loads(last)
    assert result["status"] in ("done", "error")
    if result["status"] == "error":
        assert result["error"] and result["code"]


def test_the_bridge_still_speaks_after_hostile_commands(bridge, ha: HomeAssistantStub) -> None:  # noqa: F811
    watcher = bridge
    for junk in (b"\xff\xfe", b"[]", b'{"text": 5}', b"{" * 10000):
        watcher.publish("voiceclone/speak", junk)
    watcher.publish("voiceclone/speak", json.dumps({"text": PARAGRAPH[:80], "target": "media_player.k", "id": "ok"}))
    result = json.loads(watcher.wait("voiceclone/speak/result", lambda p: b'"id": "ok"' in p))
    assert result["status"] == "done" and ha.requests
