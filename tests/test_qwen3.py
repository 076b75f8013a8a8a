"""The Qwen3-TTS engine with a tiny random 12 Hz Base checkpoint, loaded through the engine's real loading path.

The engine's batched decoder runs on the CPU here (float32); CUDA graphs and bf16 are tested where CUDA is.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from voiceclone_core.engines.torchaudio_compat import ensure_torchaudio

ensure_torchaudio()  # before qwen_tts is imported, as the engine does
pytest.importorskip("qwen_tts", reason="Qwen3-TTS packages are installed by scripts/setup.sh (extra: qwen3)")

import torch  # noqa: E402

from voiceclone_core.config import Settings, load_settings  # noqa: E402
from voiceclone_core.engines.base import (  # noqa: E402
    EngineError,
    EngineUnavailable,
    EnrollmentSample,
    SynthesisOptions,
    VoicePrompt,
)
from voiceclone_core.engines.qwen3 import CHECKED_QWEN_TTS  # noqa: E402
from voiceclone_core.engines.registry import choose_engine, create_engine  # noqa: E402
from voiceclone_core.service import SpeechRequest, build_service  # noqa: E402

from .tiny_models import build_qwen3  # noqa: E402

FRAME = 1920  # one 12.5 Hz codec frame at 24 kHz
CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    build_qwen3(root / "qwen3-tts-0.6b")
    return root


def qwen_settings(tmp_path: Path, models_dir: Path, device: str = "cpu", **extra: str) -> Settings:
    return load_settings(
        None,
        overrides={
            "data_dir": str(tmp_path),
            "models_dir": str(models_dir),
            "engine.name": "qwen3",
            "engine.device": device,
            "qwen3.max_frames": "10",
            **extra,
        },
    )


@pytest.fixture(scope="module")
def engine(models_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    return create_engine(qwen_settings(tmp_path_factory.mktemp("data"), models_dir))


def speech(seconds: float = 4.0, hz: float = 180.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_prepare_x_vector_and_in_context_prompts(engine) -> None:
    assert engine.sample_rate == 24000 and {"en", "zh"} <= set(engine.languages)
    xvec = VoicePrompt.from_bytes(engine.prepare(EnrollmentSample(speech(), 16000, "en")).to_bytes())
    assert xvec.meta["mode"] == "x-vector" and set(xvec.arrays) == {"speaker"}
    icl = engine.prepare(EnrollmentSample(speech(), 16000, "en", "The quick brown fox jumps over the lazy dog."))
    assert icl.meta == {"mode": "icl", "transcript": "The quick brown fox jumps over the lazy dog."}
    codes = icl.arrays["codes"]
    assert codes.shape == (50, 16) and codes.min() >= 0 and codes.max() < 2048  # 4 s at 12.5 Hz, 16 codebooks
    assert not np.allclose(
        xvec.arrays["speaker"], engine.prepare(EnrollmentSample(speech(hz=320), 16000, "en")).arrays["speaker"]
    )  # the embedding depends on the voice
    with pytest.raises(EngineError, match="shorter than one second"):
        engine.prepare(EnrollmentSample(speech(0.5), 16000, "en"))


@pytest.mark.parametrize("transcript", [None, "The quick brown fox jumps over the lazy dog."])
@pytest.mark.parametrize(("words", "language"), [("The washing machine is done.", "en"), ("洗衣机洗好了。", "zh")])
def test_synthesis_produces_whole_frames_at_24k(engine, transcript, words, language) -> None:
    prompt = engine.prepare(EnrollmentSample(speech(), 16000, "en", transcript))
    chunks = list(engine.synthesize(words, prompt, SynthesisOptions(language=language)))
    total = sum(len(c) for c in chunks)
    assert all(c.dtype == np.float32 for c in chunks)
    assert total % FRAME == 0 and FRAME <= total <= 10 * FRAME  # whole frames, at most qwen3.max_frames


def test_errors(engine, tmp_path: Path) -> None:
    prompt = engine.prepare(EnrollmentSample(speech(), 16000, "en"))
    with pytest.raises(EngineError, match="does not speak"):
        list(engine.synthesize("Hallo.", prompt, SynthesisOptions(language="nl")))
    with pytest.raises(EngineError, match="not 'qwen3'"):
        list(engine.synthesize("Hello.", VoicePrompt("pocket", "1"), SynthesisOptions()))
    with pytest.raises(EngineError, match="re-enroll"):
        list(engine.synthesize("Hello.", VoicePrompt("qwen3", engine.version), SynthesisOptions()))
    with pytest.raises(EngineUnavailable, match=r"voiceclone models download qwen3-tts-0\.6b"):
        create_engine(qwen_settings(tmp_path, tmp_path / "empty"))


def test_enroll_and_speak_through_the_service(tmp_path: Path, models_dir: Path, speech_wav: Path) -> None:
    settings = qwen_settings(tmp_path, models_dir)
    service = build_service(settings)
    enrollment = service.enroll(
        "Mum",
        speech_wav,
        consent="Mum (test)",
        language="en",
        transcript="The quick brown fox jumps over the lazy dog.",
    )
    try:
        speech = asyncio.run(service.synthesize(SpeechRequest("Dinner is ready.", voice="mum")))
    finally:
        service.close()
    assert speech.sample_rate == 24000 and len(speech.audio) >= FRAME
    assert enrollment.mode in ("icl", "x-vector")


def test_loading_leaves_the_process_environment_and_hub_setting_alone(
    tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    import huggingface_hub.constants as hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    before = hub.HF_HUB_OFFLINE
    create_engine(qwen_settings(tmp_path, models_dir)).close()
    assert "HF_HUB_OFFLINE" not in os.environ and before == hub.HF_HUB_OFFLINE


def test_the_package_internals_the_engine_relies_on_are_still_there(engine) -> None:
    """qwen-tts-hf private helpers and prompt layout (checked against CHECKED_QWEN_TTS): fail loudly if they change."""
    from importlib.metadata import version

    wrapper = engine.base
    for name in ("_tokenize_texts", "_build_assistant_text", "_build_ref_text"):
        assert callable(getattr(wrapper, name, None)), f"qwen-tts-hf {version('qwen-tts-hf')} lacks {name}"
    assert callable(getattr(wrapper.model, "generate_icl_prompt", None))

    def ids(text: str) -> list[int]:
        return wrapper._tokenize_texts([text])[0][0].tolist()

    head, tail = ids("<|im_start|>assistant\n"), ids("<|im_end|>\n<|im_start|>assistant\n")
    assert (len(head), len(tail)) == (3, 5), f"prompt layout changed since qwen-tts-hf {CHECKED_QWEN_TTS}"
    words = "The washing machine is done."
    full = ids(wrapper._build_assistant_text(words))
    assert full[:3] == head and full[-5:] == tail and full[3:-5] == ids(words)
    ref = ids(wrapper._build_ref_text(words))
    assert ref[:3] == head and ref[-2:] == ids("<|im_end|>\n") and ref[3:-2] == ids(words)


def test_auto_passes_over_qwen3_without_cuda(tmp_path: Path, models_dir: Path) -> None:
    name, skipped = choose_engine(qwen_settings(tmp_path, models_dir, **{"engine.name": "auto"}))
    if CUDA:
        assert name == "qwen3"
    else:
        assert name != "qwen3" and "qwen3: no CUDA device" in skipped


def test_concurrent_requests_share_decode_steps_through_the_service(
    tmp_path: Path, models_dir: Path, speech_wav: Path
) -> None:
    settings = qwen_settings(
        tmp_path, models_dir, **{"qwen3.max_streams": "3", "qwen3.min_frames": "30", "qwen3.max_frames": "30"}
    )
    engine = create_engine(settings)
    service = build_service(settings, engine=engine)
    service.enroll("Mum", speech_wav, consent="Mum (test)", language="en")

    async def three() -> list:
        texts = ("The washing machine is done.", "Dinner is ready.", "洗衣机洗好了。")
        return await asyncio.gather(
            *(
                service.synthesize(SpeechRequest(t, voice="mum", language=lang))
                for t, lang in zip(texts, ("en", "en", "zh"), strict=True)
            )
        )

    try:
        clips = asyncio.run(three())
    finally:
        service.close()
    assert [len(speech.audio) for speech in clips] == [30 * FRAME] * 3
    assert engine.decoder.peak_streams == 3  # one forward step served all three requests, not a queue


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_cuda_streams_chunks_with_graphs(tmp_path: Path, models_dir: Path) -> None:
    engine = create_engine(
        qwen_settings(tmp_path, models_dir, "cuda", **{"qwen3.max_frames": "24", "qwen3.min_frames": "24"})
    )
    assert "CUDA graphs" in engine.backend
    for transcript in (None, "The quick brown fox jumps over the lazy dog."):
        prompt = engine.prepare(EnrollmentSample(speech(), 16000, "en", transcript))
        chunks = list(engine.synthesize("The washing machine is done.", prompt, SynthesisOptions(language="en")))
        assert [len(c) for c in chunks] == [2 * FRAME] + [4 * FRAME] * 5 + [2 * FRAME]
