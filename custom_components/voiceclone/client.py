"""Talks to a VoiceClone server: Wyoming for voices and speech, the HTTP API for managing voices."""

from __future__ import annotations

import asyncio
import io
import wave
from dataclasses import dataclass
from typing import Any

import aiohttp
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeVoice

from .const import PROGRAM_NAME

TIMEOUT_S = 10
SYNTH_TIMEOUT_S = 120


class CannotConnect(Exception):
    """The server did not answer (or is not a VoiceClone server)."""


class ServerError(Exception):
    """The server answered with an error; ``code`` tells which (VoiceNotFoundError, ServiceBusy, rejected, ...)."""

    def __init__(self, message: str, code: str = "", details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details or {}


@dataclass(frozen=True)
class ServerVoice:
    voice_id: str
    name: str
    languages: tuple[str, ...]


@dataclass(frozen=True)
class ServerInfo:
    version: str
    voices: tuple[ServerVoice, ...]

    @property
    def languages(self) -> list[str]:
        return sorted({lang for v in self.voices for lang in v.languages})


class VoiceCloneClient:
    """One VoiceClone server: ``host`` with its Wyoming port and its web/API port."""

    def __init__(self, host: str, port: int, web_port: int, session: aiohttp.ClientSession) -> None:
        self.host, self.port, self.web_port = host, port, web_port
        self.session = session

    @property
    def api(self) -> str:
        return f"http://{self.host}:{self.web_port}/api"

    async def describe(self) -> ServerInfo:
        """The program and its voices; CannotConnect if unreachable or not VoiceClone."""
        try:
            async with asyncio.timeout(TIMEOUT_S), AsyncTcpClient(self.host, self.port) as client:
                await client.write_event(Describe().event())
                while True:
                    event = await client.read_event()
                    if event is None:
                        raise CannotConnect("connection closed before info")
                    if Info.is_type(event.type):
                        info = Info.from_event(event)
                        break
        except (OSError, TimeoutError) as exc:
            raise CannotConnect(str(exc)) from exc
        programs = [p for p in info.tts if p.installed and p.name == PROGRAM_NAME]
        if not programs:
            raise CannotConnect("not a VoiceClone server")
        program = programs[0]
        voices = tuple(ServerVoice(v.name, v.description or v.name, tuple(v.languages)) for v in program.voices
                       if v.installed)
        return ServerInfo(program.version or "", voices)

    async def synthesize(self, text: str, voice: str | None) -> tuple[bytes, int]:
        """16-bit mono PCM and its rate for ``text`` (one-shot Wyoming synthesis)."""
        pcm = bytearray()
        rate = 0
        try:
            async with asyncio.timeout(SYNTH_TIMEOUT_S), AsyncTcpClient(self.host, self.port) as client:
                await client.write_event(
                    Synthesize(text=text, voice=SynthesizeVoice(name=voice) if voice else None).event())
                while True:
                    event = await client.read_event()
                    if event is None:
                        raise CannotConnect("connection closed during synthesis")
                    if AudioStart.is_type(event.type):
                        rate = AudioStart.from_event(event).rate
                    elif AudioChunk.is_type(event.type):
                        chunk = AudioChunk.from_event(event)
                        rate = rate or chunk.rate
                        pcm += chunk.audio
                    elif AudioStop.is_type(event.type):
                        return bytes(pcm), rate
                    elif Error.is_type(event.type):
                        err = Error.from_event(event)
                        raise ServerError(err.text, err.code or "")
        except (OSError, TimeoutError) as exc:
            raise CannotConnect(str(exc)) from exc

    async def _request(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        try:
            async with asyncio.timeout(SYNTH_TIMEOUT_S), self.session.request(method, self.api + path, **kw) as r:
                body = await r.json(content_type=None) if r.status != 204 else None
                return r.status, body
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise CannotConnect(str(exc)) from exc

    async def enroll(self, name: str, consent: str, audio: bytes, filename: str, transcript: str | None = None,
                     language: str | None = None) -> dict[str, Any]:
        """Enroll through the server's API; ServerError(code='rejected') carries the quality report."""
        form = aiohttp.FormData()
        for key, value in (("name", name), ("consent", consent), ("transcript", transcript), ("language", language)):
            if value:
                form.add_field(key, value)
        form.add_field("audio", audio, filename=filename, content_type="application/octet-stream")
        status, body = await self._request("POST", "/voices", data=form)
        if status == 201:
            return body["voice"]
        message = (body or {}).get("error", f"HTTP {status}")
        quality = (body or {}).get("quality")
        raise ServerError(message, "rejected" if quality else "invalid", {"quality": quality})

    async def delete(self, voice_id: str) -> None:
        status, body = await self._request("DELETE", f"/voices/{voice_id}")
        if status == 404:
            raise ServerError((body or {}).get("error", "unknown voice"), "VoiceNotFoundError")
        if status != 204:
            raise ServerError((body or {}).get("error", f"HTTP {status}"), "invalid")


def wav_bytes(pcm: bytes, rate: int, volume: float = 1.0) -> bytes:
    """A WAV file of 16-bit mono PCM, scaled by ``volume`` (clipped)."""
    if volume != 1.0:
        import array

        samples = array.array("h", pcm)
        for i, s in enumerate(samples):
            samples[i] = max(-32768, min(32767, int(s * volume)))
        pcm = samples.tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()
