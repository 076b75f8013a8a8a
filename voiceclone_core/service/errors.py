"""The few errors doors see from the service, and the one table that says what each means in every door.

``str(error)`` is the user-facing message: every door shows the same words for the same bad input. :func:`outcome`
gives the rest: a short code (JSON and MQTT results), the HTTP status, the CLI's exit code and the Wyoming error code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ServiceError(Exception):
    """A request the service cannot carry out; the message says why, in words for any door."""


class InvalidRequest(ServiceError):
    """The request itself is wrong: a parameter out of range, a bad name or id, no consent, an unreadable file."""


class NothingToSay(InvalidRequest):
    """The text is empty or has nothing speakable in it."""


class LanguageUnavailable(InvalidRequest):
    """The requested (or detected) language is one the engine cannot speak."""

    def __init__(self, language: str, available: tuple[str, ...], detected: bool = False) -> None:
        how = " (detected from the text)" if detected else ""
        super().__init__(f"language {language!r}{how} is not available; available: {', '.join(available)}")
        self.language = language
        self.available = available


class UnknownVoice(ServiceError):
    """The request names a voice that is not enrolled (or none is enrolled)."""


class RecordingRejected(ServiceError):
    """An enrollment recording is not good enough; ``report`` (a QualityReport, when there is one) says why."""

    def __init__(self, message: str, report: Any = None) -> None:
        super().__init__(message)
        self.report = report


class ServiceBusy(ServiceError):
    """The queue is full; try again later."""


class ServiceUnavailable(ServiceError):
    """The engine cannot run here (missing package, model files or device)."""


class SynthesisFailed(ServiceError):
    """The engine failed while speaking (a fault of the server, not of the request)."""


@dataclass(frozen=True)
class Outcome:
    """How one kind of error is answered in each door."""

    code: str  # JSON ``code`` field and MQTT result ``code``
    http_status: int
    exit_code: int  # the CLI's; 2 is also used for usage and settings errors
    wyoming_code: str


# Most specific first: the first class an error is an instance of decides.
_OUTCOMES: tuple[tuple[type[ServiceError], Outcome], ...] = (
    (NothingToSay, Outcome("nothing_to_say", 422, 2, "NothingToSay")),
    (LanguageUnavailable, Outcome("language_unavailable", 422, 2, "LanguageUnavailable")),
    (InvalidRequest, Outcome("invalid", 400, 2, "InvalidRequest")),
    (UnknownVoice, Outcome("unknown_voice", 404, 1, "VoiceNotFoundError")),
    (RecordingRejected, Outcome("rejected", 422, 1, "rejected")),
    (ServiceBusy, Outcome("busy", 503, 75, "ServiceBusy")),
    (ServiceUnavailable, Outcome("unavailable", 503, 1, "ServiceUnavailable")),
    (SynthesisFailed, Outcome("synthesis_failed", 500, 1, "SynthesisError")),
)
_DEFAULT = Outcome("error", 500, 1, "SynthesisError")


def outcome(error: ServiceError) -> Outcome:
    """How ``error`` is answered in every door."""
    for cls, result in _OUTCOMES:
        if isinstance(error, cls):
            return result
    return _DEFAULT
