"""The MQTT bridge's announce path against a real Home Assistant: Mosquitto, `voiceclone serve`, HA's REST API.

A client publishes on ``voiceclone/speak``; the server renders the clip into Home Assistant's media folder and calls
``media_player.play_media`` over the REST API of the harness's ``hass``, whose HTTP server really listens on
127.0.0.1, with a long-lived access token made by Home Assistant's auth. The media-source id the player gets must
resolve through ``media_source`` to a URL that Home Assistant serves as the clip.

The MQTT client runs under the server's interpreter (it has paho-mqtt), so the harness needs nothing more.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import io
import json
import math
import os
import shutil
import subprocess
import wave
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from homeassistant.auth.const import GROUP_ID_ADMIN
from homeassistant.auth.models import TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN, User
from homeassistant.components import media_source
from homeassistant.components.media_player import (
    MediaPlayerEntity,
    MediaPlayerEntityFeature,
    MediaPlayerState,
    async_process_play_media_url,
)
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import setup_test_component_platform

from .conftest import ROOT, SERVER_PYTHON, enroll_mum, free_port, server_env, wait_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
PLAYER = "media_player.kitchen"
MEDIA_SOURCE = "media-source://media_source/local/voiceclone"
TIMEOUT = 30.0  # seconds, for any one thing to happen

# The test's MQTT client, run by the server's interpreter: prints what arrives on the bridge's availability and
# result topics as JSON lines ("$subscribed" once subscribed); reads {"topic", "payload", "seq"} lines to publish
# (answering "$published" with the seq once the broker has it); exits at the end of its input.
MQTT_CLIENT = """
import json, sys, threading
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

lock = threading.Lock()

def say(topic, payload):
    with lock:
        print(json.dumps({"topic": topic, "payload": payload}), flush=True)

client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="voiceclone-test-client")
client.on_connect = lambda c, *a: c.subscribe([("voiceclone/availability", 1), ("voiceclone/speak/result", 1)])
client.on_subscribe = lambda *a: say("$subscribed", "")
client.on_message = lambda c, u, m: say(m.topic, m.payload.decode("utf-8", "replace"))
client.connect("127.0.0.1", int(sys.argv[1]))
client.loop_start()
for line in sys.stdin:
    command = json.loads(line)
    client.publish(command["topic"], command["payload"], qos=1).wait_for_publish(10)
    say("$published", command["seq"])
client.disconnect()
client.loop_stop()
"""


class RecordingPlayer(MediaPlayerEntity):
    """A media player that can announce and records what it is asked to play."""

    _attr_name = "Kitchen"
    _attr_state = MediaPlayerState.IDLE
    _attr_supported_features = MediaPlayerEntityFeature.PLAY_MEDIA | MediaPlayerEntityFeature.MEDIA_ANNOUNCE

    def __init__(self) -> None:
        self.entity_id = PLAYER
        self.calls: list[dict[str, Any]] = []

    async def async_play_media(self, media_type: str, media_id: str, **kwargs: Any) -> None:
        user_id = self._context.user_id if self._context else None  # who called the service
        self.calls.append({"media_type": media_type, "media_id": media_id, "user_id": user_id, **kwargs})


@dataclass
class RealHomeAssistant:
    """The test's ``hass`` as the server sees it: an HTTP URL, a token, a media folder and a player."""

    hass: HomeAssistant
    url: str
    media: Path
    player: RecordingPlayer
    user: User
    token: str


async def wait_listening(port: int, timeout: float = TIMEOUT, alive: Callable[[], bool] = lambda: True) -> None:
    """Wait, without blocking the event loop, until something accepts connections on 127.0.0.1:port."""
    async with asyncio.timeout(timeout):
        while True:
            assert alive(), f"the process that should listen on port {port} has exited"
            with contextlib.suppress(OSError):
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
                return
            await asyncio.sleep(0.05)


@pytest.fixture
def disable_http_server() -> None:
    """Newer harnesses patch HA's HTTP server out for every test (an autouse fixture of this name): these tests need
    it listening, so the fixture is overridden with one that does nothing."""


@pytest.fixture
async def home_assistant(hass: HomeAssistant, tmp_path: Path) -> RealHomeAssistant:
    """``hass`` serving HTTP on a real loopback port: REST API, media source over ``tmp_path/media``, a player."""
    media = tmp_path / "media"
    media.mkdir()
    hass.config.media_dirs = {"local": str(media)}  # before media_source loads: it reads them at set-up
    port = free_port()
    assert await async_setup_component(hass, "http", {"http": {"server_host": ["127.0.0.1"], "server_port": port}})
    assert await async_setup_component(hass, "api", {})
    assert await async_setup_component(hass, "media_source", {})
    player = RecordingPlayer()
    setup_test_component_platform(hass, "media_player", [player])
    assert await async_setup_component(hass, "media_player", {"media_player": {"platform": "test"}})
    # The http component starts its server on EVENT_HOMEASSISTANT_START (or once `frontend` is set up); the harness's
    # hass is "running" without ever having started, so finish the start-up as bootstrap does.
    await hass.async_start()
    await hass.async_block_till_done()
    await wait_listening(port)
    assert hass.states.get(PLAYER) is not None
    # A long-lived access token, as the profile page makes one (auth/long_lived_access_token), for an administrator
    # who is not the owner (the first user made is; an owner cannot be deactivated).
    await hass.auth.async_create_user("Owner", group_ids=[GROUP_ID_ADMIN])
    user = await hass.auth.async_create_user("VoiceClone", group_ids=[GROUP_ID_ADMIN])
    assert not user.is_owner
    refresh_token = await hass.auth.async_create_refresh_token(
        user,
        client_name="VoiceClone MQTT bridge",
        token_type=TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN,
        access_token_expiration=timedelta(days=365),
    )
    token = hass.auth.async_create_access_token(refresh_token)
    return RealHomeAssistant(hass, f"http://127.0.0.1:{port}", media, player, user, token)


@pytest.fixture(scope="module")
def voice_data(tmp_path_factory: pytest.TempPathFactory, sample_wav: Path) -> Path:
    """A data folder with the voice ``mum`` enrolled (through the CLI), copied for every server of this module."""
    if not SERVER_PYTHON.exists():
        pytest.skip(f"{SERVER_PYTHON} missing: run scripts/setup.sh")
    if not os.path.exists(MOSQUITTO):
        pytest.skip("mosquitto is not installed (scripts/setup.sh installs it)")
    data = tmp_path_factory.mktemp("voiceclone-mqtt-data")
    enroll_mum(data, sample_wav)
    return data


@pytest.fixture
def broker(voice_data: Path, tmp_path: Path) -> Iterator[int]:
    """A private Mosquitto on a free loopback port; its port."""
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc, timeout=10)
        yield port
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class MqttClient:
    """The test's MQTT client process (see ``MQTT_CLIENT``) and everything it has received so far."""

    proc: asyncio.subprocess.Process
    messages: list[tuple[str, str]] = field(default_factory=list)
    sent: int = 0

    async def wait(self, topic: str, predicate: Callable[[str], bool] = lambda p: True) -> str:
        """The first payload on ``topic`` that matches, received so far or within ``TIMEOUT`` seconds."""
        assert self.proc.stdout is not None
        index = 0
        try:
            async with asyncio.timeout(TIMEOUT):
                while True:
                    for seen, payload in self.messages[index:]:
                        if seen == topic and predicate(payload):
                            return payload
                    index = len(self.messages)
                    line = await self.proc.stdout.readline()
                    if not line:
                        raise AssertionError(f"the MQTT client exited with {await self.proc.wait()}")
                    message = json.loads(line)
                    self.messages.append((message["topic"], message["payload"]))
        except TimeoutError:
            raise AssertionError(f"nothing on {topic} within {TIMEOUT} s; received {self.messages}") from None

    async def publish(self, topic: str, payload: str) -> None:
        assert self.proc.stdin is not None
        self.sent += 1
        seq = str(self.sent)
        self.proc.stdin.write(json.dumps({"topic": topic, "payload": payload, "seq": seq}).encode() + b"\n")
        await self.proc.stdin.drain()
        await self.wait("$published", lambda p: p == seq)

    async def speak(self, text: str, request_id: str) -> dict[str, Any]:
        """Publish a speak command for ``PLAYER`` and return its result."""
        command = {"text": text, "voice": "mum", "target": PLAYER, "id": request_id}
        await self.publish("voiceclone/speak", json.dumps(command))
        return json.loads(await self.wait("voiceclone/speak/result", lambda p: json.loads(p).get("id") == request_id))


@pytest.fixture
async def mqtt(broker: int) -> AsyncIterator[MqttClient]:
    proc = await asyncio.create_subprocess_exec(
        str(SERVER_PYTHON),
        "-c",
        MQTT_CLIENT,
        str(broker),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=server_env(),
        cwd=ROOT,
    )
    client = MqttClient(proc)
    try:
        await client.wait("$subscribed")
        yield client
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@dataclass
class RunningServer:
    proc: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


StartServer = Callable[[str], Awaitable[RunningServer]]


@pytest.fixture
async def start_server(
    home_assistant: RealHomeAssistant, broker: int, mqtt: MqttClient, voice_data: Path, tmp_path: Path
) -> AsyncIterator[StartServer]:
    """Starts `voiceclone serve` with the MQTT bridge on ``broker``, talking to ``home_assistant`` with a token."""
    procs: list[subprocess.Popen] = []

    async def start(token: str) -> RunningServer:
        data = tmp_path / f"voiceclone-data-{len(procs)}"
        shutil.copytree(voice_data, data)
        settings = {
            "web.enabled": "false",
            "mqtt.host": "127.0.0.1",
            "mqtt.port": str(broker),
            "homeassistant.url": home_assistant.url,
            "homeassistant.media_dir": str(home_assistant.media / "voiceclone"),
            "homeassistant.media_source": MEDIA_SOURCE,
        }
        port = free_port()
        log = tmp_path / f"server-{len(procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    str(SERVER_PYTHON),
                    "-m",
                    "voiceclone_core.cli",
                    "serve",
                    "--uri",
                    f"tcp://127.0.0.1:{port}",
                    "--no-zeroconf",
                    "--data-dir",
                    str(data),
                    *[arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")],
                ],
                env={**server_env(), "VOICECLONE_HOMEASSISTANT__TOKEN": token},  # not on the command line
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        procs.append(proc)
        server = RunningServer(proc, log)
        try:
            await wait_listening(port, 60, server.alive)
            await mqtt.wait("voiceclone/availability", lambda p: p == "online")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nserver log:\n{server.log_tail()}") from None
        return server

    try:
        yield start
    finally:
        for proc in procs:
            stop(proc)


def check_wav(data: bytes, duration_s: float) -> None:
    """A RIFF/WAVE file of 16-bit mono speech lasting ``duration_s``: not silent, not clipped to nothing."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        rate, frames = w.getframerate(), w.getnframes()
        samples = array.array("h", w.readframes(frames))
    assert rate in (16000, 22050, 24000)
    assert frames / rate == pytest.approx(duration_s, abs=0.02)
    assert 0.8 < frames / rate < 6  # six words
    rms = math.sqrt(sum(s * s for s in samples) / len(samples))
    assert rms > 300 and max(map(abs, samples)) > 3000  # speech, not silence (16-bit full scale is 32767)


async def test_speak_command_is_announced_on_a_home_assistant_player(
    home_assistant: RealHomeAssistant, start_server: StartServer, mqtt: MqttClient
) -> None:
    ha = home_assistant
    server = await start_server(ha.token)
    result = await mqtt.speak("The washing machine is done.", "req-1")
    assert result["status"] == "done" and result["id"] == "req-1", f"{result}\n{server.log_tail()}"
    media_id = result["media_content_id"]
    assert media_id.startswith(f"{MEDIA_SOURCE}/mum-") and media_id.endswith(".wav")
    # Home Assistant ran media_player.play_media on the entity, as an announcement
    assert len(ha.player.calls) == 1
    call = ha.player.calls[0]
    assert (call["media_type"], call["media_id"], call["announce"]) == ("music", media_id, True)
    assert call["user_id"] == ha.user.id  # over the REST API, authenticated by the long-lived token
    # ... and resolves the id through its media source to a URL it serves
    name = media_id.rsplit("/", 1)[1]
    resolved = await media_source.async_resolve_media(ha.hass, media_id, PLAYER)
    assert resolved.url == f"/media/local/voiceclone/{name}" and resolved.mime_type.startswith("audio/")
    signed = async_process_play_media_url(ha.hass, resolved.url, allow_relative_url=True)  # as players do
    assert signed.startswith(f"{resolved.url}?authSig=")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{ha.url}{resolved.url}") as response:
            assert response.status == 401  # media needs auth: the signature is what lets a speaker in
        async with session.get(f"{ha.url}{signed}") as response:
            assert response.status == 200
            data = await response.read()
    check_wav(data, result["duration_s"])
    assert data == (ha.media / "voiceclone" / name).read_bytes()


async def test_a_token_home_assistant_rejects_is_reported_and_the_server_carries_on(
    home_assistant: RealHomeAssistant, start_server: StartServer, mqtt: MqttClient
) -> None:
    ha = home_assistant
    server = await start_server(ha.token)
    # HA answers a token of an inactive user as it does a wrong one: 401. (Not async_deactivate_user: since 2026 it also
    # deletes the user's tokens, so reactivating would not bring this one back.)
    ha.user.is_active = False
    refused = await mqtt.speak("Dinner is ready.", "refused")
    assert refused["status"] == "error" and refused["id"] == "refused"
    assert "refused POST /api/services/media_player/play_media: HTTP 401" in refused["error"], refused
    assert ha.player.calls == []
    assert server.alive()
    ha.user.is_active = True
    again = await mqtt.speak("Dinner is ready.", "again")
    assert again["status"] == "done" and again["id"] == "again", f"{again}\n{server.log_tail()}"
    assert [call["media_id"] for call in ha.player.calls] == [again["media_content_id"]]


async def test_a_wrong_token_is_refused_over_http_and_every_command_still_gets_an_answer(
    home_assistant: RealHomeAssistant, start_server: StartServer, mqtt: MqttClient
) -> None:
    ha = home_assistant
    claims = jwt.decode(ha.token, options={"verify_signature": False})
    # the right issuer, the wrong signature
    forged = jwt.encode(claims, "not-the-signing-key-of-this-home-assistant", algorithm="HS256")
    server = await start_server(forged)
    for request_id in ("first", "second"):
        result = await mqtt.speak("Dinner is ready.", request_id)
        assert result["status"] == "error" and result["id"] == request_id
        assert "refused POST /api/services/media_player/play_media: HTTP 401" in result["error"], result
        assert server.alive()
    assert ha.player.calls == []
