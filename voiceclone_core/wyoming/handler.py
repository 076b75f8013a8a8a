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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.server import AsyncEventHandler
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

from voiceclone_core import audio
from voiceclone_core.service import InvalidRequest, NothingToSay, ServiceError, SpeechRequest, SpeechService, outcome

log = logging.getLogger(__name__)

WIDTH, CHANNELS = 2, 1


@dataclass(frozen=True)
class _Work:
    """One item of a connection's work, done in order: speak a text (or a text stream), or say a stream ended."""

    kind: str  # "speak" | "stopped"
    text: str | AsyncIterator[str] = ""
    data: dict[str, Any] | None = None  # the request event's data: voice, speed, volume


class VoiceCloneEventHandler(AsyncEventHandler):
    """Serves one client connection."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        service: SpeechService,
        describe: Callable[[], Info],
        samples_per_chunk: int,
    ) -> None:
        super().__init__(reader, writer)
        self.service = service
        self.describe = describe
        self.samples_per_chunk = samples_per_chunk
        self._work: asyncio.Queue[_Work] = asyncio.Queue()
        self._worker = asyncio.create_task(self._run_work(), name="wyoming synthesis")
        self._text: asyncio.Queue[str | None] | None = None  # the open text stream, if any

    # -- events in ------------------------------------------------------------------------------------------
    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            info = await asyncio.to_thread(self.describe)
            await self.write_event(info.event())
        elif SynthesizeStart.is_type(event.type):
            self._text = asyncio.Queue()
            self._work.put_nowait(_Work("speak", _pieces(self._text), event.data))
        elif SynthesizeChunk.is_type(event.type):
            if self._text is not None:
                piece = (event.data or {}).get("text")
                self._text.put_nowait("" if piece is None else piece)
        elif SynthesizeStop.is_type(event.type):
            if self._text is not None:
                self._text.put_nowait(None)
                self._text = None
                self._work.put_nowait(_Work("stopped"))
        elif Synthesize.is_type(event.type):
            if self._text is None:  # while a stream is open this is the compatibility copy: ignore it
                self._work.put_nowait(_Work("speak", (event.data or {}).get("text"), event.data))
        else:
            log.debug("ignoring event %s", event.type)
        return True

    async def run(self) -> None:
        """Serve the connection until the client leaves; a client that resets the connection is not an error."""
        try:
            await super().run()
        except (ConnectionError, asyncio.IncompleteReadError):
            log.debug("client went away")

    async def disconnect(self) -> None:
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):  # the client is gone: nothing to tell it
            await self._worker

    # -- work, in order, one item at a time per connection -----------------------------------------------
    async def _run_work(self) -> None:
        while True:
            work = await self._work.get()
            try:
                if work.kind == "speak":
                    await self._speak(work.text, work.data or {})
                elif work.kind == "stopped":
                    await self.write_event(SynthesizeStopped().event())
            except (ConnectionError, asyncio.IncompleteReadError):
                log.debug("client went away")
                return

    async def _speak(self, words: str | AsyncIterator[str], data: dict[str, Any]) -> None:
        """Send audio-start / audio-chunk… / audio-stop for one text or text stream, or an error event.

        A one-shot text with nothing to say gets an empty audio-start/audio-stop pair; a stream, nothing at all.
        """
        rate = self.service.sample_rate
        started = False
        try:
            async for piece in self.service.stream(_request(words, data)):
                if not started:
                    await self.write_event(AudioStart(rate=rate, width=WIDTH, channels=CHANNELS).event())
                    started = True
                for pcm in _pcm_chunks(piece, self.samples_per_chunk):
                    await self.write_event(AudioChunk(rate=rate, width=WIDTH, channels=CHANNELS, audio=pcm).event())
        except NothingToSay:
            if isinstance(words, str) or words is None:
                await self.write_event(AudioStart(rate=rate, width=WIDTH, channels=CHANNELS).event())
                started = True
        except ServiceError as exc:
            if started:
                await self.write_event(AudioStop().event())
            await self.write_event(Error(text=str(exc), code=outcome(exc).wyoming_code).event())
            return
        if started:
            await self.write_event(AudioStop().event())


def _request(words: Any, data: dict[str, Any]) -> SpeechRequest:
    """The service request for a synthesize / synthesize-start event's data (the service checks the values)."""
    voice = data.get("voice") or {}
    if not isinstance(voice, dict):
        raise InvalidRequest('voice must be an object such as {"name": "mum"}')
    return SpeechRequest(
        words if words is not None else "",
        voice=voice.get("name") or None,
        language=voice.get("language") or None,
        speed=1.0 if data.get("speed") is None else data["speed"],
        volume=1.0 if data.get("volume") is None else data["volume"],
    )


async def _pieces(queue: asyncio.Queue[str | None]) -> AsyncIterator[str]:
    """The text pieces of a stream as they arrive, until ``None``."""
    while (piece := await queue.get()) is not None:
        yield piece


def _pcm_chunks(x: np.ndarray, samples: int) -> list[bytes]:
    pcm = audio.to_pcm16(x)
    step = samples * WIDTH
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]
