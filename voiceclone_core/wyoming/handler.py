"""One Wyoming connection: describe, one-shot synthesis and streaming synthesis, translated to the SpeechService.

Each connection is independent. Synthesis runs in a task of its own so the connection keeps reading: a client
that hangs up is noticed at once and its work is cancelled (freeing its queue slot). Audio is written with the
connection's own back-pressure, so a slow reader only ever slows itself. Streamed text is forwarded to the service
piece by piece as it arrives; the service cuts it into sentences. A stream's audio comes as one
``audio-start``/``audio-chunk``…/``audio-stop`` group, then ``synthesize-stopped``.

Extension: ``synthesize`` and ``synthesize-start`` may carry ``speed`` (0.25–4, speaking rate) and ``volume`` (0–2,
gain) next to the standard fields; clients that do not know them (Home Assistant's wyoming integration) never send
them. Our Home Assistant integration uses them so speed changes the tempo, not the pitch. ``voice`` may carry both
``name`` and ``language`` (the wyoming library sends one or the other).

Hostile clients: events are read by :class:`~voiceclone_core.wyoming.reader.EventReader` (size limits checked before
anything is buffered, header and idle timeouts) and their fields checked by :mod:`~voiceclone_core.wyoming.fields`
before use. Every bad event gets an ``error`` event (code from the service's error table), in order with the
answers to the requests before it; one that leaves the stream unreadable (bad framing, too large, too slow) is then
closed. A fault of ours while handling a request is logged and answered with an ``error`` too, and the connection's
worker carries on. A stream's text is capped in total at ``speech.max_text_chars`` — the same limit as a one-shot
text, since a stream is a text that arrives in pieces — and a bad or excess piece fails the stream with one
``error`` (then ``synthesize-stopped`` on ``synthesize-stop``). At most :data:`PIPELINE` requests wait per
connection; past that the connection's events are not read until one is done. A client that stops reading for
``wyoming.idle_timeout_s`` is disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.server import AsyncEventHandler
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

from voiceclone_core import audio
from voiceclone_core.service import (
    InvalidRequest,
    NothingToSay,
    ServiceError,
    SpeechService,
    SynthesisFailed,
    outcome,
)
from voiceclone_core.wyoming import fields
from voiceclone_core.wyoming.fields import SpeechOptions
from voiceclone_core.wyoming.limits import ClientGate, LogThrottle, client_address
from voiceclone_core.wyoming.reader import EventReader, FrameError, IdleTimeout

log = logging.getLogger(__name__)

WIDTH, CHANNELS = 2, 1
PIPELINE = 8  # requests one connection may have waiting before its events are no longer read
LAST_WORDS_S = 5.0  # how long the error event before a close may take to write
# then what the client still sends is dropped: for this long at most, this much at most, until it pauses this long
LAST_WORDS_DRAIN_S, LAST_WORDS_BYTES, LAST_WORDS_QUIET_S = 0.5, 1 << 20, 0.05


class ClientStalled(ConnectionError):
    """The client stopped reading what we send."""


@dataclass(frozen=True)
class _Work:
    """One item of a connection's work, done in order: speak a text (or a text stream), say a stream ended, or
    answer a bad request with an error."""

    kind: str  # "speak" | "stopped" | "error"
    text: str | AsyncIterator[str] = ""
    options: SpeechOptions | None = None
    error: ServiceError | None = None


class VoiceCloneEventHandler(AsyncEventHandler):
    """Serves one client connection.

    ``gate`` and ``throttle`` are shared by all connections of a server (who may connect; how much is logged).
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        service: SpeechService,
        describe: Callable[[], Info],
        samples_per_chunk: int,
        gate: ClientGate | None = None,
        throttle: LogThrottle | None = None,
    ) -> None:
        super().__init__(reader, writer)
        self.service = service
        self.describe = describe
        self.samples_per_chunk = samples_per_chunk
        self.settings = service.settings.wyoming
        self.client = client_address(writer.get_extra_info("peername"))
        self.who = str(self.client) if self.client is not None else "local client"
        self._gate = gate
        self._throttle = throttle or LogThrottle(log)
        self._work: asyncio.Queue[_Work] = asyncio.Queue()
        self._pending = 0  # work items queued or in progress
        self._progress = asyncio.Event()  # set when one is done
        self._gone = False  # the worker found the client gone
        self._worker = asyncio.create_task(self._run_work(), name="wyoming synthesis")
        self._text: asyncio.Queue[str | ServiceError | None] | None = None  # the open text stream, if any
        self._stream_chars = 0
        self._stream_failed = False  # its error is on its way: further pieces are dropped

    @property
    def pending(self) -> int:
        """Requests of this connection queued or being answered."""
        return self._pending

    @property
    def stream_backlog(self) -> int:
        """Text pieces of the open stream not yet taken by the service."""
        return self._text.qsize() if self._text is not None else 0

    # -- the connection ----------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve the connection until the client leaves; a client that resets the connection is not an error."""
        self._is_running = True
        refusal = self._gate.admit(self.client) if self._gate is not None else None
        admitted = self._gate is not None and refusal is None
        try:
            if refusal is not None:
                self._throttle.log(
                    (self.who, "refused"), logging.INFO, "Wyoming: refused %s: %s", self.who, refusal.text
                )
                await self._last_words(Error(text=refusal.text, code=refusal.code).event())
                return
            await self._serve()
        except (ConnectionError, asyncio.IncompleteReadError):
            log.debug("Wyoming client %s went away", self.who)
        except Exception as exc:  # a fault of ours: logged, this connection closed, the server carries on
            self._fault(exc)
        finally:
            if admitted:
                self._gate.release(self.client)
            await self.disconnect()
            self.writer.close()

    async def _serve(self) -> None:
        events = EventReader(
            self.reader,
            max_bytes=self.settings.max_event_bytes,
            header_timeout_s=self.settings.header_timeout_s,
            idle_timeout_s=self.settings.idle_timeout_s,
        )
        while self._is_running:
            while self._pending >= PIPELINE and not self._gone:  # back-pressure: read on once a request is done
                self._progress.clear()
                await self._progress.wait()
            if self._gone:
                return
            try:
                event = await events.read()
            except IdleTimeout:
                if self._pending:  # the client is waiting for us, not idle
                    continue
                log.debug("Wyoming: closing the connection from %s, idle for %g s", self.who, events.idle_timeout_s)
                return
            except FrameError as exc:
                self._complain(exc)
                if exc.fatal:
                    await self._last_words(_error_event(exc))
                    return
                self._queue(_Work("error", error=exc))
                continue
            if event is None:
                return
            try:
                if not await self.handle_event(event):
                    return
            except ServiceError as exc:
                self._complain(exc)
                self._queue(_Work("error", error=exc))
            except (ConnectionError, asyncio.IncompleteReadError):
                raise
            except Exception as exc:
                self._fault(exc)
                self._queue(_Work("error", error=_internal_error()))

    async def write_event(self, event: Event) -> None:
        """Send an event; a client that has not read anything for ``idle_timeout_s`` is disconnected."""
        try:
            async with asyncio.timeout(self.settings.idle_timeout_s):
                await super().write_event(event)
        except TimeoutError:
            self._throttle.log((self.who, "stalled"), logging.INFO, "Wyoming: %s stopped reading: cut off", self.who)
            self.writer.transport.abort()
            raise ClientStalled(f"{self.who} stopped reading") from None

    async def _last_words(self, event: Event) -> None:
        """Send a last event before closing (briefly: the client may not be reading).

        The connection is then half-closed and what the client still sends is read and dropped for a moment (at
        most :data:`LAST_WORDS_BYTES`): closing with unread data would reset the connection, and a reset can
        throw away the error event before the client reads it. A client that is quiet for a moment is not waited for.
        """
        with contextlib.suppress(Exception):
            await asyncio.wait_for(super().write_event(event), LAST_WORDS_S)
            if self.writer.can_write_eof():
                self.writer.write_eof()
            loop = asyncio.get_running_loop()
            deadline, dropped = loop.time() + LAST_WORDS_DRAIN_S, 0
            while dropped < LAST_WORDS_BYTES and (left := deadline - loop.time()) > 0:
                junk = await asyncio.wait_for(self.reader.read(65536), min(left, LAST_WORDS_QUIET_S))
                if not junk:
                    break
                dropped += len(junk)

    async def disconnect(self) -> None:
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):  # the client is gone: nothing to tell it
            await self._worker

    # -- events in ------------------------------------------------------------------------------------------
    async def handle_event(self, event: Event) -> bool:
        data = event.data if isinstance(event.data, dict) else {}
        if Describe.is_type(event.type):
            info = await asyncio.to_thread(self.describe)
            await self.write_event(info.event())
        elif SynthesizeStart.is_type(event.type):
            if self._text is not None:
                self._fail_stream(InvalidRequest("synthesize-start came while a stream was open"))
                return True
            self._text, self._stream_chars, self._stream_failed = asyncio.Queue(), 0, False
            try:
                options = fields.speech_options(data)
            except InvalidRequest:
                self._stream_failed = True  # its pieces are dropped; synthesize-stop still gets synthesize-stopped
                raise
            self._queue(_Work("speak", _pieces(self._text), options))
        elif SynthesizeChunk.is_type(event.type):
            if self._text is None:
                raise InvalidRequest("synthesize-chunk came without synthesize-start")
            if not self._stream_failed:
                try:
                    piece = fields.chunk_text(data)
                    self._stream_chars += len(piece)
                    limit = self.service.settings.speech.max_text_chars
                    if self._stream_chars > limit:
                        raise InvalidRequest(f"text too long: more than {limit} characters streamed (limit {limit})")
                except InvalidRequest as exc:
                    self._fail_stream(exc)
                else:
                    self._text.put_nowait(piece)
        elif SynthesizeStop.is_type(event.type):
            if self._text is None:
                raise InvalidRequest("synthesize-stop came without synthesize-start")
            self._text.put_nowait(None)
            self._text = None
            self._queue(_Work("stopped"))
        elif Synthesize.is_type(event.type):
            if self._text is None:  # while a stream is open this is the compatibility copy: ignore it
                words = fields.synthesize_text(data)
                self._queue(_Work("speak", words, fields.speech_options(data)))
        else:
            log.debug("ignoring event %.80r", event.type)
        return True

    def _fail_stream(self, error: InvalidRequest) -> None:
        """End the open stream with ``error`` (answered by the stream itself, as one error event)."""
        self._complain(error)
        if self._text is not None and not self._stream_failed:
            self._text.put_nowait(error)
        self._stream_failed = True

    def _queue(self, work: _Work) -> None:
        self._pending += 1
        self._work.put_nowait(work)

    def _complain(self, error: ServiceError) -> None:
        """Log a client's mistake (throttled per client; no traceback)."""
        self._throttle.log((self.who, "input"), logging.WARNING, "Wyoming client %s: %s", self.who, error)

    def _fault(self, exc: BaseException) -> None:
        """Log a fault of ours (with its traceback, throttled per client)."""
        self._throttle.log(
            (self.who, "fault"), logging.ERROR, "Wyoming: request from %s failed: %r", self.who, exc, exc_info=exc
        )

    # -- work, in order, one item at a time per connection -----------------------------------------------
    async def _run_work(self) -> None:
        while True:
            work = await self._work.get()
            try:
                if work.kind == "speak":
                    await self._speak(work.text, work.options or SpeechOptions())
                elif work.kind == "stopped":
                    await self.write_event(SynthesizeStopped().event())
                elif work.kind == "error" and work.error is not None:
                    await self.write_event(_error_event(work.error))
            except (ConnectionError, asyncio.IncompleteReadError):
                log.debug("Wyoming client %s went away", self.who)
                self._gone = True
                return
            except Exception as exc:  # the worker carries on: later requests on this connection are still served
                self._fault(exc)
            finally:
                self._pending -= 1
                self._progress.set()

    async def _speak(self, words: str | AsyncIterator[str], options: SpeechOptions) -> None:
        """Send audio-start / audio-chunk… / audio-stop for one text or text stream, or an error event.

        A one-shot text with nothing to say gets an empty audio-start/audio-stop pair; a stream, nothing at all.
        """
        started = False
        try:
            rate = self.service.sample_rate
            async for piece in self.service.stream(options.request(words)):
                if not started:
                    await self.write_event(AudioStart(rate=rate, width=WIDTH, channels=CHANNELS).event())
                    started = True
                for pcm in _pcm_chunks(piece, self.samples_per_chunk):
                    await self.write_event(AudioChunk(rate=rate, width=WIDTH, channels=CHANNELS, audio=pcm).event())
        except NothingToSay:
            if isinstance(words, str):
                await self.write_event(AudioStart(rate=rate, width=WIDTH, channels=CHANNELS).event())
                started = True
        except (ConnectionError, asyncio.IncompleteReadError):
            raise
        except Exception as exc:
            if not isinstance(exc, ServiceError):
                self._fault(exc)
                exc = _internal_error()
            if started:
                await self.write_event(AudioStop().event())
            await self.write_event(_error_event(exc))
            return
        if started:
            await self.write_event(AudioStop().event())


def _error_event(error: ServiceError) -> Event:
    return Error(text=str(error), code=outcome(error).wyoming_code).event()


def _internal_error() -> ServiceError:
    return SynthesisFailed("the server failed on this request (its log says why)")


async def _pieces(queue: asyncio.Queue[str | ServiceError | None]) -> AsyncIterator[str]:
    """The text pieces of a stream as they arrive, until ``None`` (an error ends the stream with that error)."""
    while (piece := await queue.get()) is not None:
        if isinstance(piece, ServiceError):
            raise piece
        yield piece


def _pcm_chunks(x: np.ndarray, samples: int) -> list[bytes]:
    pcm = audio.to_pcm16(x)
    step = samples * WIDTH
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]
