"""Shared fixtures: speech recordings made with espeak-ng, the real embedded engine, fast fake engines."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from voiceclone_core import audio
from voiceclone_core.config import Settings, load_settings
from voiceclone_core.engines.base import EnrollmentSample, SynthesisOptions, VoicePrompt
from voiceclone_core.engines.registry import create_engine
from voiceclone_core.service import SpeechService, build_service

PARAGRAPH = (
    "The washing machine has finished and the clothes are ready to hang up. "
    "Please close the garage door before you go to bed tonight. "
    "Grandma is coming for lunch on Sunday, so we need to buy fresh bread. "
    "The heating will switch on at six in the morning."
)


def espeak(text: str, path: Path, voice: str = "en-us+m3", speed: int = 150) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (scripts/setup.sh installs it)")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True)
    return path


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 14 s of clean speech with its transcript PARAGRAPH."""
    return espeak(PARAGRAPH, tmp_path_factory.mktemp("speech") / "paragraph.wav")


@pytest.fixture(scope="session")
def other_speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same paragraph in a different (female) espeak voice."""
    return espeak(PARAGRAPH, tmp_path_factory.mktemp("speech2") / "paragraph_f.wav", voice="en-us+f3")


@pytest.fixture(scope="session")
def classic_engine():
    """The real embedded engine (Piper joe + conversion), loaded once."""
    return create_engine(Settings())


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(env={}, overrides={"data_dir": str(tmp_path / "data")})


class FakeEngine:
    """A fast, deterministic engine: a sine per text chunk whose pitch comes from the prompt.

    ``gate`` (threading.Event) lets tests hold synthesis to fill the queue; ``fail_prepare`` injects errors;
    ``calls`` and ``languages_used`` record what was spoken, in which language.
    """

    name = "fake"
    version = "1"
    sample_rate = 16000
    languages = ("en", "zh")
    max_concurrency = None
    batches_streams = False

    def __init__(self) -> None:
        self.gate: threading.Event | None = None
        self.fail_prepare: Exception | None = None
        self.calls: list[str] = []
        self.languages_used: list[str | None] = []
        self.prepared = 0
        self.delay = 0.0
        self.closed = False

    def prepare(self, sample: EnrollmentSample) -> VoicePrompt:
        if self.fail_prepare is not None:
            raise self.fail_prepare
        self.prepared += 1
        pitch = 100.0 + float(np.sqrt(np.mean(sample.audio**2))) * 1000.0
        return VoicePrompt(self.name, self.version, {"pitch": np.array([pitch])}, {"mode": "fake"})

    def synthesize(self, text: str, prompt: VoicePrompt, options: SynthesisOptions) -> Iterator[np.ndarray]:
        self.calls.append(text)
        self.languages_used.append(options.language)
        if self.gate is not None:
            self.gate.wait(timeout=10)
        if self.delay:
            time.sleep(self.delay)
        n = int(self.sample_rate * 0.05 * max(1, len(text.split())) / options.speed)
        t = np.arange(n) / self.sample_rate
        yield (0.3 * np.sin(2 * np.pi * float(prompt.arrays["pitch"][0]) * t)).astype(np.float32)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_engine() -> FakeEngine:
    return FakeEngine()


def service_with(settings: Settings, engine, wav: Path | None = None, **enroll) -> SpeechService:
    """A speech service over ``engine`` (built by the composition root), with 'Mum' enrolled from ``wav`` if given."""
    service = build_service(settings, engine=engine)
    if wav is not None:
        service.enroll(enroll.pop("name", "Mum"), wav, consent=enroll.pop("consent", "Mum"), **enroll)
    return service


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    return audio.decode(path)
