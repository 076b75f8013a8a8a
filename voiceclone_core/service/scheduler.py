"""A priority queue of requests and a pool of worker threads that render them one text chunk at a time.

A job is one request in flight. Its chunks arrive all at once (a whole text) or one by one (streamed text, cut as it
comes); workers render each job's chunks in order, one at a time. The line is ordered by priority, then round robin:
each time a job (re-)enters the line it goes behind every job of its priority already waiting, so a job that has
just had its turn waits behind the others, a new request's first chunk waits at most one turn of each job ahead of
it, and a higher-priority request overtakes a long announcement at its next turn boundary. A turn is one chunk; with
``resumable`` renderings (an engine that takes any number of concurrent calls, see :class:`Scheduler`) it ends
earlier, after any piece of audio, when another job of the same or a higher priority is waiting: the rendering is
paused there and resumed at the job's next turn, so a short request does not wait for a long sentence either.
A chunk that is already rendered (from the cache) passes straight to the listener without a worker. Admission is
bounded: beyond ``queue_size`` jobs in flight, :meth:`Scheduler.open` raises :class:`ServiceBusy` at once.

Everything a job's listener receives arrives on its asyncio queue: audio arrays, then :data:`DONE`, or an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np

from voiceclone_core.config import SpeechSettings
from voiceclone_core.engines.base import SynthesisOptions, VoicePrompt
from voiceclone_core.service.errors import ServiceBusy, ServiceUnavailable

log = logging.getLogger(__name__)

DONE = object()


class Priority(IntEnum):
    """Lower runs first."""

    INTERACTIVE = 0
    ANNOUNCEMENT = 1
    BATCH = 2


@dataclass
class Chunk:
    """One piece of text to speak, ready for the engine (``audio``: already rendered, from the cache)."""

    text: str
    options: SynthesisOptions
    key: str = ""
    audio: np.ndarray | None = None


@dataclass(eq=False)
class Job:
    """One request in flight: its voice, its chunks still to speak, and where its audio goes."""

    voice_id: str
    prompt: VoicePrompt
    priority: Priority
    seq: int
    loop: asyncio.AbstractEventLoop
    out: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    pending: deque[Chunk] = field(default_factory=deque)
    paused: Iterator[np.ndarray] | None = None  # the chunk being spoken, paused between pieces (ahead of pending)
    busy: bool = False  # in the queue or being rendered
    closed: bool = False  # no more chunks will come
    cancelled: bool = False  # the listener left, or the request failed
    ended: bool = False

    def emit(self, item: Any) -> None:
        """Hand ``item`` to the listener's event loop; once that loop is closed the listener is gone: dropped."""
        with contextlib.suppress(RuntimeError):  # call_soon_threadsafe's "Event loop is closed"
            self.loop.call_soon_threadsafe(self.out.put_nowait, item)


Render = Callable[[Job, Chunk], Iterator[np.ndarray]]
Turn = tuple[Iterator[np.ndarray] | None, Exception | None]


class Scheduler:
    """Jobs, their order, and the worker threads (``workers`` of them) that call ``render``.

    ``resumable``: the iterators ``render`` returns may be paused between pieces and resumed later by another worker
    while other chunks are rendered meanwhile (so more renderings are open at once than there are workers) — true
    of an engine with no concurrency limit that does not batch streams; otherwise a turn is always a whole chunk.
    """

    def __init__(self, workers: int, limits: SpeechSettings, render: Render, *, resumable: bool = False) -> None:
        self.limits = limits
        self._render = render
        self._resumable = resumable
        self._cond = threading.Condition()
        self._heap: list[tuple[int, int, Job]] = []
        self._seq = itertools.count()
        self._jobs: set[Job] = set()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"speech-{i}", daemon=True) for i in range(workers)]
        for t in self._threads:
            t.start()

    @property
    def workers(self) -> int:
        return len(self._threads)

    @property
    def depth(self) -> int:
        """Requests admitted and not finished."""
        with self._cond:
            return len(self._jobs)

    # -- the listener's side (any thread; open() on the event loop) ----------------------------------------------
    def open(self, voice_id: str, prompt: VoicePrompt, priority: Priority) -> Job:
        """Admit a request (:class:`ServiceBusy` when the queue is full)."""
        loop = asyncio.get_running_loop()
        with self._cond:
            if self._closed:
                raise ServiceUnavailable("the speech service is shutting down")
            if len(self._jobs) >= self.limits.queue_size:
                raise ServiceBusy(f"busy: {len(self._jobs)} requests queued (limit {self.limits.queue_size})")
            job = Job(voice_id, prompt, priority, next(self._seq), loop)
            self._jobs.add(job)
        return job

    def offer(self, job: Job, chunk: Chunk) -> None:
        """Add the next chunk of a job."""
        with self._cond:
            if not job.ended:
                job.pending.append(chunk)
                self._pump(job)

    def close(self, job: Job) -> None:
        """No more chunks will come: the job ends once the last one is spoken."""
        with self._cond:
            job.closed = True
            self._pump(job)

    def fail(self, job: Job, error: BaseException) -> None:
        """End a job with an error for its listener."""
        with self._cond:
            if not job.ended:
                job.emit(error)
                job.cancelled = True
                self._pump(job)

    def cancel(self, job: Job) -> None:
        """The listener left: drop the job (a chunk being rendered stops at its next piece)."""
        with self._cond:
            job.cancelled = True
            self._pump(job)

    def shutdown(self) -> None:
        """Stop the workers; jobs still in flight end with an error."""
        with self._cond:
            self._closed = True
            paused = []
            for job in list(self._jobs):
                job.emit(ServiceUnavailable("the speech service is shutting down"))
                job.cancelled = True
                self._end(job, None)
                if job.paused is not None:
                    paused.append(job.paused)
                    job.paused = None
            self._heap.clear()
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=5)
        for pieces in paused:
            _close(pieces)

    # -- internals (with self._cond held) ----------------------------------------------------------------------
    def _pump(self, job: Job) -> None:
        """Move a job on: pass cached chunks through, queue its next turn, or end it."""
        if job.ended or job.busy:
            return
        if job.cancelled:
            self._end(job, None)
            return
        while job.paused is None and job.pending and job.pending[0].audio is not None:
            job.emit(job.pending.popleft().audio)
        if job.paused is not None or job.pending:
            self._queue(job)
        elif job.closed:
            self._end(job, DONE)

    def _queue(self, job: Job) -> None:
        """Put a job in line: after every job of its priority already waiting (a new number each time)."""
        job.busy = True
        heapq.heappush(self._heap, (int(job.priority), next(self._seq), job))
        self._cond.notify()

    def _end(self, job: Job, item: Any) -> None:
        job.ended = True
        self._jobs.discard(job)
        if item is not None:
            job.emit(item)

    # -- workers -----------------------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._heap and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                _, _, job = heapq.heappop(self._heap)
                pieces, job.paused = job.paused, None
                chunk = job.pending.popleft() if pieces is None and job.pending and not job.cancelled else None
            paused, failure = None, None
            if job.cancelled:
                if pieces is not None:
                    _close(pieces)
            elif pieces is not None or chunk is not None:
                paused, failure = self._turn(job, pieces, chunk)
            with self._cond:
                job.busy = False
                if failure is not None and not job.ended:
                    self._end(job, failure)
                elif paused is not None and not job.cancelled and not job.ended:
                    job.paused, paused = paused, None
                    self._queue(job)
                else:
                    self._pump(job)
            if paused is not None:  # the job was dropped while its rendering was paused
                _close(paused)

    def _others_waiting(self, job: Job) -> bool:
        """Whether a job of the same or a higher priority is waiting for a turn."""
        with self._cond:
            return bool(self._heap) and self._heap[0][0] <= int(job.priority)

    def _turn(self, job: Job, pieces: Iterator[np.ndarray] | None, chunk: Chunk | None) -> Turn:
        """One turn of a job: render its current chunk (``pieces``, paused earlier, or a new ``chunk``) into its queue.

        The rendering ends with the chunk, or pauses after a piece when renderings are resumable and another job of
        the same or a higher priority waits. Returns the paused rendering (to resume at the job's next turn) or the
        exception if rendering failed (the worker lives on).
        """
        try:
            if pieces is None:
                assert chunk is not None
                pieces = iter(self._render(job, chunk))
            for piece in pieces:
                if job.cancelled:
                    break
                job.emit(piece)
                if self._resumable and self._others_waiting(job):
                    return pieces, None
        except Exception as exc:
            log.exception("synthesis failed")
            if pieces is not None:
                _close(pieces)
            return None, exc
        _close(pieces)
        return None, None


def _close(pieces: Iterator[np.ndarray]) -> None:
    """End a rendering (a generator's ``finally`` blocks run; the engine frees what the call held)."""
    close = getattr(pieces, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # the worker lives on
            log.exception("closing a rendering failed")
