"""SpeechService: the one thing every door calls — speech, voices, and what the engine offers.

Speech: ``stream(request)`` yields audio chunks as they are produced, ``synthesize(request)`` returns a whole
:class:`Rendering`. The text may be a string or an async iterator of pieces (an LLM's answer as it streams): the
service cuts it into chunks itself, picks each chunk's language (``languages.py``), and schedules the chunks on a
bounded pool of workers (``scheduler.py``), so an interactive request overtakes a long announcement between
sentences. Rendered chunks go into a size-capped on-disk cache, per voice.

Voices: ``voices``, ``voice``, ``enroll``, ``rename``, ``delete``, ``check_recording`` over the voice library.
Listing, renaming and deleting never load the engine; it is loaded on first need (or by ``start``).

Every failure reaches doors as one of the few errors in ``errors.py``; nothing from the engines or the library leaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import statistics
import threading
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from voiceclone_core import audio, text, watermark
from voiceclone_core.config import Settings
from voiceclone_core.engines.base import Engine, EngineError, VoicePrompt
from voiceclone_core.engines.base import EngineUnavailable as _EngineUnavailable
from voiceclone_core.engines.registry import required_models
from voiceclone_core.models import ModelManager
from voiceclone_core.service import identity
from voiceclone_core.service.cache import AudioCache
from voiceclone_core.service.errors import (
    InvalidRequest,
    NothingToSay,
    RecordingRejected,
    ServiceBusy,
    ServiceError,
    ServiceUnavailable,
    SynthesisFailed,
    UnknownVoice,
)
from voiceclone_core.service.languages import LanguageChooser, enrollment_language, voice_languages
from voiceclone_core.service.planner import TextPlanner
from voiceclone_core.service.scheduler import DONE, Chunk, Job, Priority, Scheduler
from voiceclone_core.voices import (
    VoiceError,
    VoiceLibrary,
    VoiceNotFound,
    VoiceProfile,
    check_voice_id,
    slugify,
    source_digest,
)

log = logging.getLogger(__name__)

EngineLoader = Callable[[], Engine]


@dataclass(frozen=True)
class SpeechRequest:
    """What to say (a string, or an async iterable of text pieces), in which voice, and how."""

    text: str | AsyncIterable[str]
    voice: str | None = None
    language: str | None = None
    speed: float = 1.0
    volume: float = 1.0
    priority: Priority = Priority.INTERACTIVE


@dataclass(frozen=True)
class Health:
    """``api/health``: ``status`` ok | unavailable, who the server is, and what stops the engine."""

    status: str
    server_id: str
    version: str
    engine: EngineInfo | None
    voices: int
    error: str = ""
    missing_models: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rendering:
    """A whole spoken request: float32 audio, its rate, how soon the first audio came, the languages spoken, whose
    voice it is and whether it carries the watermark."""

    audio: np.ndarray
    sample_rate: int
    first_audio_s: float | None
    languages: tuple[str, ...]
    voice_name: str = ""
    marked: bool = False

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate

    def file_info(self) -> dict[str, str]:
        """What a file of this rendering says it is (WAV ``LIST/INFO``: comment and software)."""
        return watermark.file_info(self.voice_name, self.marked, identity.package_version())


@dataclass(frozen=True)
class Enrollment:
    """A voice just enrolled: its profile, the recording's quality report and how the engine learnt it."""

    profile: VoiceProfile
    report: audio.QualityReport
    mode: str | None = None


@dataclass(frozen=True)
class EngineInfo:
    """What the loaded engine offers."""

    name: str
    version: str
    sample_rate: int
    languages: tuple[str, ...]


@dataclass
class Metrics:
    """Counters and recent timings (medians over the last 100 requests); cache counts are per text chunk."""

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


@dataclass
class _Plan:
    """One request once its voice and engine are known (``digest``: its cache-key prefix, empty without a cache)."""

    voice_id: str
    prompt: VoicePrompt
    digest: str
    planner: TextPlanner
    voice_name: str = ""
    first_audio_s: float | None = None


@dataclass
class _Flight:
    """A request admitted to the scheduler: its plan, its job, when it started, and the task feeding streamed text."""

    plan: _Plan
    scheduler: Scheduler
    job: Job
    started: float
    feeder: asyncio.Task[None] | None = None


@contextlib.contextmanager
def _voice_errors() -> Iterator[None]:
    """The library's and the audio module's errors as service errors."""
    try:
        yield
    except VoiceNotFound as exc:
        raise UnknownVoice(str(exc)) from exc
    except VoiceError as exc:
        raise InvalidRequest(str(exc)) from exc
    except audio.SampleRejected as exc:
        raise RecordingRejected(f"recording rejected: {exc}", exc.report) from exc
    except audio.AudioError as exc:
        raise InvalidRequest(str(exc)) from exc


class SpeechService:
    """Speech and voice management over one engine (loaded on first need), one voice library and one audio cache."""

    def __init__(self, settings: Settings, library: VoiceLibrary, load_engine: EngineLoader) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.cache = AudioCache(
            settings.cache_dir, settings.cache.max_mb * 1024 * 1024 if settings.cache.enabled else 0
        )
        self._library = library
        self._load_engine = load_engine
        self._engine: Engine | None = None
        self._scheduler: Scheduler | None = None
        self._engine_lock = threading.Lock()
        self._closed = False
        self._load_error = ""
        self.api_token = identity.ApiToken(settings.data_dir)
        self.watermark = watermark.Watermarker()
        self.marking = settings.watermark.enabled
        if not self.marking:
            log.warning(
                "watermark.enabled is off: speech from this server will not carry the inaudible mark that says it is "
                "AI-generated, and `voiceclone detect` will not recognise it"
            )
        library.subscribe(self._voice_changed)

    # -- the engine ----------------------------------------------------------------------------------------------
    def _ready(self) -> tuple[Engine, Scheduler]:
        """The engine and its workers, loaded on first use (:class:`ServiceUnavailable` if it cannot load)."""
        with self._engine_lock:
            if self._closed:
                raise ServiceUnavailable("the speech service is shutting down")
            if self._engine is None or self._scheduler is None:
                if self.marking:
                    self._load_watermark()
                try:
                    engine = self._load_engine()
                except (_EngineUnavailable, EngineError) as exc:
                    self._load_error = f"the speech engine cannot start: {exc}"
                    raise ServiceUnavailable(self._load_error) from exc
                except Exception as exc:  # a model that does not load, a package that breaks: same answer, logged
                    log.exception("the speech engine failed to load")
                    self._load_error = f"the speech engine cannot start: {exc}"
                    raise ServiceUnavailable(self._load_error) from exc
                self._load_error = ""
                rate = self.settings.speech.output_sample_rate or engine.sample_rate
                if self.marking:  # the first pass through torch costs seconds: not on the first request
                    if not getattr(engine, "uses_torch", True):
                        self.watermark.run_alone()
                    self.watermark.mark(np.zeros(rate // 2, np.float32), rate)
                render = functools.partial(self._render, engine, rate, self.marking)
                # an engine with no concurrency limit that does not batch takes a paused call as one more
                # concurrent call: the workers may then pause a long chunk for a waiting request
                resumable = engine.max_concurrency is None and not engine.batches_streams
                self._scheduler = Scheduler(self._workers(engine), self.settings.speech, render, resumable=resumable)
                self._engine = engine
            return self._engine, self._scheduler

    def _load_watermark(self) -> None:
        try:
            self.watermark.load()
        except watermark.WatermarkUnavailable as exc:
            self._load_error = f"the watermark cannot load: {exc} (speech is never made unmarked unless "
            self._load_error += "watermark.enabled is turned off)"
            raise ServiceUnavailable(self._load_error) from exc

    def _workers(self, engine: Engine) -> int:
        if engine.batches_streams and engine.max_concurrency:  # concurrent requests share its forward steps
            default = engine.max_concurrency
        elif self.settings.engine.device != "cpu":
            default = 1
        else:
            default = max(1, (os.cpu_count() or 2) // 2)
        workers = self.settings.speech.workers or default
        return min(workers, engine.max_concurrency) if engine.max_concurrency else workers

    def start(self) -> EngineInfo:
        """Load the engine now and prepare every voice enrolled under another engine (server start)."""
        engine, _ = self._ready()
        prepared = self._library.prepare_missing(engine)
        if prepared:
            log.info("prepared %d voice(s) for engine %s: %s", len(prepared), engine.name, ", ".join(prepared))
        return self.engine_info()

    def engine_info(self) -> EngineInfo:
        """Name, version, rate and languages of the engine (loads it)."""
        engine, _ = self._ready()
        return EngineInfo(engine.name, engine.version, engine.sample_rate, tuple(engine.languages))

    @functools.cached_property
    def server_id(self) -> str:
        """This server's stable id (kept in the data folder; Home Assistant keys its entry on it)."""
        return identity.server_id(self.settings.data_dir)

    @property
    def version(self) -> str:
        """The version of the running server (the package's)."""
        return identity.package_version()

    def health(self) -> Health:
        """Whether the engine runs (loading it unless an earlier load failed: requests retry, health only reports),
        who the server is, and what stops the engine (its error, the models it needs that are not installed)."""
        if not self._load_error:
            with contextlib.suppress(ServiceUnavailable):
                self._ready()
        with self._engine_lock:
            engine = self._engine
            error = self._load_error or ("the speech service is shutting down" if self._closed else "")
        info = EngineInfo(engine.name, engine.version, engine.sample_rate, tuple(engine.languages)) if engine else None
        status = "ok" if info else "unavailable"
        manager = ModelManager(self.settings.resolved_models_dir)
        missing = tuple(
            name for name in required_models(self.settings) if manager.known(name) and not manager.installed(name)
        )
        return Health(status, self.server_id, self.version, info, len(self.voices()), error, missing)

    @property
    def sample_rate(self) -> int:
        """The rate of all audio the service produces (loads the engine unless a rate is configured)."""
        return self.settings.speech.output_sample_rate or self._ready()[0].sample_rate

    @property
    def queue_depth(self) -> int:
        """Requests admitted and not finished."""
        return self._scheduler.depth if self._scheduler is not None else 0

    def metrics_snapshot(self) -> dict[str, Any]:
        return self.metrics.snapshot(self.queue_depth)

    def close(self) -> None:
        """Stop the workers (requests in flight end with an error) and free the engine."""
        with self._engine_lock:
            self._closed = True
            if self._scheduler is not None:
                self._scheduler.shutdown()
            if self._engine is not None:
                self._engine.close()
            self._engine, self._scheduler = None, None

    # -- voices --------------------------------------------------------------------------------------------------
    def subscribe(self, listener: Callable[[str, str], None]) -> None:
        """Call ``listener(event, voice_id)`` after each change: ``enrolled``, ``renamed`` or ``deleted``."""
        self._library.subscribe(listener)

    def voices(self) -> list[VoiceProfile]:
        """Every enrolled voice, sorted by display name."""
        return self._library.list()

    def voice(self, voice_id: str) -> VoiceProfile:
        """One voice (:class:`UnknownVoice`, or :class:`InvalidRequest` for an id that cannot exist)."""
        with _voice_errors():
            return self._library.get(voice_id)

    def voice_languages(self, profile: VoiceProfile) -> list[str]:
        """The languages a voice is offered in: all the engine speaks, the voice's own first (only its own while the
        engine cannot start, so the voice stays listed)."""
        try:
            spoken = self._ready()[0].languages
        except ServiceUnavailable:
            return [profile.language]
        return voice_languages(profile.language, spoken)

    def enroll(
        self,
        name: str,
        sample: bytes | str | os.PathLike[str],
        *,
        consent: str | None,
        transcript: str | None = None,
        language: str | None = None,
        voice_id: str | None = None,
        origin: str = "cli",
    ) -> Enrollment:
        """Enroll (or re-enroll) a voice from a recording; a failure leaves any previous version untouched."""
        with _voice_errors():
            VoiceLibrary.check_enrollment(name, consent, voice_id)  # before loading anything
            if transcript is not None and not isinstance(transcript, str):
                raise InvalidRequest("the transcript must be text")
            lang = enrollment_language(language, transcript, self.settings.speech.default_language)
            engine, _ = self._ready()
            if not engine.languages:  # a voice speaks the engine's languages: with none it could never speak
                raise ServiceUnavailable("the speech engine speaks no language")
            try:
                profile, report = self._library.enroll(
                    name,
                    sample,
                    engine=engine,
                    consent=consent,
                    transcript=transcript,
                    language=lang,
                    voice_id=voice_id,
                    origin=origin,
                )
            except EngineError as exc:
                raise RecordingRejected(f"could not learn this voice from the recording: {exc}") from exc
            except OSError as exc:
                raise InvalidRequest(f"cannot read the recording: {exc.strerror or exc}") from exc
        return Enrollment(profile, report, profile.prompts.get(engine.name, {}).get("mode"))

    def rename(self, voice_id: str, name: str) -> VoiceProfile:
        """Change a voice's display name (its id stays)."""
        with _voice_errors():
            return self._library.rename(voice_id, name)

    def delete(self, voice_id: str) -> None:
        """Remove every file of a voice and every cached rendering made with it."""
        with _voice_errors():
            self._library.delete(voice_id)

    def check_recording(self, sample: bytes) -> audio.QualityReport:
        """The quality report of a recording; nothing is saved. A recording over the length limit gets a "reject"
        report without being decoded in full."""
        with _voice_errors():
            try:
                x, sr = audio.decode(sample)
            except audio.SampleRejected as exc:
                return exc.report
            return audio.assess(x, sr)

    def detect(self, sample: bytes | str | os.PathLike[str]) -> watermark.Detection:
        """Whether a recording carries this server's watermark (works with marking off; never loads the engine)."""
        with _voice_errors():
            x, sr = audio.decode(sample)
        try:
            return self.watermark.detect(x, sr)
        except watermark.WatermarkUnavailable as exc:
            raise ServiceUnavailable(f"the watermark detector cannot load: {exc}") from exc

    def reading_passage(self, language: str | None) -> tuple[str, str]:
        """The passage to read aloud when enrolling in ``language``: (language, text)."""
        return text.reading_passage(language)

    def preview_sentence(self, voice_id: str) -> str:
        """A sentence that shows off a voice: in its own language when the engine speaks it, else in the configured
        default or the engine's first language, so that every voice has a preview it can say (loads the engine)."""
        own = self.voice(voice_id).language
        spoken = [text.language_family(lang) for lang in self.engine_info().languages]
        for lang in (own, self.settings.speech.default_language):
            if lang and text.language_family(lang) in spoken:
                return text.preview_sentence(lang)
        return text.preview_sentence(spoken[0] if spoken else own)

    def _voice_changed(self, event: str, voice_id: str) -> None:
        if event in ("enrolled", "deleted"):  # renderings of a deleted or replaced voice must go
            self.cache.drop_voice(voice_id)

    # -- speech --------------------------------------------------------------------------------------------------
    def _resolve_voice(self, voice: str | None) -> str:
        """The voice id a request will use: the one given, else the configured default, else the first voice."""
        if voice is not None and not isinstance(voice, str):
            raise InvalidRequest(f"voice must be a voice id, not {type(voice).__name__}")
        if voice:
            if not self._library.exists(voice):
                raise UnknownVoice(f"unknown voice {voice!r}")
            return voice
        default = self.settings.speech.default_voice
        if default and self._library.exists(default):
            return default
        voices = self._library.list()
        if not voices:
            raise UnknownVoice("no voice is enrolled yet")
        return voices[0].id

    async def synthesize(self, request: SpeechRequest) -> Rendering:
        """The whole audio of a request."""
        flight = await self._take_off(request)
        parts = [piece async for piece in self._audio(flight, request.volume)]
        clip = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        plan = flight.plan
        languages = tuple(plan.planner.languages)
        return Rendering(clip, self.sample_rate, plan.first_audio_s, languages, plan.voice_name, self.marking)

    async def stream(self, request: SpeechRequest) -> AsyncIterator[np.ndarray]:
        """Float32 audio chunks at :attr:`sample_rate`, each as soon as it is ready."""
        flight = await self._take_off(request)
        async with contextlib.aclosing(self._audio(flight, request.volume)) as pieces:
            async for piece in pieces:
                yield piece

    async def _take_off(self, request: SpeechRequest) -> _Flight:
        """Check and plan a request, admit it, and start feeding its chunks to the workers."""
        started = time.perf_counter()
        self.metrics.requests += 1
        try:
            plan = await asyncio.to_thread(self._plan, request)
            chunks = plan.planner.whole(request.text) if isinstance(request.text, str) else []
            await self._look_up(plan, chunks)
            _, scheduler = self._ready()
            job = scheduler.open(plan.voice_id, plan.prompt, request.priority)
        except ServiceBusy:
            self.metrics.busy += 1
            self.metrics.errors += 1
            raise
        except ServiceError:
            self.metrics.errors += 1
            raise
        flight = _Flight(plan, scheduler, job, started)
        if isinstance(request.text, str):
            for chunk in chunks:
                scheduler.offer(job, chunk)
            scheduler.close(job)
        else:
            flight.feeder = asyncio.create_task(self._feed(scheduler, job, plan, request.text))
        return flight

    async def _audio(self, flight: _Flight, volume: float) -> AsyncIterator[np.ndarray]:
        """The audio of a request in flight, as the workers make it; the request is dropped when the listener goes."""
        plan, samples = flight.plan, 0
        try:
            while True:
                item = await flight.job.out.get()
                if item is DONE:
                    break
                if isinstance(item, BaseException):
                    self.metrics.errors += 1
                    if isinstance(item, ServiceError):
                        raise item
                    raise SynthesisFailed(f"synthesis failed: {item}") from item
                if plan.first_audio_s is None:
                    plan.first_audio_s = time.perf_counter() - flight.started
                    self.metrics.first_audio_s.append(plan.first_audio_s)
                samples += len(item)
                yield _with_volume(item, volume)
        finally:
            flight.scheduler.cancel(flight.job)
            if flight.feeder is not None:
                flight.feeder.cancel()
        if not plan.planner.chunks:
            raise NothingToSay("nothing to say: the text has no words")
        if samples:
            elapsed = time.perf_counter() - flight.started
            self.metrics.real_time_factor.append(elapsed / (samples / self.sample_rate))

    def _plan(self, request: SpeechRequest) -> _Plan:
        """Check a request and find its voice, prompt and languages (in a worker thread: it may load the engine)."""
        if not isinstance(request.text, str | AsyncIterable):
            raise InvalidRequest(f"text must be a string, not {type(request.text).__name__}")
        speed = _number("speed", request.speed, 0.25, 4.0)
        _number("volume", request.volume, 0.0, 2.0)  # applied to the audio as it leaves
        if request.language is not None and not isinstance(request.language, str):
            raise InvalidRequest(f"language must be a language code such as 'en', not {request.language!r}")
        voice_id = self._resolve_voice(request.voice)
        engine, _ = self._ready()
        with _voice_errors():
            profile = self._library.get(voice_id)
            try:
                prompt = self._library.prompt(voice_id, engine)
            except EngineError as exc:
                raise SynthesisFailed(f"voice {voice_id!r} cannot be used with this engine: {exc}") from exc
        chooser = LanguageChooser(
            engine.languages,
            also=getattr(engine, "also_speaks", frozenset()),
            requested=request.language or None,
            voice_language=profile.language,
            default_language=self.settings.speech.default_language,
        )
        digest = ""
        if self.cache.enabled:  # hashing the prompt (megabytes for some engines) is only for cache keys
            mark = watermark.METHOD if self.marking else "unmarked"  # a cache from before marking must not be served
            parts = [engine.name, engine.version, prompt.digest(), str(self.sample_rate), mark]
            digest = hashlib.sha256("\x1e".join(parts).encode("utf-8")).hexdigest()
        planner = TextPlanner(self.settings.speech, chooser, speed, pack=getattr(engine, "packs_sentences", False))
        return _Plan(voice_id, prompt, digest, planner, profile.name)

    async def _look_up(self, plan: _Plan, chunks: list[Chunk]) -> None:
        """Give each chunk its cache key, and its audio where the cache has it (nothing to do without a cache)."""
        if chunks and plan.digest:
            await asyncio.to_thread(self._look_up_now, plan, chunks)

    def _look_up_now(self, plan: _Plan, chunks: list[Chunk]) -> None:
        for chunk in chunks:
            key = f"{plan.digest}\x1e{chunk.options.cache_token()}\x1e{chunk.text}"
            chunk.key = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
            cached = self.cache.get(plan.voice_id, chunk.key)
            if cached is not None:
                clip, rate = cached
                chunk.audio = audio.resample(clip, rate, self.sample_rate)
                self.metrics.cache_hits += 1
            else:
                self.metrics.cache_misses += 1

    async def _feed(self, scheduler: Scheduler, job: Job, plan: _Plan, pieces: AsyncIterable[str]) -> None:
        """Cut streamed text into chunks as it arrives and hand them to the job (given up after
        ``speech.text_idle_s`` without a piece)."""
        idle = self.settings.speech.text_idle_s
        source = aiter(pieces)
        try:
            while True:
                try:
                    piece = await asyncio.wait_for(anext(source), idle)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise InvalidRequest(f"no text came for {idle:g} s: the text stream was given up") from None
                chunks = plan.planner.feed(piece)
                await self._look_up(plan, chunks)
                for chunk in chunks:
                    scheduler.offer(job, chunk)
            chunks = plan.planner.flush()
            await self._look_up(plan, chunks)
            for chunk in chunks:
                scheduler.offer(job, chunk)
            scheduler.close(job)
        except ServiceError as exc:
            scheduler.fail(job, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the text source itself failed
            log.warning("streamed text failed: %s", exc)
            scheduler.fail(job, InvalidRequest(f"the text stream failed: {exc}"))

    def _render(self, engine: Engine, rate: int, marked: bool, job: Job, chunk: Chunk) -> Iterator[np.ndarray]:
        """Speak one chunk (worker thread) at ``rate``, marked as it comes when ``marked`` (the marker holds back
        about 0.2 s until the chunk ends); a chunk spoken whole goes into the cache."""
        parts = []
        marker = self.watermark.stream(rate) if marked else None
        for piece in engine.synthesize(chunk.text, job.prompt, chunk.options):
            if rate != engine.sample_rate:
                piece = audio.resample(piece, engine.sample_rate, rate)
            if marker is not None:
                piece = marker.push(piece)
            if len(piece):
                parts.append(piece)
                yield piece
        if marker is not None and len(tail := marker.flush()):
            parts.append(tail)
            yield tail
        if parts and chunk.key:
            self.cache.put(job.voice_id, chunk.key, np.concatenate(parts), rate)


def _number(name: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidRequest(f"{name} must be a number from {low:g} to {high:g}")
    return float(value)


def _with_volume(x: np.ndarray, volume: float) -> np.ndarray:
    return x if volume == 1.0 else np.clip(x * volume, -1.0, 1.0).astype(np.float32)


def voice_id_for(name: str, voice_id: str | None = None) -> str:
    """The id a voice gets: ``voice_id`` when given (checked), else one derived from its display name."""
    with _voice_errors():
        return check_voice_id(voice_id or slugify(name))


def recording_digest(sample: bytes | str | os.PathLike[str]) -> str:
    """SHA-256 of a recording as submitted, to tell whether it changed since it was enrolled."""
    return source_digest(sample)
