"""The engine protocol every cloning engine implements, and the data it exchanges (the registry is ``registry.py``)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

log = logging.getLogger(__name__)


class EngineError(RuntimeError):
    """An engine failed to prepare a voice or to synthesise."""


class EngineUnavailable(EngineError):
    """The engine cannot run here (missing package, weights or device)."""


@dataclass(frozen=True)
class EngineContext:
    """What every engine may know besides its own settings section: where models live and which device to use."""

    models_dir: Path
    device: str = "cpu"


@dataclass(frozen=True)
class EnrollmentSample:
    """Cleaned enrollment audio (float32 mono) with what is known about it."""

    audio: np.ndarray
    sample_rate: int
    language: str
    transcript: str | None = None


@dataclass(frozen=True)
class SynthesisOptions:
    """Per-request options that change the rendered audio."""

    language: str | None = None
    speed: float = 1.0

    def cache_token(self) -> str:
        return f"lang={self.language or ''};speed={self.speed:.3f}"


@dataclass
class VoicePrompt:
    """What ``prepare`` learned about one voice, persisted with it: arrays plus JSON metadata."""

    engine: str
    engine_version: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """Serialise to an ``.npz`` blob (metadata stored as JSON inside it)."""
        buf = io.BytesIO()
        header = json.dumps({"engine": self.engine, "engine_version": self.engine_version, "meta": self.meta})
        np.savez(buf, __header__=np.frombuffer(header.encode("utf-8"), dtype=np.uint8), **self.arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> VoicePrompt:
        """Inverse of :meth:`to_bytes`."""
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            header = json.loads(bytes(npz["__header__"]).decode("utf-8"))
            arrays = {k: npz[k] for k in npz.files if k != "__header__"}
        return cls(header["engine"], header["engine_version"], arrays, header.get("meta", {}))

    def digest(self) -> str:
        """Content hash: changes whenever the prompt changes (used in cache keys)."""
        return hashlib.sha256(self.to_bytes()).hexdigest()[:16]


def prompt_audio(sample: EnrollmentSample, sample_rate: int, max_seconds: float) -> np.ndarray:
    """The enrollment audio at ``sample_rate``, cut to ``max_seconds`` (EngineError if under one second)."""
    from voiceclone_core import audio

    x = audio.resample(np.asarray(sample.audio, np.float32), sample.sample_rate, sample_rate)
    x = x[: int(max_seconds * sample_rate)]
    if len(x) < sample_rate:
        raise EngineError("the enrollment sample is shorter than one second")
    return x


def check_prompt(engine_name: str, prompt: VoicePrompt) -> None:
    """EngineError unless ``prompt`` was prepared by the engine called ``engine_name``."""
    if prompt.engine != engine_name:
        raise EngineError(f"voice prompt was made by engine {prompt.engine!r}, not {engine_name!r}")


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """Hugging Face hub access off while loading (files come from the folder only), back as it was afterwards.

    huggingface_hub reads ``HF_HUB_OFFLINE`` once at import, and transformers asks ``huggingface_hub.constants``
    each time, so the flag is switched there rather than in the process environment.
    """
    import huggingface_hub.constants as hub

    before = hub.HF_HUB_OFFLINE
    hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = before


@runtime_checkable
class Engine(Protocol):
    """A zero-shot cloning engine, and everything the speech service reads from it.

    ``prepare`` runs once per voice at enrollment; its result is saved with the voice. ``synthesize`` yields float32
    mono chunks at ``sample_rate`` as soon as each exists; it never re-analyses reference audio. ``languages`` are the
    language families it speaks, its default first. ``max_concurrency`` is how many ``synthesize`` calls may run at
    once (None: as many as the service likes); ``batches_streams`` says concurrent calls share forward steps, so the
    service gives it ``max_concurrency`` workers even on a GPU. ``close`` frees what the engine holds (threads,
    device memory); the engine is not used afterwards.

    Three optional members, read with a default: ``packs_sentences`` (default False) asks the service to give it the
    sentences after the first packed into chunks of up to ``speech.chunk_chars`` (for engines that make a whole
    utterance at a time, where every chunk repeats the voice prompt); ``also_speaks`` (default empty) names language
    codes it accepts when asked for explicitly without advertising them (``languages`` is what clients are offered);
    ``uses_torch`` (default True) False says torch's threads are the watermark's alone.
    """

    name: str
    version: str
    sample_rate: int
    languages: tuple[str, ...]
    max_concurrency: int | None
    batches_streams: bool

    def prepare(self, sample: EnrollmentSample) -> VoicePrompt: ...

    def synthesize(self, text: str, prompt: VoicePrompt, options: SynthesisOptions) -> Iterator[np.ndarray]: ...

    def close(self) -> None: ...


def missing_members(engine: object) -> list[str]:
    """The members of the :class:`Engine` protocol that ``engine`` lacks (empty: it is an engine)."""
    members = [*Engine.__annotations__, *(k for k, v in vars(Engine).items() if callable(v) and not k.startswith("_"))]
    return [m for m in members if not hasattr(engine, m)]
