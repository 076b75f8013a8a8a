"""The service layer: the one API every door calls (speech, voices, engine facts), its errors, and its wiring.

Doors import from here, never from ``engines``, ``voices`` or ``text`` (tests/test_architecture.py keeps that true).
"""

from voiceclone_core.audio import QualityReport
from voiceclone_core.service.compose import build_service
from voiceclone_core.service.errors import (
    InvalidRequest,
    LanguageUnavailable,
    NothingToSay,
    Outcome,
    RecordingRejected,
    ServiceBusy,
    ServiceError,
    ServiceUnavailable,
    SynthesisFailed,
    UnknownVoice,
    outcome,
)
from voiceclone_core.service.identity import ApiToken
from voiceclone_core.service.scheduler import Priority
from voiceclone_core.service.speech import (
    EngineInfo,
    Enrollment,
    Health,
    Rendering,
    SpeechRequest,
    SpeechService,
    recording_digest,
    voice_id_for,
)
from voiceclone_core.voices import VoiceProfile

__all__ = [
    "ApiToken",
    "EngineInfo",
    "Enrollment",
    "Health",
    "InvalidRequest",
    "LanguageUnavailable",
    "NothingToSay",
    "Outcome",
    "Priority",
    "QualityReport",
    "RecordingRejected",
    "Rendering",
    "ServiceBusy",
    "ServiceError",
    "ServiceUnavailable",
    "SpeechRequest",
    "SpeechService",
    "SynthesisFailed",
    "UnknownVoice",
    "VoiceProfile",
    "build_service",
    "outcome",
    "recording_digest",
    "voice_id_for",
]
