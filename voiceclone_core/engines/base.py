"""The engine protocol every cloning engine implements, the data it exchanges, and the engine registry."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from voiceclone_core.config import Settings

log = logging.getLogger(__name__)


class EngineError(RuntimeError):
    """An engine failed to prepare a voice or to synthesise."""


class EngineUnavailable(EngineError):
    """The engine cannot run here (missing package, weights or device)."""


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


@runtime_checkable
class Engine(Protocol):
    """A zero-shot cloning engine.

    ``prepare`` runs once per voice at enrollment; its result is saved with the voice. ``synthesize``
    yields float32 mono chunks at ``sample_rate`` as soon as each exists; it never re-analyses reference audio.
    """

    name: str
    version: str
    sample_rate: int
    languages: tuple[str, ...]

    def prepare(self, sample: EnrollmentSample) -> VoicePrompt: ...

    def synthesize(self, text: str, prompt: VoicePrompt, options: SynthesisOptions) -> Iterator[np.ndarray]: ...


EngineFactory = Callable[["Settings"], Engine]
EngineProbe = Callable[["Settings"], "str | None"]


@dataclass(frozen=True)
class _Entry:
    factory: EngineFactory
    probe: EngineProbe | None
    auto_rank: int | None


_REGISTRY: dict[str, _Entry] = {}


def register_engine(
    name: str, factory: EngineFactory, probe: EngineProbe | None = None, auto_rank: int | None = None
) -> None:
    """Make an engine selectable by ``engine.name``.

    ``auto`` tries engines by ascending ``auto_rank`` (None: never chosen automatically); ``probe`` says cheaply
    why the engine cannot run here (None when it can), e.g. no CUDA or no weights installed.
    """
    _REGISTRY[name] = _Entry(factory, probe, auto_rank)


def available_engines() -> list[str]:
    """Names that ``engine.name`` may take (``auto`` picks among them)."""
    _load_builtin()
    return sorted(_REGISTRY)


def _load_builtin() -> None:
    if "classic" not in _REGISTRY:
        from voiceclone_core.engines import classic, pocket, qwen3  # noqa: F401  (they register themselves)


def choose_engine(settings: Settings) -> tuple[str, list[str]]:
    """The engine ``auto`` picks here and, for the log, why each better-ranked one was passed over."""
    _load_builtin()
    skipped = []
    ranked = sorted((e.auto_rank, n) for n, e in _REGISTRY.items() if e.auto_rank is not None)
    for _, name in ranked:
        probe = _REGISTRY[name].probe
        reason = probe(settings) if probe is not None else None
        if reason is None:
            return name, skipped
        skipped.append(f"{name}: {reason}")
    return "classic", skipped


def create_engine(settings: Settings) -> Engine:
    """Instantiate the engine named in settings (``auto``: the best one this machine can run, logging why)."""
    _load_builtin()
    name = settings.engine.name
    if name == "auto":
        name, skipped = choose_engine(settings)
        log.info("engine auto: using %r%s", name, ("; not " + "; not ".join(skipped)) if skipped else "")
    entry = _REGISTRY.get(name)
    if entry is None:
        raise EngineUnavailable(f"unknown engine {name!r}; available: {', '.join(available_engines())}")
    engine = entry.factory(settings)
    log.info(
        "engine %s %s ready (%d Hz, languages %s)",
        engine.name,
        engine.version,
        engine.sample_rate,
        ",".join(engine.languages),
    )
    return engine
