"""The fields of ``synthesize``, ``synthesize-start`` and ``synthesize-chunk``, checked before anything uses them.

wyoming's ``Synthesize.from_event`` / ``SynthesizeVoice.from_dict`` trust the client (a ``voice`` that is not an
object or a missing ``text`` raise ``TypeError``/``KeyError``), so events are read here instead, and every wrong
field is an :class:`~voiceclone_core.service.InvalidRequest` whose message names the field. Value ranges (speed,
volume), voice names and languages are the service's to check: it gives every door the same words for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voiceclone_core.service import InvalidRequest, SpeechRequest
from voiceclone_core.wyoming.reader import json_kind


@dataclass(frozen=True)
class SpeechOptions:
    """How to speak: the fields next to the text."""

    voice: str | None = None
    language: str | None = None
    speed: float = 1.0
    volume: float = 1.0

    def request(self, words: Any) -> SpeechRequest:
        return SpeechRequest(words, voice=self.voice, language=self.language, speed=self.speed, volume=self.volume)


def speech_options(data: dict[str, Any]) -> SpeechOptions:
    """``voice`` (``name``, ``language``, ``speaker``), ``speed`` and ``volume`` of a synthesize(-start) event."""
    voice = data.get("voice")
    if voice is None:
        voice = {}
    if not isinstance(voice, dict):
        raise InvalidRequest(f'voice must be an object such as {{"name": "mum"}}, not {json_kind(voice)}')
    name, language, _speaker = (_optional_text(voice.get(k), f"voice.{k}") for k in ("name", "language", "speaker"))
    return SpeechOptions(
        voice=name or None,
        language=language or None,
        speed=_number(data.get("speed"), "speed"),
        volume=_number(data.get("volume"), "volume"),
    )


def synthesize_text(data: dict[str, Any]) -> str:
    """The ``text`` of a one-shot ``synthesize`` (required)."""
    if data.get("text") is None:
        raise InvalidRequest("synthesize needs a text")
    return text(data["text"], "text")


def chunk_text(data: dict[str, Any]) -> str:
    """The ``text`` of a ``synthesize-chunk`` (required)."""
    if data.get("text") is None:
        raise InvalidRequest("synthesize-chunk needs a text")
    return text(data["text"], "text")


def text(value: object, name: str) -> str:
    """``value`` if it is a string that can be written as UTF-8 (no lone surrogates)."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string, not {json_kind(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = ord(value[exc.start])
        raise InvalidRequest(f"{name} is not valid text: it has a lone surrogate (U+{bad:04X})") from None
    return value


def _optional_text(value: object, name: str) -> str | None:
    return None if value is None else text(value, name)


def _number(value: object, name: str) -> float:
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"{name} must be a number, not {json_kind(value)}")
    try:
        return float(value)  # NaN and infinities are left to the service's range check
    except OverflowError:
        raise InvalidRequest(f"{name} is out of range") from None
