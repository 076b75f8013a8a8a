"""Talks to a VoiceClone server: Wyoming for voices and speech, the HTTP API for managing voices."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from wyoming.audio import AudioChunk
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info

from .const import PROGRAM_NAME

TIMEOUT_S = 10
SYNTH_TIMEOUT_S = 120
# Streaming synthesis events are written by name: wyoming < 1.7 (HA 2025.4–2025.6) has no classes for them.
SYNTHESIZE_STOPPED = "synthesize-stopped"


class CannotConnect(Exception):
    """The server did not answer (or is not a VoiceClone server)."""


class InvalidAuth(Exception):
    """The voice API refused the token (missing, wrong, or rotated on the server)."""


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
class ServerHealth:
    """``api/health``: whether the engine runs, the server's stable id, and what stops the engine."""

    status: str
    server_id: str
    version: str = ""
    error: str = ""
    missing_models: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class ServerInfo:
    version: str
    voices: tuple[ServerVoice, ...]
    health: ServerHealth | None = None

    @property
    def languages(self) -> list[str]:
        return sorted({lang for v in self.voices for lang in v.languages})


class VoiceCloneClient:
    """One VoiceClone server: ``host`` with its Wyoming port and its web/API port."""

    def __init__(self, host: str, port: int, web_port: int, session: aiohttp.ClientSession, token: str = "") -> None:
        self.host, self.port, self.web_port = host, port, web_port
        self.session = session
        self.token = token

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
        voices = tuple(
            ServerVoice(v.name, v.description or v.name, tuple(v.languages)) for v in program.voices if v.installed
        )
        return ServerInfo(program.version or "", voices)

    async def synthesize(
        self, text: str, voice: str | None, speed: float = 1.0, volume: float = 1.0
    ) -> tuple[bytes, int]:
        """16-bit mono PCM and its rate for ``text`` (one-shot Wyoming synthesis)."""
        pcm = bytearray()
        rate = 0

        async def request() -> AsyncIterator[Event]:
            yield _event("synthesize", text=text, voice=voice, speed=speed, volume=volume)

        try:
            async with asyncio.timeout(SYNTH_TIMEOUT_S):
                async for chunk in self._converse(request(), until="audio-stop"):
                    rate = chunk.rate
                    pcm += chunk.audio
        except TimeoutError as exc:
            raise CannotConnect("synthesis timed out") from exc
        return bytes(pcm), rate

    async def stream(
        self, text: AsyncIterator[str], voice: str | None, speed: float = 1.0, volume: float = 1.0
    ) -> AsyncIterator[AudioChunk]:
        """Streaming Wyoming synthesis: text pieces go out as they come, audio comes back sentence by sentence."""

        async def request() -> AsyncIterator[Event]:
            yield _event("synthesize-start", voice=voice, speed=speed, volume=volume)
            async for piece in text:
                yield Event(type="synthesize-chunk", data={"text": piece})
            yield Event(type="synthesize-stop")

        async for chunk in self._converse(request(), until=SYNTHESIZE_STOPPED):
            yield chunk

    async def _converse(self, events: AsyncIterator[Event], until: str) -> AsyncIterator[AudioChunk]:
        """Send ``events`` (in a task of their own) while yielding the audio chunks that come back."""
        try:
            async with asyncio.timeout(TIMEOUT_S):
                client = AsyncTcpClient(self.host, self.port)
                await client.connect()
        except (OSError, TimeoutError) as exc:
            raise CannotConnect(str(exc)) from exc

        async def send() -> None:
            async for event in events:
                await client.write_event(event)

        sender = asyncio.create_task(send())
        try:
            while True:
                try:
                    async with asyncio.timeout(SYNTH_TIMEOUT_S):
                        event = await client.read_event()
                except (OSError, TimeoutError) as exc:
                    raise CannotConnect(str(exc)) from exc
                if event is None:
                    if sender.done() and sender.exception() is not None:
                        raise CannotConnect(str(sender.exception()))
                    raise CannotConnect("connection closed during synthesis")
                if AudioChunk.is_type(event.type):
                    yield AudioChunk.from_event(event)
                elif Error.is_type(event.type):
                    err = Error.from_event(event)
                    raise ServerError(err.text, err.code or "")
                elif event.type == until:
                    return
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
            with contextlib.suppress(Exception):
                await client.disconnect()

    async def _request(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        """One API request with the token; InvalidAuth on 401, CannotConnect when nothing sensible answers."""
        if self.token:
            kw["headers"] = {"Authorization": f"Bearer {self.token}"}
        try:
            async with asyncio.timeout(SYNTH_TIMEOUT_S), self.session.request(method, self.api + path, **kw) as r:
                body = await r.json(content_type=None) if r.status != 204 else None
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            raise CannotConnect(str(exc)) from exc
        if r.status == 401:
            raise InvalidAuth((body or {}).get("error", "the server refused the token"))
        return r.status, body

    async def check_auth(self) -> None:
        """InvalidAuth unless the token opens the voice API (GET /api/voices)."""
        status, _ = await self._request("GET", "/voices")
        if status != 200:
            raise CannotConnect(f"voice API answered HTTP {status}")

    async def health(self) -> ServerHealth:
        """GET /api/health (200 when the engine runs, 503 with the reason when it cannot start); CannotConnect if
        the voice-management API does not answer like a VoiceClone server."""
        status, body = await self._request("GET", "/health")
        if status not in (200, 503) or not isinstance(body, dict) or not isinstance(body.get("status"), str):
            raise CannotConnect(f"voice API answered HTTP {status}")
        missing = body.get("missing_models")
        return ServerHealth(
            status=body["status"],
            server_id=str(body.get("server_id") or ""),
            version=str(body.get("version") or ""),
            error=str(body.get("error") or ""),
            missing_models=tuple(str(m) for m in missing) if isinstance(missing, list) else (),
        )

    async def enroll(
        self,
        name: str,
        consent: str,
        audio: bytes,
        filename: str,
        transcript: str | None = None,
        language: str | None = None,
    ) -> dict[str, Any]:
        """Enroll through the server's API: ``{"voice": profile, "quality": report}``.

        ServerError(code='rejected') carries the quality report of a refused recording.
        """
        form = aiohttp.FormData()
        for key, value in (("name", name), ("consent", consent), ("transcript", transcript), ("language", language)):
            if value:
                form.add_field(key, value)
        form.add_field("audio", audio, filename=filename, content_type="application/octet-stream")
        status, body = await self._request("POST", "/voices", data=form)
        if status == 201:
            return body
        message = (body or {}).get("error", f"HTTP {status}")
        quality = (body or {}).get("quality")
        raise ServerError(message, "rejected" if quality else "invalid", {"quality": quality})

    async def delete(self, voice_id: str) -> None:
        status, body = await self._request("DELETE", f"/voices/{voice_id}")
        if status == 404:
            raise ServerError((body or {}).get("error", "unknown voice"), "VoiceNotFoundError")
        if status != 204:
            raise ServerError((body or {}).get("error", f"HTTP {status}"), "invalid")


def wav_bytes(pcm: bytes, rate: int) -> bytes:
    """A WAV file of 16-bit mono PCM."""
    return wav_header(rate, len(pcm)) + pcm


def wav_header(rate: int, data_bytes: int | None = None) -> bytes:
    """The 44-byte header of a 16-bit mono WAV; ``None`` = unknown length (streamed WAV: sizes set to the maximum)."""
    data_size = 0xFFFFFFFF if data_bytes is None else data_bytes
    riff_size = 0xFFFFFFFF if data_bytes is None else 36 + data_bytes
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    return b"RIFF" + struct.pack("<I", riff_size) + b"WAVEfmt " + fmt + b"data" + struct.pack("<I", data_size)


def _event(kind: str, voice: str | None, speed: float, volume: float, **data: Any) -> Event:
    """A synthesis event; ``speed``/``volume`` are VoiceClone's extension fields (sent only when not 1)."""
    if voice:
        data["voice"] = {"name": voice}
    for key, value in (("speed", speed), ("volume", volume)):
        if value != 1.0:
            data[key] = float(value)
    return Event(type=kind, data=data)
