"""Reading Wyoming events from a client, within limits (in place of wyoming's ``async_read_event``).

An event is a JSON header line, then ``data_length`` bytes of JSON data, then ``payload_length`` bytes of payload.
wyoming's own reader trusts the lengths and buffers whatever a client claims, so it is not used here. This one:

- refuses a header line, ``data_length`` or ``payload_length`` over ``max_bytes`` *before* reading it, so memory
  never grows with what a client sends (at most ``max_bytes`` plus one read of :data:`READ_SIZE` is buffered);
- refuses lengths that are not whole numbers ≥ 0 and headers that are not a JSON object;
- gives an event ``header_timeout_s`` to arrive whole once its first byte came (slowloris), and raises
  :class:`IdleTimeout` when no event starts within ``idle_timeout_s`` (the caller decides whether to close).

Problems come as :class:`FrameError` (an :class:`~voiceclone_core.service.InvalidRequest`, so they are answered like
any bad request). ``fatal`` ones leave the reader unable to tell where the next event starts: the connection must be
closed. The others (an event whose framing is sound but whose data or type is not) were read whole and skipped.
Text is decoded with ``surrogatepass`` so that a lone surrogate reaches the field checks, which name it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from wyoming.event import Event

from voiceclone_core.service import InvalidRequest

READ_SIZE = 65536


class FrameError(InvalidRequest):
    """An event that breaks the framing rules; ``fatal``: the rest of the stream cannot be read (close it)."""

    def __init__(self, message: str, *, fatal: bool = True) -> None:
        super().__init__(message)
        self.fatal = fatal


class EventTooLarge(FrameError):
    """A header line, data or payload over the limit (always fatal)."""


class IdleTimeout(Exception):
    """No event started within the idle timeout."""


class EventReader:
    """Reads one event at a time from ``reader``, within the limits."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        *,
        max_bytes: int,
        header_timeout_s: float,
        idle_timeout_s: float,
    ) -> None:
        self._reader = reader
        self.max_bytes = max_bytes
        self.header_timeout_s = header_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self._buffer = bytearray()
        self._eof = False

    async def read(self) -> Event | None:
        """The next event, or ``None`` when the client has gone (also when it leaves halfway through an event).

        Raises :class:`IdleTimeout` when nothing came for ``idle_timeout_s`` (the reader stays usable) and
        :class:`FrameError` for a bad event.
        """
        if not self._buffer and (self._eof or not await self._fill(self.idle_timeout_s, idle=True)):
            return None
        deadline = asyncio.get_running_loop().time() + self.header_timeout_s

        line = await self._line(deadline)
        if line is None:
            return None
        header = _json_object(line, "header", fatal=True)
        data_length = self._length(header, "data_length")
        payload_length = self._length(header, "payload_length")
        data_bytes = await self._exactly(data_length, deadline)
        payload = await self._exactly(payload_length, deadline)
        if data_bytes is None or payload is None:
            return None

        # The framing is sound from here on: what is wrong below is wrong with this event only.
        event_type = header.get("type")
        if not isinstance(event_type, str):
            raise FrameError(f"malformed event: type must be a string, not {json_kind(event_type)}", fatal=False)
        data = header.get("data")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise FrameError(f"malformed event: data must be a JSON object, not {json_kind(data)}", fatal=False)
        if data_bytes:
            data.update(_json_object(data_bytes, "data", fatal=False))
        return Event(type=event_type, data=data, payload=payload or None)

    # -- pieces ----------------------------------------------------------------------------------------------
    def _length(self, header: dict[str, Any], key: str) -> int:
        value = header.get(key)
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise FrameError(f"malformed event: {key} must be a whole number of bytes, not {_short(value)}")
        if value > self.max_bytes:
            raise EventTooLarge(f"event too large: {key} {value} is over the limit of {self.max_bytes} bytes")
        return value

    async def _line(self, deadline: float) -> bytes | None:
        """The header line (without its newline), at most ``max_bytes`` long."""
        searched = 0
        while (end := self._buffer.find(b"\n", searched)) < 0:
            searched = len(self._buffer)
            if searched > self.max_bytes:
                raise EventTooLarge(f"event too large: the header line is over the limit of {self.max_bytes} bytes")
            if not await self._fill(self._left(deadline)):
                return None
        if end > self.max_bytes:
            raise EventTooLarge(f"event too large: the header line is over the limit of {self.max_bytes} bytes")
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line

    async def _exactly(self, n: int, deadline: float) -> bytes | None:
        while len(self._buffer) < n:
            if not await self._fill(self._left(deadline)):
                return None
        part = bytes(self._buffer[:n])
        del self._buffer[:n]
        return part

    def _left(self, deadline: float) -> float:
        return deadline - asyncio.get_running_loop().time()

    async def _fill(self, timeout: float, idle: bool = False) -> bool:
        """Read what has come (waiting at most ``timeout``); ``False`` at end of stream."""
        try:
            if timeout <= 0:
                raise TimeoutError
            async with asyncio.timeout(timeout):
                chunk = await self._reader.read(READ_SIZE)
        except TimeoutError:
            if idle:
                raise IdleTimeout from None
            raise FrameError(f"event not complete within {self.header_timeout_s:g} s") from None
        if not chunk:
            self._eof = True
            return False
        self._buffer += chunk
        return True


def _json_object(raw: bytes, part: str, *, fatal: bool) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8", "surrogatepass"))
    except UnicodeDecodeError:
        raise FrameError(f"malformed event: the {part} is not UTF-8", fatal=fatal) from None
    except (ValueError, RecursionError):  # also numbers too long to convert, and nesting too deep
        raise FrameError(f"malformed event: the {part} is not valid JSON", fatal=fatal) from None
    if not isinstance(value, dict):
        raise FrameError(f"malformed event: the {part} must be a JSON object, not {json_kind(value)}", fatal=fatal)
    return value


def json_kind(value: object) -> str:
    """What a JSON value is, in JSON's words (for messages that never echo a client's data)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _short(value: object) -> str:
    if isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**18):
        return repr(value)
    return json_kind(value)
