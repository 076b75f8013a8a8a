"""Connections to the web door, bounded: at most ``max_per_client`` at once from one address (a 429 and a close
for the next), and a request's headers must arrive within ``header_timeout_s`` of the connection's first byte or
of the previous answer (a 408 and a close), so slow-drip clients cannot hold the door. Idle keep-alive connections
are closed by aiohttp itself (its keep-alive timeout)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web

REFUSE = "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {n}\r\n\r\n"


def _answer(transport: asyncio.BaseTransport, status: str, message: str, code: str) -> None:
    body = json.dumps({"error": message, "code": code}).encode()
    transport.write(REFUSE.format(status=status, n=len(body)).encode() + body)  # type: ignore[attr-defined]
    transport.close()


class ConnectionGate:
    """Counts connections per client address and times the arrival of request headers."""

    def __init__(self, max_per_client: int, header_timeout_s: float) -> None:
        self.max_per_client = max_per_client
        self.header_timeout_s = header_timeout_s
        self.open: Counter[str] = Counter()

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _Guarded(factory(), self)


class _Guarded(asyncio.Protocol):
    """Stands in front of aiohttp's protocol for one connection (everything else is passed through)."""

    def __init__(self, inner: asyncio.Protocol, gate: ConnectionGate) -> None:
        self.inner, self.gate = inner, gate
        self.peer = ""
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.tail = b""
        self.admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        if self.gate.open[self.peer] >= self.gate.max_per_client:
            _answer(transport, "429 Too Many Requests", "too many connections from this address", "rate_limited")
            return
        self.gate.open[self.peer] += 1
        self.admitted = True
        self.inner.connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        self.timer = asyncio.get_running_loop().call_later(self.gate.header_timeout_s, self._expired)

    def _expired(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            _answer(self.transport, "408 Request Timeout", "the request headers took too long to arrive", "timeout")

    def data_received(self, data: bytes) -> None:
        if not self.admitted:
            return
        if self.timer is not None and b"\r\n\r\n" in self.tail + data:  # the headers are in: the handler takes over
            self.timer.cancel()
            self.timer = None
        self.tail = (self.tail + data)[-3:]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.admitted else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.admitted:
            self.gate.open[self.peer] -= 1
            if self.gate.open[self.peer] <= 0:
                del self.gate.open[self.peer]
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class GuardedSite(web.TCPSite):
    """aiohttp's TCP site with every connection passing through a :class:`ConnectionGate`."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, gate: ConnectionGate, **kw: Any) -> None:
        super().__init__(runner, host, port, **kw)
        self.gate = gate

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self.gate.wrap(server), self._host, self._port, backlog=self._backlog, reuse_address=self._reuse_address
        )
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port
