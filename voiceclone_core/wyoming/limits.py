"""What every connection of one Wyoming server shares: who may connect, how often, and how much gets logged.

- :class:`ClientGate`: ``wyoming.allowed_clients`` (IP addresses or networks; empty = everyone who reaches the port;
  loopback is not special) and ``wyoming.max_connections_per_client`` (connections at once from one address).
  Only IP clients are checked: on a unix socket the socket file's permissions decide who connects.
- :class:`LogThrottle`: at most one log line per client and kind of trouble per ``interval_s``; the next line says
  how many were left out, so a client cannot grow the log by sending rubbish.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from voiceclone_core.service import ServiceBusy, outcome

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

NOT_ALLOWED = "NotAllowed"  # the Wyoming error code for a refused address (the service has no such error)
LOG_INTERVAL_S = 60.0


@dataclass(frozen=True)
class Refusal:
    """Why a connection is turned away: the error event's text and code."""

    text: str
    code: str


class ClientGate:
    """Admits or refuses connections, and counts those open per client address."""

    def __init__(self, allowed_clients: Iterable[str], max_per_client: int) -> None:
        self.networks = [ipaddress.ip_network(item, strict=False) for item in allowed_clients]
        self.max_per_client = max_per_client
        self.open: Counter[IPAddress] = Counter()

    def admit(self, client: IPAddress | None) -> Refusal | None:
        """``None`` (and the connection counted, until :meth:`release`) or why it is refused."""
        if client is None:
            return None
        if self.networks and not any(client in network for network in self.networks):
            return Refusal(f"not allowed: this server does not accept connections from {client}", NOT_ALLOWED)
        if self.open[client] >= self.max_per_client:
            busy = ServiceBusy(f"too many connections from {client} (at most {self.max_per_client} at once)")
            return Refusal(str(busy), outcome(busy).wyoming_code)
        self.open[client] += 1
        return None

    def release(self, client: IPAddress | None) -> None:
        if client is None:
            return
        self.open[client] -= 1
        if self.open[client] <= 0:
            del self.open[client]


def client_address(peername: object) -> IPAddress | None:
    """The client's IP address from a socket's ``peername`` (IPv4-mapped IPv6 as IPv4); ``None`` if not IP."""
    if not isinstance(peername, tuple) or not peername or not isinstance(peername[0], str):
        return None
    try:
        address = ipaddress.ip_address(peername[0].split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class LogThrottle:
    """Logs at most one line per key (client and kind of trouble) per ``interval_s``."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 4096,
    ) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self.clock = clock
        self.max_keys = max_keys
        self._seen: dict[Hashable, list[float]] = {}  # key -> [time of the last line, lines left out since]

    def log(
        self, key: Hashable, level: int, message: str, *args: object, exc_info: BaseException | None = None
    ) -> bool:
        """Log ``message % args`` unless a line for ``key`` went out less than ``interval_s`` ago (``True``: it did)."""
        if not self.logger.isEnabledFor(level):
            return False
        now = self.clock()
        seen = self._seen.pop(key, None)
        if seen is not None and now - seen[0] < self.interval_s:
            seen[1] += 1
            self._seen[key] = seen
            return False
        if seen is not None and seen[1]:
            message += " (and %d more like it in the last %.0f s, not logged)"
            args = (*args, int(seen[1]), now - seen[0])
        self._seen[key] = [now, 0]
        while len(self._seen) > self.max_keys:  # forget the clients heard from longest ago
            del self._seen[next(iter(self._seen))]
        self.logger.log(level, message, *args, exc_info=exc_info)
        return True
