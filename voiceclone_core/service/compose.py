"""The composition root: settings -> engine -> voice library -> speech service, in one place for every command."""

from __future__ import annotations

import functools

from voiceclone_core.config import Settings
from voiceclone_core.engines.base import Engine
from voiceclone_core.engines.registry import create_engine
from voiceclone_core.service.speech import SpeechService
from voiceclone_core.voices import VoiceLibrary


def build_service(settings: Settings, engine: Engine | None = None) -> SpeechService:
    """The speech service for ``settings``; its engine (the one named in settings unless ``engine`` is given) is
    loaded on first need, so commands that only manage voices never load a model."""
    load = (lambda: engine) if engine is not None else functools.partial(create_engine, settings)
    return SpeechService(settings, VoiceLibrary(settings.voices_dir), load)
