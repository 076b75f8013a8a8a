"""The Pocket TTS engine with a tiny random checkpoint of the real architecture, through its real loading path."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pocket_tts", reason="pocket-tts is installed by scripts/setup.sh (extra: pocket)")

from voiceclone_core.config import Settings, load_settings
from voiceclone_core.engines.base import (
    EngineError,
    EngineUnavailable,
    EnrollmentSample,
    SynthesisOptions,
    VoicePrompt,
)
from voiceclone_core.engines.pocket import resolve_config
from voiceclone_core.engines.registry import choose_engine, create_engine
from voiceclone_core.service import SpeechRequest, build_service

from .tiny_models import build_pocket

FRAME = 1920  # 80 ms at 24 kHz


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    build_pocket(root / "pocket-tts-english")
    return root


def pocket_settings(tmp_path: Path, models_dir: Path, **extra: str) -> Settings:
    return load_settings(
        None, overrides={"data_dir": str(tmp_path), "models_dir": str(models_dir), "engine.name": "pocket", **extra}
    )


@pytest.fixture(scope="module")
def engine(models_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    return create_engine(pocket_settings(tmp_path_factory.mktemp("data"), models_dir))


def test_loads_prepares_and_streams_audio(engine, speech_wav: Path) -> None:
    from voiceclone_core import audio

    assert engine.name == "pocket" and engine.sample_rate == 24000 and engine.languages == ("en",)
    x, sr = audio.decode(speech_wav)
    prompt = engine.prepare(EnrollmentSample(x, sr, "en"))
    assert any(k.endswith("/cache") for k in prompt.arrays)  # the voice's KV cache
    restored = VoicePrompt.from_bytes(prompt.to_bytes())  # as saved with the voice
    chunks = list(
        engine.synthesize(
            "The washing machine is done. Please hang up the clothes.", restored, SynthesisOptions(language="en")
        )
    )
    assert chunks and all(c.dtype == np.float32 and c.ndim == 1 for c in chunks)
    total = sum(len(c) for c in chunks)
    assert total % FRAME == 0 and FRAME <= total <= 24000 * 20  # whole frames, bounded by the model's own cap
    assert all(np.isfinite(c).all() for c in chunks)


def test_voice_state_depends_on_the_voice(engine) -> None:
    t = np.arange(24000 * 3) / 24000
    low = engine.prepare(EnrollmentSample((0.3 * np.sin(2 * np.pi * 110 * t)).astype(np.float32), 24000, "en"))
    high = engine.prepare(EnrollmentSample((0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 24000, "en"))
    key = next(k for k in low.arrays if k.endswith("/cache"))
    assert not np.allclose(low.arrays[key], high.arrays[key])
    with pytest.raises(EngineError, match="shorter than one second"):
        engine.prepare(EnrollmentSample(np.zeros(8000, np.float32), 16000, "en"))


def test_stopping_early_releases_the_model(engine) -> None:
    t = np.arange(24000 * 2) / 24000
    prompt = engine.prepare(EnrollmentSample((0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32), 24000, "en"))
    stream = engine.synthesize("Hello world. Turn on the kitchen lights.", prompt, SynthesisOptions())
    next(stream)
    stream.close()  # a client hung up
    assert list(engine.synthesize("Hello world.", prompt, SynthesisOptions()))  # not dead-locked
    with pytest.raises(EngineError, match="not 'pocket'"):
        list(engine.synthesize("Hello.", VoicePrompt("classic", "2"), SynthesisOptions()))


def test_enroll_and_speak_through_the_service(tmp_path: Path, models_dir: Path, speech_wav: Path) -> None:
    settings = pocket_settings(tmp_path, models_dir)
    service = build_service(settings)  # the registry builds the engine named in settings
    service.enroll("Mum", speech_wav, consent="Mum (test)", language="en")
    try:
        speech = asyncio.run(service.synthesize(SpeechRequest("Dinner is ready.", voice="mum")))
        workers = service._scheduler.workers if service._scheduler else 0
    finally:
        service.close()
    assert speech.sample_rate == 24000 and len(speech.audio) >= FRAME
    assert workers == 1  # the package is not thread-safe: one generation at a time
    assert (settings.voices_dir / "mum" / "prompts" / "pocket.npz").is_file()


def test_missing_model_and_auto_choice(tmp_path: Path, models_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    empty = tmp_path / "no-models"
    with pytest.raises(EngineUnavailable, match="voiceclone models download pocket-tts-english"):
        create_engine(pocket_settings(tmp_path, empty))
    auto_empty = pocket_settings(tmp_path, empty, **{"engine.name": "auto"})
    name, skipped = choose_engine(auto_empty)
    assert name == "classic" and any(s.startswith("pocket:") for s in skipped)
    caplog.set_level(logging.INFO)
    name, _ = choose_engine(pocket_settings(tmp_path, models_dir, **{"engine.name": "auto"}))
    assert name == "pocket"


def test_package_config_is_made_local(tmp_path: Path) -> None:
    """Downloaded layout (languages/<lang>/...) with the package's released config and hf:// paths replaced."""
    folder = tmp_path / "pocket-tts-english" / "languages" / "english"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"x")
    (folder / "tokenizer.json").write_text("{}")
    config = resolve_config(tmp_path / "pocket-tts-english", "english")
    assert config["weights_path"] == str((folder / "model.safetensors").resolve())
    assert config["flow_lm"]["lookup_table"]["tokenizer_path"] == str((folder / "tokenizer.json").resolve())
    assert "weights_path_without_voice_cloning" not in config
    assert config["flow_lm"]["transformer"]["d_model"] == 1024  # the released size
    (folder / "tokenizer.json").unlink()
    with pytest.raises(EngineUnavailable, match=r"tokenizer\.json"):
        resolve_config(tmp_path / "pocket-tts-english", "english")


def test_weights_are_streamed_in_exactly_and_mismatches_refused(tmp_path: Path, models_dir: Path) -> None:
    import shutil

    import safetensors.torch
    import torch

    engine = create_engine(pocket_settings(tmp_path, models_dir, **{"pocket.quantize": "false"}))
    saved = safetensors.torch.load_file(str(models_dir / "pocket-tts-english" / "model.safetensors"))
    state = engine.model.state_dict()
    assert set(state) == set(saved)
    assert all(torch.equal(state[k], saved[k]) for k in saved)  # every tensor, not random init
    broken = tmp_path / "models" / "pocket-tts-english"
    shutil.copytree(models_dir / "pocket-tts-english", broken)
    saved.pop(next(iter(saved)))
    safetensors.torch.save_file(saved, str(broken / "model.safetensors"))
    with pytest.raises(EngineUnavailable, match="missing"):
        create_engine(pocket_settings(tmp_path, tmp_path / "models"))
