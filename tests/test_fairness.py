"""Fair scheduling: requests of the same priority take turns, so a short one is not stuck behind a long one.

Everything is ordered by events (a gate that holds the engine, and the engine's log of what it made, in the order
the worker made it), not by the clock: speed is measured by ``benchmarks/fairness.py``. Each listener's audio is
checked whole and in order; the order in which two listeners read their queues is the event loop's business.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from voiceclone_core.config import Settings
from voiceclone_core.engines.base import SynthesisOptions, VoicePrompt
from voiceclone_core.service import Priority, ServiceError, SpeechRequest, SpeechService

from .conftest import FakeEngine, service_with

WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight")
LONG = " ".join(f"Long sentence number {w} is here." for w in WORDS)  # eight chunks, one per sentence
SHORT = "Lights off."


class PiecesEngine(FakeEngine):
    """A fake engine that speaks each chunk in ``pieces`` pieces, as real engines do (a sentence, half a sentence).

    ``log`` records (text, piece index) as each piece is made; ``dropped`` the texts whose rendering was closed
    before its last piece; ``holds`` maps a text to an event its rendering waits for before its first piece.
    Piece ``i`` of the ``n``-th call is ``len(text)`` samples of the value ``(10 n + i) / 1000``.
    """

    def __init__(self, pieces: int = 6) -> None:
        super().__init__()
        self.pieces = pieces
        self.log: list[tuple[str, int]] = []
        self.dropped: list[str] = []
        self.holds: dict[str, threading.Event] = {}

    def synthesize(self, text: str, prompt: VoicePrompt, options: SynthesisOptions) -> Iterator[np.ndarray]:
        self.calls.append(text)
        call = len(self.calls)
        finished = False
        try:
            if text in self.holds:
                self.holds[text].wait(timeout=10)
            for i in range(self.pieces):
                if self.gate is not None:
                    self.gate.wait(timeout=10)
                self.log.append((text, i))
                yield np.full(len(text), (10 * call + i) / 1000, np.float32)
            finished = True
        finally:
            if not finished:
                self.dropped.append(text)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """These tests follow the engine's own pieces (their count and values); the watermark re-cuts and changes them,
    so it is off here (marking in pieces is tested in test_watermark.py)."""
    settings.watermark.enabled = False
    return settings


def one_worker(settings: Settings, engine: FakeEngine, wav: Path, cache: bool = False) -> SpeechService:
    settings.speech.workers = 1
    settings.cache.enabled = cache
    return service_with(settings, engine, wav)


async def listen(svc: SpeechService, text: str, **request) -> list[np.ndarray]:
    """The audio of a request, piece by piece."""
    return [piece async for piece in svc.stream(SpeechRequest(text, voice="mum", **request))]


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def long_then_short(svc: SpeechService, engine: FakeEngine, **short) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The long request starts (its first chunk held by the gate), the short one queues, then the gate opens."""
    engine.gate = threading.Event()
    long_task = asyncio.create_task(listen(svc, LONG))
    await until(lambda: bool(engine.calls))
    short_task = asyncio.create_task(listen(svc, SHORT, **short))
    await until(lambda: svc.queue_depth == 2)
    engine.gate.set()
    long_audio, short_audio = await asyncio.gather(long_task, short_task)
    return long_audio, short_audio


def race(
    settings: Settings, engine: FakeEngine, wav: Path, **short
) -> tuple[SpeechService, list[np.ndarray], list[np.ndarray]]:
    """:func:`long_then_short` on a fresh one-worker service, closed afterwards (returned for its counters)."""
    svc = one_worker(settings, engine, wav)
    try:
        long_audio, short_audio = asyncio.run(long_then_short(svc, engine, **short))
    finally:
        svc.close()
    return svc, long_audio, short_audio


@pytest.fixture
def engine() -> PiecesEngine:
    return PiecesEngine()


def test_a_short_request_is_spoken_between_the_chunks_of_a_long_one(
    settings: Settings, fake_engine: FakeEngine, speech_wav: Path
) -> None:
    svc, long_audio, short_audio = race(settings, fake_engine, speech_wav)
    sentences = [f"Long sentence number {w} is here." for w in WORDS]
    # the short request was spoken right after the long one's first chunk, not after all eight of them
    assert fake_engine.calls == [sentences[0], SHORT, *sentences[1:]]
    # and the long request still got all its chunks (the fake speaks each in one piece)
    assert len(long_audio) == 8 and len(short_audio) == 1
    assert svc.queue_depth == 0


def test_requests_of_the_same_priority_take_turns(
    settings: Settings, fake_engine: FakeEngine, speech_wav: Path
) -> None:
    svc = one_worker(settings, fake_engine, speech_wav)
    fake_engine.gate = threading.Event()
    first = " ".join(f"First request sentence {w}." for w in WORDS[:4])
    second = " ".join(f"Second request sentence {w}." for w in WORDS[:4])

    async def scenario() -> list[list[np.ndarray]]:
        a = asyncio.create_task(listen(svc, first))
        await until(lambda: bool(fake_engine.calls))
        b = asyncio.create_task(listen(svc, second))
        await until(lambda: svc.queue_depth == 2)
        fake_engine.gate.set()
        return await asyncio.gather(a, b)

    try:
        audio = asyncio.run(scenario())
    finally:
        svc.close()
    assert [c.split()[0] for c in fake_engine.calls] == ["First", "Second"] * 4
    assert fake_engine.calls[0::2] == [f"First request sentence {w}." for w in WORDS[:4]]  # each in its order
    assert fake_engine.calls[1::2] == [f"Second request sentence {w}." for w in WORDS[:4]]
    assert [len(a) for a in audio] == [4, 4]


def test_a_higher_priority_still_goes_first(settings: Settings, fake_engine: FakeEngine, speech_wav: Path) -> None:
    """Turns are taken within a priority: an announcement waits for the interactive request to finish."""
    _, long_audio, short_audio = race(settings, fake_engine, speech_wav, priority=Priority.ANNOUNCEMENT)
    assert fake_engine.calls[-1] == SHORT and len(fake_engine.calls) == 9
    assert len(long_audio) == 8 and len(short_audio) == 1


def test_a_long_chunk_pauses_between_pieces_for_a_waiting_request(
    settings: Settings, speech_wav: Path, engine: PiecesEngine
) -> None:
    """An engine with no concurrency limit: a rendering pauses after each piece while another request waits, so the
    two take turns piece by piece, and the long request goes on alone once the short one is done."""
    svc, long_audio, short_audio = race(settings, engine, speech_wav)
    first = "Long sentence number one is here."
    # one piece of the long request, then the short one's first piece, and so on
    assert engine.log[:12] == [item for i in range(6) for item in ((first, i), (SHORT, i))]
    assert engine.log[12:] == [(f"Long sentence number {w} is here.", i) for w in WORDS[1:] for i in range(6)]
    assert [float(piece[0]) for piece in short_audio] == pytest.approx([(20 + i) / 1000 for i in range(6)])
    # the long request's audio is every piece of every chunk, in order: call 1 is its first chunk, call 2 the
    # short request, calls 3-9 its other chunks
    expected = [(10 * call + i) / 1000 for call in (1, *range(3, 10)) for i in range(6)]
    assert [float(piece[0]) for piece in long_audio] == pytest.approx(expected)
    assert engine.dropped == [] and svc.queue_depth == 0


@pytest.mark.parametrize(("max_concurrency", "batches"), [(1, False), (4, True)])
def test_an_engine_with_a_concurrency_limit_or_batches_finishes_each_chunk(
    settings: Settings, speech_wav: Path, engine: PiecesEngine, max_concurrency: int, batches: bool
) -> None:
    """A paused call would count against the engine's limit (or hold a batch slot): turns end only between chunks."""
    engine.max_concurrency, engine.batches_streams = max_concurrency, batches
    _, long_audio, short_audio = race(settings, engine, speech_wav)
    first = "Long sentence number one is here."
    # the short request waits for the long one's first chunk, not for all of it
    assert engine.log[:12] == [(first, i) for i in range(6)] + [(SHORT, i) for i in range(6)]
    assert len(long_audio) == 48 and len(short_audio) == 6 and engine.calls[1] == SHORT


def test_a_listener_leaving_while_its_rendering_is_paused_closes_it(
    settings: Settings, speech_wav: Path, engine: PiecesEngine
) -> None:
    svc = one_worker(settings, engine, speech_wav)
    engine.gate = threading.Event()
    engine.holds[SHORT] = hold = threading.Event()

    async def scenario() -> list[np.ndarray]:
        stream = svc.stream(SpeechRequest(LONG, voice="mum"))
        first_piece = asyncio.create_task(anext(stream))
        await until(lambda: bool(engine.calls))
        short = asyncio.create_task(listen(svc, SHORT))
        await until(lambda: svc.queue_depth == 2)
        engine.gate.set()
        await first_piece  # the long rendering pauses after this piece: the short request is waiting
        await stream.aclose()  # the long request's listener leaves
        hold.set()
        audio = await short
        await until(lambda: svc.queue_depth == 0 and bool(engine.dropped))
        return audio

    try:
        short_audio = asyncio.run(scenario())
    finally:
        engine.gate.set()
        hold.set()
        svc.close()
    assert short_audio and engine.dropped == ["Long sentence number one is here."]
    assert [t for t, _ in engine.log].count("Long sentence number one is here.") == 1  # nothing more was made
    assert engine.calls == ["Long sentence number one is here.", SHORT]


def test_closing_the_service_closes_paused_renderings(
    settings: Settings, speech_wav: Path, engine: PiecesEngine
) -> None:
    svc = one_worker(settings, engine, speech_wav)
    engine.gate = threading.Event()
    engine.holds[SHORT] = hold = threading.Event()

    async def scenario() -> None:
        stream = svc.stream(SpeechRequest(LONG, voice="mum"))
        first_piece = asyncio.create_task(anext(stream))
        await until(lambda: bool(engine.calls))
        short = asyncio.create_task(listen(svc, SHORT))
        await until(lambda: svc.queue_depth == 2)
        engine.gate.set()
        await first_piece
        await until(lambda: SHORT in engine.calls)  # the long rendering is paused, the worker held in the short one
        threading.Timer(0.2, hold.set).start()
        await asyncio.to_thread(svc.close)
        with pytest.raises(ServiceError, match="shutting down"):
            await short

    try:
        asyncio.run(scenario())
    finally:
        engine.gate.set()
        hold.set()
    assert "Long sentence number one is here." in engine.dropped


def test_cached_chunks_wait_for_the_paused_chunk_before_them(
    settings: Settings, speech_wav: Path, engine: PiecesEngine
) -> None:
    svc = one_worker(settings, engine, speech_wav, cache=True)
    text = "Alpha is the first sentence here. Beta two."

    async def scenario() -> list[np.ndarray]:
        await listen(svc, "Beta two.")  # now in the cache
        engine.gate = threading.Event()
        long_task = asyncio.create_task(listen(svc, text))
        await until(lambda: len(engine.calls) == 2)
        short_task = asyncio.create_task(listen(svc, SHORT))
        await until(lambda: svc.queue_depth == 2)
        engine.gate.set()
        long_audio, _ = await asyncio.gather(long_task, short_task)
        return long_audio

    try:
        long_audio = asyncio.run(scenario())
    finally:
        svc.close()
    assert engine.calls == ["Beta two.", "Alpha is the first sentence here.", SHORT]
    assert engine.log[6:8] == [("Alpha is the first sentence here.", 0), (SHORT, 0)]  # it paused
    # six pieces of the first chunk (call 2), then the cached second chunk (call 1's six pieces, whole)
    assert [len(p) for p in long_audio] == [len("Alpha is the first sentence here.")] * 6 + [6 * len("Beta two.")]
    assert [float(p[0]) for p in long_audio[:6]] == pytest.approx([(20 + i) / 1000 for i in range(6)])


def test_several_workers_take_turns_without_mixing_up_a_request(
    settings: Settings, speech_wav: Path, engine: PiecesEngine
) -> None:
    """Two workers, four requests: each request's chunks and pieces still reach it whole and in order."""
    engine.pieces = 3
    settings.speech.workers = 2
    settings.cache.enabled = False
    svc = service_with(settings, engine, speech_wav)
    requests = {r: [f"Request {r} sentence {w}." for w in WORDS[:4]] for r in ("one", "two", "three", "four")}

    async def scenario() -> list[list[np.ndarray]]:
        return await asyncio.gather(*(listen(svc, " ".join(sentences)) for sentences in requests.values()))

    try:
        audio = asyncio.run(scenario())
    finally:
        svc.close()
    assert len(engine.calls) == 16
    for (r, sentences), pieces in zip(requests.items(), audio, strict=True):
        calls = [n for n, call in enumerate(engine.calls, 1) if call.startswith(f"Request {r} ")]
        assert [engine.calls[n - 1] for n in calls] == sentences  # its chunks, in order
        assert [float(p[0]) for p in pieces] == pytest.approx([(10 * n + i) / 1000 for n in calls for i in range(3)])
