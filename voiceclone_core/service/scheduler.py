"""A priority queue of requests and a pool of worker threads that render them one text chunk at a time.

A job is one request in flight. Its chunks arrive all at once (a whole text) or one by one (streamed text, cut as it
comes); workers render each job's chunks in order, one at a time. Between chunks a job goes back in line at its
original place, so a higher-priority request overtakes a long announcement at the next chunk boundary. A chunk that
is already rendered (from the cache) passes straight to the listener without a worker. Admission is bounded: beyond
``queue_size`` jobs in flight, :meth:`Scheduler.open` raises :class:`ServiceBusy` at once.

Everything a job's listener receives arrives on its asyncio queue: audio arrays, then :data:`DONE`, or an exception.
"""

from __future__ import annotations

import asyncio
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
    busy: bool = False  # in the queue or being rendered
    closed: bool = False  # no more chunks will come
    cancelled: bool = False  # the listener left, or the request failed
    ended: bool = False

    def emit(self, item: Any) -> None:
        self.loop.call_soon_threadsafe(self.out.put_nowait, item)


Render = Callable[[Job, Chunk], Iterator[np.ndarray]]


class Scheduler:
    """Jobs, their order, and the worker threads (``workers`` of them) that call ``render``."""

    def __init__(self, workers: int, limits: SpeechSettings, render: Render) -> None:
        self.limits = limits
        self._render = render
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
            for job in list(self._jobs):
                job.emit(ServiceUnavailable("the speech service is shutting down"))
                job.cancelled = True
                self._end(job, None)
            self._heap.clear()
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=5)

    # -- internals (with self._cond held) ----------------------------------------------------------------------
    def _pump(self, job: Job) -> None:
        """Move a job on: pass cached chunks through, queue the next chunk to render, or end it."""
        if job.ended or job.busy:
            return
        if job.cancelled:
            self._end(job, None)
            return
        while job.pending and job.pending[0].audio is not None:
            job.emit(job.pending.popleft().audio)
        if job.pending:
            job.busy = True
            heapq.heappush(self._heap, (int(job.priority), job.seq, job))
            self._cond.notify()
        elif job.closed:
            self._end(job, DONE)

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
                chunk = job.pending.popleft() if job.pending and not job.cancelled else None
            failure = self._run(job, chunk) if chunk is not None else None
            with self._cond:
                job.busy = False
                if failure is not None and not job.ended:
                    self._end(job, failure)
                else:
                    self._pump(job)

    def _run(self, job: Job, chunk: Chunk) -> Exception | None:
        """Render one chunk into the job's queue; the exception if rendering failed (the worker lives on)."""
        pieces = self._render(job, chunk)
        try:
            for piece in pieces:
                if job.cancelled:
                    break
                job.emit(piece)
        except Exception as exc:
            log.exception("synthesis failed")
            return exc
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()
        return None
