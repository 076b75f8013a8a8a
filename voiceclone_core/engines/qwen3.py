"""Qwen3-TTS 12 Hz Base: zero-shot cloning, streamed from an NVIDIA GPU through faster-qwen3-tts.

The checkpoint is read from ``<models_dir>/<qwen3.model>/`` only (``voiceclone models download qwen3-tts-0.6b``;
the hub is switched off while loading). ``prepare`` runs once per voice: with a transcript of the enrollment
sample it keeps the sample's speech codes and text for in-context cloning (closest clone), without one only the
speaker embedding (x-vector mode). Both are saved with the voice, so synthesis never re-reads reference audio.

On CUDA the faster-qwen3-tts backend (CUDA graphs, bf16, warmed up at start) yields audio every ``chunk_frames``
codec frames (80 ms each). Elsewhere (CPU: tests, or a machine without a GPU) the plain qwen-tts model generates
each text chunk whole — correct but far slower than real time, so ``auto`` never picks it without CUDA.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import os
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from voiceclone_core import text
from voiceclone_core.engines.base import (
    EngineError,
    EngineUnavailable,
    EnrollmentSample,
    SynthesisOptions,
    VoicePrompt,
    check_prompt,
    prompt_audio,
    register_engine,
)

if TYPE_CHECKING:
    from voiceclone_core.config import Settings

log = logging.getLogger(__name__)

ENGINE_VERSION = "1"
SAMPLE_RATE = 24000
MAX_PROMPT_S = 15.0  # Qwen3-TTS needs ~3 s; longer ICL prompts only cost prefill time
# Language families the model speaks, and the names its API takes.
LANGUAGES = {
    "zh": "Chinese",
    "en": "English",
    "ja": "Japanese",
    "ko": "Korean",
    "de": "German",
    "fr": "French",
    "ru": "Russian",
    "pt": "Portuguese",
    "es": "Spanish",
    "it": "Italian",
}
REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "speech_tokenizer/config.json",
    "speech_tokenizer/model.safetensors",
)


def _torchaudio_placeholder() -> None:
    """qwen_tts imports torchaudio for its 25 Hz tokenizer only, which the 12 Hz models never use.

    PyPI's torchaudio works only with the torch release it was built for; where it cannot load, an empty module
    takes its place so the import succeeds (calling it raises).
    """
    try:
        import torchaudio.compliance.kaldi  # noqa: F401

        return
    except Exception:  # any import failure means: not usable here
        pass

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("torchaudio is not available (only Qwen3-TTS's 25 Hz tokenizer needs it)")

    names = ("torchaudio", "torchaudio.compliance", "torchaudio.compliance.kaldi")
    modules = [types.ModuleType(n) for n in names]
    for module in modules:
        module.__spec__ = importlib.machinery.ModuleSpec(module.__name__, None)
    modules[0].compliance, modules[1].kaldi, modules[2].fbank = modules[1], modules[2], unavailable
    sys.modules.update(dict(zip(names, modules, strict=True)))
    log.info("torchaudio unavailable: using a placeholder (not needed by the 12 Hz models)")


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def model_folder(settings: Settings) -> Path:
    return settings.resolved_models_dir / settings.qwen3.model


def probe(settings: Settings) -> str | None:
    """Why the qwen3 engine cannot run here (None: it can), without loading it."""
    if importlib.util.find_spec("qwen_tts") is None or importlib.util.find_spec("faster_qwen3_tts") is None:
        return "the Qwen3-TTS packages are not installed (extra: qwen3)"
    if not _cuda_available():
        return "no CUDA device"
    missing = [f for f in REQUIRED_FILES if not (model_folder(settings) / f).is_file()]
    if missing:
        return f"weights not installed (voiceclone models download {settings.qwen3.model})"
    return None


class Qwen3Engine:
    """Qwen3-TTS Base behind the engine protocol."""

    name = "qwen3"
    sample_rate = SAMPLE_RATE
    languages = tuple(LANGUAGES)

    def __init__(self, settings: Settings) -> None:
        cfg = settings.qwen3
        folder = model_folder(settings)
        missing = [f for f in REQUIRED_FILES if not (folder / f).is_file()]
        if missing:
            raise EngineUnavailable(
                f"Qwen3-TTS files missing in {folder}: {', '.join(missing)} "
                f"(run: voiceclone models download {cfg.model})"
            )
        os.environ["HF_HUB_OFFLINE"] = "1"  # load from the folder only; never reach out to the hub
        _torchaudio_placeholder()
        try:
            import torch
            from qwen_tts import Qwen3TTSModel  # type: ignore[import-not-found]
        except ImportError as exc:
            raise EngineUnavailable(f"the qwen3 engine needs the Qwen3-TTS packages (extra: qwen3): {exc}") from exc
        self._torch = torch
        device = settings.engine.device
        self.chunk_frames = cfg.chunk_frames
        self.max_frames = cfg.max_frames
        self.min_frames = cfg.min_frames
        self.version = f"{ENGINE_VERSION}+{folder.name}"
        self._lock = threading.Lock()
        try:
            if device.startswith("cuda"):
                if not torch.cuda.is_available():
                    raise EngineUnavailable(f"engine.device is {device!r} but CUDA is not available")
                from faster_qwen3_tts import FasterQwen3TTS  # type: ignore[import-not-found]

                self.fast = FasterQwen3TTS.from_pretrained(
                    str(folder), device=device, dtype=torch.bfloat16, max_seq_len=cfg.max_seq_len
                )
                self.fast.warmup()  # CUDA-graph capture now, not on the first request
                self.base = self.fast.model
                self.backend = "faster-qwen3-tts (CUDA graphs, bf16)"
            else:
                self.fast = None
                self.base = Qwen3TTSModel.from_pretrained(
                    str(folder), device_map=device, dtype=torch.float32, local_files_only=True
                )
                self.backend = f"qwen-tts on {device} (whole chunks, slower than real time)"
        except EngineUnavailable:
            raise
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise EngineUnavailable(f"Qwen3-TTS model in {folder} does not load: {exc}") from exc
        log.info("qwen3 engine: %s, model %s", self.backend, folder.name)

    # -- protocol ---------------------------------------------------------------------------------------------
    def prepare(self, sample: EnrollmentSample) -> VoicePrompt:
        """Speaker embedding, plus the sample's speech codes and transcript when there is one (ICL mode)."""
        x = prompt_audio(sample, SAMPLE_RATE, MAX_PROMPT_S)
        transcript = (sample.transcript or "").strip()
        # A transcript only describes the whole sample; when it was cut, in-context cloning would misalign.
        icl = bool(transcript) and len(sample.audio) / sample.sample_rate <= MAX_PROMPT_S
        with self._lock, self._torch.inference_mode():
            [item] = self.base.create_voice_clone_prompt(
                ref_audio=(x, SAMPLE_RATE), ref_text=transcript if icl else None, x_vector_only_mode=not icl
            )
        arrays = {"speaker": item.ref_spk_embedding.float().cpu().numpy()}
        if icl:
            arrays["codes"] = item.ref_code.cpu().numpy().astype(np.int32)
        meta = {"mode": "icl" if icl else "x-vector", "transcript": transcript if icl else ""}
        return VoicePrompt(self.name, self.version, arrays, meta)

    def synthesize(self, words: str, prompt: VoicePrompt, options: SynthesisOptions) -> Iterator[np.ndarray]:
        """Float32 audio at 24 kHz: streamed every ``chunk_frames`` frames on CUDA, per text chunk elsewhere."""
        check_prompt(self.name, prompt)
        family = text.language_family(options.language or "en")
        language = LANGUAGES.get(family)
        if language is None:
            raise EngineError(f"Qwen3-TTS does not speak {options.language!r}")
        if options.speed != 1.0:
            log.debug("qwen3 engine: speed %.2f is not supported; speaking at the model's own rate", options.speed)
        items = self._voice_clone_prompt(prompt)
        generation = {"max_new_tokens": self.max_frames, "min_new_tokens": self.min_frames}
        with self._lock, self._torch.inference_mode():
            if self.fast is not None:
                stream = self.fast.generate_voice_clone_streaming(
                    words,
                    language,
                    voice_clone_prompt=items,
                    chunk_size=self.chunk_frames,
                    **generation,
                )
                for chunk, _sr, _timing in stream:
                    yield np.asarray(chunk, np.float32).reshape(-1)
            else:
                wavs, _sr = self.base.generate_voice_clone(words, language, voice_clone_prompt=items, **generation)
                yield np.asarray(wavs[0], np.float32).reshape(-1)

    # -- internals --------------------------------------------------------------------------------------------
    def _voice_clone_prompt(self, prompt: VoicePrompt) -> list[Any]:
        """The saved prompt as the package's prompt item (both backends take a list of them)."""
        from qwen_tts.inference.qwen3_tts_model import VoiceClonePromptItem  # type: ignore[import-not-found]

        device = self.base.device
        try:
            speaker = self._torch.from_numpy(np.array(prompt.arrays["speaker"])).to(device, self.base.model.dtype)
        except KeyError:
            raise EngineError("voice prompt has no Qwen3-TTS speaker embedding; re-enroll the voice") from None
        icl = prompt.meta.get("mode") == "icl" and "codes" in prompt.arrays
        codes = self._torch.from_numpy(np.array(prompt.arrays["codes"], np.int64)).to(device) if icl else None
        transcript = prompt.meta.get("transcript") if icl else None
        return [VoiceClonePromptItem(codes, speaker, not icl, icl, transcript)]


register_engine("qwen3", Qwen3Engine, probe=probe, auto_rank=10)
