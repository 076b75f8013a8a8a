"""The language given at enrollment: any real language is accepted, a tag that names none is refused up front.

A voice speaks every language its engine speaks, whatever it was enrolled in (README, "Languages"): Nonna, enrolled
from an Italian recording, announces dinner in English. So a real language the engine cannot speak (``zh`` on an
English-only engine) is no reason to refuse the recording; the voice is stored and speaks English, and its preview
is in a language the engine speaks. What is refused, before the engine loads and before anything is written, is a
tag that is no language (``klingon``, ``<script>``, ``xx``, ``und``), and enrollment on an engine that speaks nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from voiceclone_core.config import Settings
from voiceclone_core.service import InvalidRequest, ServiceUnavailable, SpeechRequest, build_service, outcome
from voiceclone_core.service.languages import check_enrollment_tag
from voiceclone_core.service.speech import SpeechService
from voiceclone_core.voices import VoiceLibrary

from .conftest import FakeEngine


class EnglishOnly(FakeEngine):
    languages = ("en",)


class Speechless(FakeEngine):
    languages = ()


def run(coro):
    return asyncio.run(coro)


def nothing_written(settings: Settings) -> bool:
    return not any(settings.voices_dir.iterdir())


@pytest.mark.parametrize(
    ("tag", "words"),
    [
        ("klingon", "invalid language 'klingon'"),
        ("<script>", "invalid language '<script>'"),
        ("english please", "invalid language 'english please'"),
        ("xx", "unknown language 'xx'"),
        ("xx-YY", "unknown language 'xx-YY'"),
        ("und", "unknown language 'und'"),
        ("zxx", "unknown language 'zxx'"),
        ("qaa", "unknown language 'qaa'"),
    ],
)
def test_a_tag_that_names_no_language_is_refused_before_anything_happens(
    settings: Settings, speech_wav: Path, tag: str, words: str
) -> None:
    loads: list[int] = []

    def load() -> FakeEngine:
        loads.append(1)
        return FakeEngine()

    service = SpeechService(settings, VoiceLibrary(settings.voices_dir), load)
    try:
        with pytest.raises(InvalidRequest) as refused:
            service.enroll("Mum", speech_wav, consent="Mum", language=tag)
        assert str(refused.value).startswith(words) and "such as 'en' or 'zh-CN'" in str(refused.value)
        assert outcome(refused.value).http_status == 400 and outcome(refused.value).exit_code == 2
        assert loads == [] and service.voices() == [] and nothing_written(settings)
    finally:
        service.close()


@pytest.mark.parametrize("tag", ["en", "EN", "en-GB", "en_US", "zh-CN", "zh_Hans", "it", "pt-BR", "yue", "tlh", "fil"])
def test_real_languages_pass(tag: str) -> None:
    assert check_enrollment_tag(f" {tag} ") == tag


def test_a_real_language_the_engine_cannot_speak_gives_a_voice_that_speaks(
    settings: Settings, speech_wav: Path
) -> None:
    """``zh`` on an English-only engine: stored, offered in English, speaks English, and its preview is English (it
    used to be Chinese, which this engine cannot say: every preview of the voice failed)."""
    engine = EnglishOnly()
    service = build_service(settings, engine=engine)
    try:
        profile = service.enroll("Wai Po", speech_wav, consent="Wai Po", language="zh").profile
        assert profile.language == "zh" and service.voice_languages(profile) == ["en"]
        sentence = service.preview_sentence("wai_po")
        assert sentence.isascii()
        spoken = run(service.synthesize(SpeechRequest(sentence, voice="wai_po")))
        assert spoken.languages == ("en",) and len(spoken.audio) > 0
        said = run(service.synthesize(SpeechRequest("Dinner is ready.", voice="wai_po")))
        assert said.languages == ("en",) and engine.languages_used[-1] == "en"
    finally:
        service.close()


def test_the_preview_stays_in_the_voices_own_language_when_the_engine_speaks_it(
    settings: Settings, fake_engine, speech_wav: Path
) -> None:
    service = build_service(settings, engine=fake_engine)  # speaks en and zh
    try:
        service.enroll("Wai Po", speech_wav, consent="Wai Po", language="zh-CN")
        sentence = service.preview_sentence("wai_po")
        assert not sentence.isascii()
        assert run(service.synthesize(SpeechRequest(sentence, voice="wai_po"))).languages == ("zh",)
    finally:
        service.close()


def test_no_voice_is_stored_on_an_engine_that_speaks_nothing(settings: Settings, speech_wav: Path) -> None:
    engine = Speechless()
    service = build_service(settings, engine=engine)
    try:
        with pytest.raises(ServiceUnavailable, match="speaks no language"):
            service.enroll("Mum", speech_wav, consent="Mum", language="en")
        assert service.voices() == [] and engine.prepared == 0 and nothing_written(settings)
    finally:
        service.close()


def test_the_web_door_answers_400_with_the_same_words(settings: Settings, fake_engine, speech_wav: Path) -> None:
    from .test_web import WebServer, request, upload

    service = build_service(settings, engine=fake_engine)
    server = WebServer(service)
    try:
        form = upload(speech_wav, name="Mum", consent="Mum", language="xx")
        status, _, body = request(server, "POST", "api/voices", data=form)
        assert status == 400 and b"unknown language 'xx'" in body
        assert service.voices() == [] and fake_engine.prepared == 0
    finally:
        server.close()
        service.close()
