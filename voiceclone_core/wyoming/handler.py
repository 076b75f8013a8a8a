"""One Wyoming connection: describe, one-shot synthesis and streaming synthesis, on top of the SpeechService.

Each connection is independent. Synthesis runs in a task of its own so the connection keeps reading: a client
that hangs up is noticed at once and its work is cancelled (freeing its queue slot). Audio is written with the
connection's own back-pressure, so a slow reader only ever slows itself.

Extension: ``synthesize`` and ``synthesize-start`` may carry ``speed`` (0.25–4, speaking rate) and ``volume`` (0–2,
gain) next to the standard fields; clients that do not know them (Home Assistant's wyoming integration) never send
them. Our Home Assistant integration uses them so speed changes the tempo, not the pitch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.server import AsyncEventHandler
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeVoice,
)

from voiceclone_core import audio, text
from voiceclone_core.speech import NothingToSay, ServiceBusy, SpeechError, SpeechRequest, SpeechService, UnknownVoice

log = logging.getLogger(__name__)

WIDTH, CHANNELS = 2, 1


@dataclass(frozen=True)
class Manner:
    """The optional ``speed``/``volume`` extension fields of a synthesis request (``error`` if malformed)."""

    speed: float = 1.0
    volume: float = 1.0
    error: str = ""

    @classmethod
    def from_data(cls, data: dict | None) -> Manner:
        values = {}
        for key in ("speed", "volume"):
            value = (data or {}).get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return cls(error=f"{key} must be a number, not {value!r}")
            values[key] = float(value)
        return cls(**values)


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
        self._work: asyncio.Queue[tuple[str, object] | None] = asyncio.Queue()
        self._worker = asyncio.create_task(self._run_work(), name="wyoming synthesis")
        self._stream: text.SentenceBuffer | None = None  # open streaming synthesis, if any
        self._stream_voice: SynthesizeVoice | None = None
        self._stream_manner: Manner = Manner()
        self._stream_failed = False

    # -- events in ------------------------------------------------------------------------------------------
    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            info = await asyncio.to_thread(self.describe)
            await self.write_event(info.event())
        elif SynthesizeStart.is_type(event.type):
            speech = self.service.settings.speech
            self._stream = text.SentenceBuffer(speech.chunk_chars, speech.first_chunk_chars)
            self._stream_voice = SynthesizeStart.from_event(event).voice
            self._stream_manner = Manner.from_data(event.data)
            self._stream_failed = False
        elif SynthesizeChunk.is_type(event.type):
            if self._stream is not None:
                for sentence in self._stream.feed(SynthesizeChunk.from_event(event).text):
                    self._work.put_nowait(("sentence", (sentence, self._stream_voice, self._stream_manner)))
        elif SynthesizeStop.is_type(event.type):
            if self._stream is not None:
                for sentence in self._stream.flush():
                    self._work.put_nowait(("sentence", (sentence, self._stream_voice, self._stream_manner)))
                self._stream = None
                self._work.put_nowait(("stopped", None))
        elif Synthesize.is_type(event.type):
            if self._stream is None:  # while a stream is open this is the compatibility copy: ignore it
                synth = Synthesize.from_event(event)
                self._work.put_nowait(("oneshot", (synth.text, synth.voice, Manner.from_data(event.data))))
        else:
            log.debug("ignoring event %s", event.type)
        return True

    async def disconnect(self) -> None:
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):  # the client is gone: nothing to tell it
            await self._worker

    # -- work, in order, one item at a time per connection -----------------------------------------------
    async def _run_work(self) -> None:
        while True:
            item = await self._work.get()
            if item is None:
                return
            kind, arg = item
            try:
                if kind == "oneshot":
                    await self._speak(*arg, empty_reply=True)  # type: ignore[misc]
                elif kind == "sentence" and not self._stream_failed:
                    self._stream_failed = not await self._speak(*arg, empty_reply=False)  # type: ignore[misc]
                elif kind == "stopped":
                    await self.write_event(SynthesizeStopped().event())
            except (ConnectionError, asyncio.IncompleteReadError):
                log.debug("client went away")
                return

    async def _speak(self, words: str, voice: SynthesizeVoice | None, manner: Manner, empty_reply: bool) -> bool:
        """Send audio-start / audio-chunk… / audio-stop for one text, or an error event (then False).

        Text with nothing to say gets an empty audio-start/audio-stop pair when ``empty_reply`` (one-shot), and
        nothing at all inside a stream.
        """
        rate = self.service.sample_rate
        started = False
        try:
            request = self._request(words, voice, manner)
            async for piece in self.service.stream(request):
                if not started:
                    await self.write_event(AudioStart(rate=rate, width=WIDTH, channels=CHANNELS).event())
                    started = True
                for pcm in _pcm_chunks(piece, self.samples_per_chunk):
                    await self.write_event(AudioChunk(rate=rate, width=WIDTH, channels=CHANNELS, audio=pcm).event())
        except NothingToSay:
            pass
        except SpeechError as exc:
            if started:
                await self.write_event(AudioStop().event())
            await self._error(exc)
            return False
        if started:
            await self.write_event(AudioStop().event())
        elif empty_reply:
            await self.write_event(AudioStart(rate=rate, width=WIDTH, channels=CHANNELS).event())
            await self.write_event(AudioStop().event())
        return True

    def _request(self, words: str, voice: SynthesizeVoice | None, manner: Manner) -> SpeechRequest:
        name = voice.name if voice is not None else None
        language = voice.language if voice is not None else None
        if language and text.language_family(language) not in self.service.engine.languages:
            log.info("language %s is not available; using the voice's own", language)
            language = None
        if manner.error:
            raise SpeechError(manner.error)
        return SpeechRequest(words, voice=name or None, language=language, speed=manner.speed, volume=manner.volume)

    async def _error(self, exc: SpeechError) -> None:
        codes = {ServiceBusy: "ServiceBusy", UnknownVoice: "VoiceNotFoundError"}
        await self.write_event(Error(text=str(exc), code=codes.get(type(exc), "SynthesisError")).event())


def _pcm_chunks(x: np.ndarray, samples: int) -> list[bytes]:
    pcm = audio.to_pcm16(x)
    step = samples * WIDTH
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]
