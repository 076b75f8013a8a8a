"""SpeechService: the single async entry point every door uses.

``stream(request)`` yields audio chunks as they are produced; ``synthesize(request)`` returns a whole clip.
Work is scheduled per text chunk on a bounded pool of worker threads (one for an accelerator), so an
interactive request can overtake a long announcement between sentences. A full queue answers
:class:`ServiceBusy` at once. Finished renderings go into a size-capped on-disk LRU cache, stored per voice so
that deleting a voice removes its cached audio too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import itertools
import logging
import os
import shutil
import statistics
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np

from voiceclone_core import audio, text
from voiceclone_core.config import Settings
from voiceclone_core.engines.base import Engine, EngineError, SynthesisOptions, VoicePrompt
from voiceclone_core.voices import VoiceLibrary, VoiceNotFound

log = logging.getLogger(__name__)


class Priority(IntEnum):
    """Lower runs first."""

    INTERACTIVE = 0
    ANNOUNCEMENT = 1
    BATCH = 2


class SpeechError(RuntimeError):
    """A request cannot be spoken (bad text, unknown voice, engine failure)."""


class ServiceBusy(SpeechError):
    """The queue is full; try again later."""


class UnknownVoice(SpeechError):
    """The request names a voice that is not enrolled (or none is enrolled)."""


class NothingToSay(SpeechError):
    """The text is empty or has no speakable characters."""


@dataclass(frozen=True)
class SpeechRequest:
    """What to say, in which voice, and how."""

    text: str
    voice: str | None = None
    language: str | None = None
    speed: float = 1.0
    volume: float = 1.0
    priority: Priority = Priority.INTERACTIVE


@dataclass
class Metrics:
    """Counters and recent timings (medians over the last 100 requests)."""

    requests: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    busy: int = 0
    errors: int = 0
    first_audio_s: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    real_time_factor: deque[float] = field(default_factory=lambda: deque(maxlen=100))

    def snapshot(self, queue_depth: int) -> dict[str, Any]:
        def med(d: deque[float]) -> float | None:
            return round(statistics.median(d), 4) if d else None

        return {
            "requests": self.requests,
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
            "busy": self.busy,
            "errors": self.errors,
            "queue_depth": queue_depth,
            "first_audio_s_last": round(self.first_audio_s[-1], 4) if self.first_audio_s else None,
            "first_audio_s_median": med(self.first_audio_s),
            "real_time_factor_median": med(self.real_time_factor),
        }


class AudioCache:
    """Rendered clips as WAV files under ``<dir>/<voice_id>/<key>.wav``; least recently used evicted first."""

    def __init__(self, root: Path, max_bytes: int):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _path(self, voice_id: str, key: str) -> Path:
        return self.root / voice_id / f"{key}.wav"

    def get(self, voice_id: str, key: str) -> tuple[np.ndarray, int] | None:
        path = self._path(voice_id, key)
        try:
            clip = audio.decode(path)
            os.utime(path)  # mark as recently used
            return clip
        except (audio.AudioError, FileNotFoundError):
            return None

    def put(self, voice_id: str, key: str, clip: np.ndarray, sample_rate: int) -> None:
        if self.max_bytes <= 0:
            return
        path = self._path(voice_id, key)
        path.parent.mkdir(exist_ok=True, mode=0o700)
        tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
        tmp.write_bytes(audio.encode_wav(clip, sample_rate))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        self._evict()

    def _evict(self) -> None:
        with self._lock:
            files = [(p.stat().st_mtime, p.stat().st_size, p) for p in self.root.glob("*/*.wav")]
            total = sum(size for _, size, _ in files)
            for _, size, p in sorted(files):
                if total <= self.max_bytes:
                    break
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                total -= size

    def drop_voice(self, voice_id: str) -> None:
        shutil.rmtree(self.root / voice_id, ignore_errors=True)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.glob("*/*.wav"))


_DONE = object()


@dataclass
class _Job:
    """One request in flight: its text chunks, where its audio goes, and whether its listener left."""

    chunks: list[str]
    prompt: VoicePrompt
    options: SynthesisOptions
    priority: Priority
    loop: asyncio.AbstractEventLoop
    out: asyncio.Queue[Any]
    next_chunk: int = 0
    cancelled: bool = False

    def emit(self, item: Any) -> None:
        self.loop.call_soon_threadsafe(self.out.put_nowait, item)


class SpeechService:
    """Queue, workers, cache and metrics in front of one engine and one voice library."""

    def __init__(self, settings: Settings, library: VoiceLibrary, engine: Engine):
        self.settings = settings
        self.library = library
        self.engine = engine
        self.metrics = Metrics()
        self.cache = AudioCache(
            settings.cache_dir, settings.cache.max_mb * 1024 * 1024 if settings.cache.enabled else 0
        )
        library.subscribe(self._voice_changed)
        self.sample_rate = settings.speech.output_sample_rate or engine.sample_rate
        if getattr(engine, "batches_streams", False):  # concurrent requests share its forward steps
            default_workers = engine.max_concurrency
        else:
            default_workers = 1 if settings.engine.device != "cpu" else max(1, (os.cpu_count() or 2) // 2)
        workers = settings.speech.workers or default_workers
        workers = min(workers, getattr(engine, "max_concurrency", workers))  # e.g. a model that is not thread-safe
        self._cond = threading.Condition()
        self._heap: list[tuple[int, int, _Job]] = []
        self._seq = itertools.count()
        self._active = 0  # requests admitted and not finished
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"speech-{i}", daemon=True) for i in range(workers)]
        for t in self._threads:
            t.start()

    def _voice_changed(self, event: str, voice_id: str) -> None:
        if event in ("enrolled", "deleted"):  # renderings of a deleted or replaced voice must go
            self.cache.drop_voice(voice_id)

    # -- public API ----------------------------------------------------------------------------------------
    @property
    def queue_depth(self) -> int:
        with self._cond:
            return self._active

    def metrics_snapshot(self) -> dict[str, Any]:
        return self.metrics.snapshot(self.queue_depth)

    def resolve_voice(self, voice: str | None) -> str:
        """The voice id a request will use: the one given, else the configured default, else the only voice."""
        if voice:
            if not self.library.exists(voice):
                raise UnknownVoice(f"unknown voice {voice!r}")
            return voice
        default = self.settings.speech.default_voice
        if default and self.library.exists(default):
            return default
        voices = self.library.list()
        if not voices:
            raise UnknownVoice("no voice is enrolled yet")
        return voices[0].id

    async def synthesize(self, request: SpeechRequest) -> tuple[np.ndarray, int]:
        """The whole clip for a request."""
        parts = [chunk async for chunk in self.stream(request)]
        return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), self.sample_rate

    async def stream(self, request: SpeechRequest) -> AsyncIterator[np.ndarray]:
        """Yield float32 chunks at :attr:`sample_rate` as soon as each is ready."""
        start = time.perf_counter()
        self.metrics.requests += 1
        try:
            voice_id, prompt, options, chunks = await asyncio.to_thread(self._plan, request)
        except SpeechError:
            self.metrics.errors += 1
            raise
        key = self._cache_key(prompt, options, chunks)
        cached = await asyncio.to_thread(self.cache.get, voice_id, key) if self.cache.max_bytes else None
        if cached is not None:
            self.metrics.cache_hits += 1
            clip, sr = cached
            self.metrics.first_audio_s.append(time.perf_counter() - start)
            for piece in _pieces(audio.resample(clip, sr, self.sample_rate) * request.volume):
                yield piece
            return
        self.metrics.cache_misses += 1
        job = self._submit(chunks, prompt, options, request.priority)
        rendered: list[np.ndarray] = []
        first = True
        try:
            while True:
                item = await job.out.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    self.metrics.errors += 1
                    raise SpeechError(f"synthesis failed: {item}") from item
                if first:
                    self.metrics.first_audio_s.append(time.perf_counter() - start)
                    first = False
                rendered.append(item)
                yield _clip_volume(item, request.volume)
        finally:
            job.cancelled = True
        clip = np.concatenate(rendered) if rendered else np.zeros(0, np.float32)
        if len(clip):
            self.metrics.real_time_factor.append((time.perf_counter() - start) / (len(clip) / self.sample_rate))
            await asyncio.to_thread(self.cache.put, voice_id, key, clip, self.sample_rate)

    def close(self) -> None:
        """Stop the workers (pending jobs are dropped)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=5)

    # -- internals -----------------------------------------------------------------------------------------
    def _plan(self, request: SpeechRequest) -> tuple[str, VoicePrompt, SynthesisOptions, list[str]]:
        words = (request.text or "").strip()
        if not words:
            raise NothingToSay("nothing to say: the text is empty")
        if len(words) > self.settings.speech.max_text_chars:
            raise SpeechError(f"text too long: {len(words)} characters (limit {self.settings.speech.max_text_chars})")
        if not 0.25 <= request.speed <= 4.0:
            raise SpeechError("speed must be between 0.25 and 4")
        if not 0.0 <= request.volume <= 2.0:
            raise SpeechError("volume must be between 0 and 2")
        voice_id = self.resolve_voice(request.voice)
        try:
            profile = self.library.get(voice_id)
            prompt = self.library.prompt(voice_id)
        except VoiceNotFound as exc:
            raise UnknownVoice(f"unknown voice {voice_id!r}") from exc
        except EngineError as exc:
            raise SpeechError(f"voice {voice_id!r} cannot be used with this engine: {exc}") from exc
        language = request.language or profile.language or self.settings.speech.default_language
        fam = text.language_family(language)
        if fam not in {text.language_family(lang) for lang in self.engine.languages}:
            raise SpeechError(f"language {language!r} is not available; available: {', '.join(self.engine.languages)}")
        normalised = text.normalize(words, fam)
        chunks = text.split_chunks(normalised, self.settings.speech.chunk_chars, self.settings.speech.first_chunk_chars)
        if not chunks:
            raise NothingToSay("nothing to say: the text has no words")
        return voice_id, prompt, SynthesisOptions(language=fam, speed=request.speed), chunks

    def _cache_key(self, prompt: VoicePrompt, options: SynthesisOptions, chunks: list[str]) -> str:
        parts = [
            self.engine.name,
            self.engine.version,
            prompt.digest(),
            options.cache_token(),
            str(self.sample_rate),
            "\x1f".join(chunks),
        ]
        return hashlib.sha256("\x1e".join(parts).encode("utf-8")).hexdigest()[:32]

    def _submit(self, chunks: list[str], prompt: VoicePrompt, options: SynthesisOptions, priority: Priority) -> _Job:
        loop = asyncio.get_running_loop()
        job = _Job(chunks, prompt, options, priority, loop, asyncio.Queue())
        with self._cond:
            if self._closed:
                raise SpeechError("the speech service is shutting down")
            if self._active >= self.settings.speech.queue_size:
                self.metrics.busy += 1
                raise ServiceBusy(f"busy: {self._active} requests queued (limit {self.settings.speech.queue_size})")
            self._active += 1
            heapq.heappush(self._heap, (int(priority), next(self._seq), job))
            self._cond.notify()
        return job

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._heap and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                _, seq, job = heapq.heappop(self._heap)
            finished = job.cancelled or self._run_chunk(job)
            with self._cond:
                if finished:
                    self._active -= 1
                    if not job.cancelled:
                        job.emit(_DONE)
                else:  # more text: back in line at its original place, so higher priorities can go first
                    heapq.heappush(self._heap, (int(job.priority), seq, job))
                    self._cond.notify()

    def _run_chunk(self, job: _Job) -> bool:
        """Synthesise the job's next text chunk; True when the job is complete (or failed)."""
        words = job.chunks[job.next_chunk]
        job.next_chunk += 1
        try:
            for piece in self.engine.synthesize(words, job.prompt, job.options):
                if job.cancelled:
                    return True
                if self.sample_rate != self.engine.sample_rate:
                    piece = audio.resample(piece, self.engine.sample_rate, self.sample_rate)
                job.emit(piece)
        except Exception as exc:  # the listener gets the error; the worker lives on
            log.exception("synthesis failed")
            job.emit(exc)
            job.cancelled = True
            return True
        return job.next_chunk >= len(job.chunks)


def _clip_volume(x: np.ndarray, volume: float) -> np.ndarray:
    return x if volume == 1.0 else np.clip(x * volume, -1.0, 1.0).astype(np.float32)


def _pieces(x: np.ndarray, size: int = 8192) -> Iterator[np.ndarray]:
    x = np.clip(x, -1.0, 1.0).astype(np.float32)
    for i in range(0, len(x), size):
        yield x[i : i + size]
