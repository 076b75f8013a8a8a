"""Wyoming server: program/voice description, connection handling, and zeroconf announcement.

Connections are served by :class:`~voiceclone_core.wyoming.handler.VoiceCloneEventHandler`, which reads events with
our own bounded reader (not wyoming's ``async_read_event``). All connections of one server share a
:class:`~voiceclone_core.wyoming.limits.ClientGate` (``wyoming.allowed_clients``, ``max_connections_per_client``) and a
:class:`~voiceclone_core.wyoming.limits.LogThrottle` (one line per client per minute for its mistakes).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import uuid
from functools import partial
from urllib.parse import urlparse

from wyoming.info import Attribution, Info, TtsProgram, TtsVoice
from wyoming.server import AsyncServer

from voiceclone_core.service import ServiceUnavailable, SpeechService
from voiceclone_core.wyoming.handler import VoiceCloneEventHandler
from voiceclone_core.wyoming.limits import ClientGate, LogThrottle

log = logging.getLogger(__name__)

PROGRAM = "voiceclone"
ATTRIBUTION = Attribution(name="VoiceClone for Home Assistant", url="")


def build_info(service: SpeechService) -> Info:
    """One TTS program with one voice per enrolled household voice (read fresh on every describe).

    Each voice is offered in every language the engine speaks, its own first.
    """
    try:
        engine = f"{service.engine_info().name} engine"
    except ServiceUnavailable as exc:  # still listed, so Home Assistant sees the voices; speaking says why not
        engine = f"unavailable: {exc}"
    voices = [
        TtsVoice(
            name=profile.id,
            attribution=ATTRIBUTION,
            installed=True,
            description=profile.name,
            version=str(profile.revision),
            languages=service.voice_languages(profile),
        )
        for profile in service.voices()
    ]
    program = TtsProgram(
        name=PROGRAM,
        attribution=ATTRIBUTION,
        installed=True,
        description=f"Household voice cloning ({engine})",
        version=service.version,
        voices=voices,
        supports_synthesize_streaming=True,
    )
    return Info(tts=[program])


class WyomingServer:
    """Runs the Wyoming door until stopped."""

    def __init__(self, service: SpeechService, uri: str | None = None) -> None:
        self.service = service
        cfg = service.settings.wyoming
        self.uri = uri or cfg.uri
        self._server = AsyncServer.from_uri(self.uri)
        self.gate = ClientGate(cfg.allowed_clients, cfg.max_connections_per_client)
        self.throttle = LogThrottle(logging.getLogger(VoiceCloneEventHandler.__module__))
        self._zeroconf: Zeroconf | None = None

    @property
    def port(self) -> int | None:
        """The bound TCP port (useful with port 0)."""
        inner = getattr(self._server, "_server", None)
        if inner is None or not inner.sockets:
            return None
        return int(inner.sockets[0].getsockname()[1])

    @property
    def connections(self) -> list[VoiceCloneEventHandler]:
        """The connections being served now."""
        return [h for h in self._server._handlers.values() if isinstance(h, VoiceCloneEventHandler)]

    def _handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> VoiceCloneEventHandler:
        return VoiceCloneEventHandler(
            reader,
            writer,
            self.service,
            partial(build_info, self.service),
            self.service.settings.wyoming.samples_per_chunk,
            self.gate,
            self.throttle,
        )

    async def start(self, zeroconf: bool | None = None) -> None:
        """Start listening (and announce over zeroconf when enabled and the URI is TCP)."""
        await self._server.start(self._handler)
        log.info("Wyoming server listening on %s", self.uri)
        announce = self.service.settings.wyoming.zeroconf if zeroconf is None else zeroconf
        parsed = urlparse(self.uri)
        if zeroconf is None and announce and _loopback(parsed.hostname):
            log.info("not announced over zeroconf: %s is reachable from this machine only", self.uri)
            announce = False
        if announce and parsed.scheme == "tcp" and self.port:
            web = self.service.settings.web
            properties = {"server_id": self.service.server_id}
            if web.enabled:
                properties["web_port"] = str(web.port)
            self._zeroconf = Zeroconf(
                self.port,
                self.service.settings.wyoming.zeroconf_name or None,
                host=None if parsed.hostname in ("0.0.0.0", "::", "") else parsed.hostname,
                properties=properties,
            )
            await self._zeroconf.register()

    async def stop(self) -> None:
        if self._zeroconf is not None:
            await self._zeroconf.close()
            self._zeroconf = None
        await self._server.stop()


class Zeroconf:
    """mDNS announcement of ``_wyoming._tcp`` so Home Assistant discovers the server.

    ``properties`` go into the TXT record: ``server_id`` (what our integration keys its entry on) and ``web_port``
    (where the voice-management API is).
    """

    SERVICE = "_wyoming._tcp.local."

    def __init__(
        self, port: int, name: str | None = None, host: str | None = None, properties: dict[str, str] | None = None
    ) -> None:
        from zeroconf.asyncio import AsyncZeroconf

        self.port = port
        self.name = name or format(uuid.getnode(), "012x")
        self.host = host or _outbound_ip()
        self.properties = properties or {}
        self._aiozc = AsyncZeroconf(interfaces=[self.host])
        self.info = None

    async def register(self) -> None:
        from zeroconf.asyncio import AsyncServiceInfo

        self.info = AsyncServiceInfo(
            self.SERVICE,
            f"{self.name}.{self.SERVICE}",
            addresses=[socket.inet_aton(self.host)],
            port=self.port,
            properties=self.properties,
        )
        await self._aiozc.async_register_service(self.info)
        log.info("announced %s on %s:%d over zeroconf", self.info.name, self.host, self.port)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.info is not None:
                await self._aiozc.async_unregister_service(self.info)
        await self._aiozc.async_close()


def _loopback(host: str | None) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _outbound_ip() -> str:
    """The address other hosts reach us on (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("224.0.0.251", 5353))
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"
