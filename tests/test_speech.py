"""SpeechService: streaming (whole and streamed text), cache, busy answer, priorities, cancellation, errors, voices."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from voiceclone_core.config import Settings
from voiceclone_core.engines.base import EngineError, EngineUnavailable
from voiceclone_core.service import (
    InvalidRequest,
    LanguageUnavailable,
    NothingToSay,
    Priority,
    RecordingRejected,
    ServiceBusy,
    ServiceError,
    ServiceUnavailable,
    SpeechRequest,
    SpeechService,
    SynthesisFailed,
    UnknownVoice,
    build_service,
)
from voiceclone_core.service.cache import AudioCache
from voiceclone_core.service.speech import SpeechService as _Service
from voiceclone_core.voices import VoiceLibrary

from .conftest import FakeEngine, espeak, service_with
from .rooms import reverberate


@pytest.fixture
def service(settings: Settings, fake_engine, speech_wav: Path):
    svc = service_with(settings, fake_engine, speech_wav)
    yield svc
    if fake_engine.gate is not None:
        fake_engine.gate.set()
    svc.close()


def one_worker_service(settings: Settings, engine, wav: Path, **speech) -> SpeechService:
    """A service with one worker, no cache and one enrolled voice 'mum' (speech settings overridable)."""
    settings.speech.workers = 1
    settings.cache.enabled = False
    for key, value in speech.items():
        setattr(settings.speech, key, value)
    return service_with(settings, engine, wav)


def run(coro):
    return asyncio.run(coro)


def settles(svc: SpeechService, timeout_s: float = 5.0) -> bool:
    """Whether every request ends within ``timeout_s`` (a chunk a worker is still rendering finishes first)."""
    deadline = time.monotonic() + timeout_s
    while svc.queue_depth and time.monotonic() < deadline:
        time.sleep(0.01)
    return svc.queue_depth == 0


async def collect(svc: SpeechService, req: SpeechRequest) -> list[np.ndarray]:
    return [c async for c in svc.stream(req)]


async def pieces(*parts: str, pause: float = 0.0) -> AsyncIterator[str]:
    for part in parts:
        if pause:
            await asyncio.sleep(pause)
        yield part


def test_stream_yields_audio_per_chunk_and_whole_clip(service: SpeechService, fake_engine) -> None:
    text = "Good evening. " + "The front door is open and the lights in the garden are still on. " * 3
    chunks = run(collect(service, SpeechRequest(text, voice="mum")))
    assert len(chunks) >= len(fake_engine.calls) >= 2  # the watermark may hand a chunk out in two pieces
    assert fake_engine.calls[0] == "Good evening."  # short first chunk → early first audio
    assert all(c.dtype == np.float32 and len(c) for c in chunks)
    speech = run(service.synthesize(SpeechRequest("Hello there.", voice="mum")))
    assert speech.sample_rate == 16000 and len(speech.audio) > 0
    assert speech.languages == ("en",) and speech.first_audio_s is not None and speech.first_audio_s > 0


def test_text_is_normalised_before_the_engine(service: SpeechService, fake_engine) -> None:
    run(service.synthesize(SpeechRequest("It is 7:30 and 50% done.", voice="mum")))
    joined = " ".join(fake_engine.calls)
    assert "seven thirty" in joined and "fifty percent" in joined and "7" not in joined


def test_chinese_text_gets_chinese_numerals(service: SpeechService, fake_engine) -> None:
    run(service.synthesize(SpeechRequest("我有3个苹果。", voice="mum", language="zh")))
    assert fake_engine.calls == ["我有三个苹果。"]


def test_streamed_text_gives_the_same_audio_as_the_whole_text(service: SpeechService, fake_engine) -> None:
    """Chunking has one owner: text arriving in LLM-sized pieces is cut and spoken exactly like the whole text."""
    service.cache.max_bytes = 0
    text = (
        "Good evening! The washing machine finished at 7:30, so the laundry is ready. "
        "The back door is still unlocked, and the garden lights are on. 明天会下雨。Shall I turn them off?"
    )
    whole = run(service.synthesize(SpeechRequest(text, voice="mum")))
    whole_calls = list(fake_engine.calls)
    fake_engine.calls.clear()
    words = text.split(" ")
    streamed = run(service.synthesize(SpeechRequest(pieces(*(w + " " for w in words[:-1]), words[-1]), voice="mum")))
    assert fake_engine.calls == whole_calls and len(whole_calls) >= 4
    np.testing.assert_array_equal(streamed.audio, whole.audio)
    assert streamed.languages == whole.languages == ("en", "zh")


def test_streamed_text_is_spoken_while_it_still_arrives(service: SpeechService, fake_engine) -> None:
    async def scenario() -> tuple[float, float]:
        t0 = time.perf_counter()
        first = None
        request = SpeechRequest(pieces("Good evening. ", "The lights ", "are on. ", "Bye.", pause=0.3), voice="mum")
        async for _ in service.stream(request):
            first = first if first is not None else time.perf_counter() - t0
        return first or 0.0, time.perf_counter() - t0

    first, total = run(scenario())
    assert first < 0.6 < total  # the first sentence was spoken before the rest of the text had arrived


def test_streamed_text_errors_end_the_stream(service: SpeechService) -> None:
    async def broken() -> AsyncIterator[str]:
        yield "Hello there. "
        raise ConnectionError("client gone")

    with pytest.raises(InvalidRequest, match="text stream failed"):
        run(service.synthesize(SpeechRequest(broken(), voice="mum")))
    with pytest.raises(InvalidRequest, match="must be a string"):
        run(service.synthesize(SpeechRequest(pieces("Hello. ", 42), voice="mum")))  # type: ignore[arg-type]
    with pytest.raises(NothingToSay):
        run(service.synthesize(SpeechRequest(pieces(" ", "..."), voice="mum")))
    assert settles(service)


def test_a_text_stream_that_goes_quiet_is_given_up(service: SpeechService) -> None:
    service.settings.speech.text_idle_s = 0.3

    async def quiet() -> AsyncIterator[str]:
        yield "Hello there. "
        await asyncio.sleep(5)
        yield "Too late."

    t0 = time.perf_counter()
    with pytest.raises(InvalidRequest, match=r"no text came for 0\.3 s"):
        run(service.synthesize(SpeechRequest(quiet(), voice="mum")))
    assert time.perf_counter() - t0 < 3 and settles(service)


def test_cache_hit_miss_and_invalidation_on_reenrollment(
    service: SpeechService, fake_engine, other_speech_wav: Path
) -> None:
    req = SpeechRequest("The washing machine is done.", voice="mum")
    first = run(service.synthesize(req)).audio
    assert service.metrics.cache_misses == 1 and service.metrics.cache_hits == 0
    calls = len(fake_engine.calls)
    second = run(service.synthesize(req)).audio
    assert service.metrics.cache_hits == 1 and len(fake_engine.calls) == calls  # engine not called again
    np.testing.assert_allclose(first, second, atol=1 / 32768 * 2)
    run(service.synthesize(SpeechRequest("The washing machine is done.", voice="mum", speed=1.5)))
    assert service.metrics.cache_misses == 2  # options are part of the key
    loud = run(service.synthesize(SpeechRequest("The washing machine is done.", voice="mum", volume=0.5))).audio
    assert service.metrics.cache_hits == 2  # volume is applied after the cache
    assert np.max(np.abs(loud)) == pytest.approx(np.max(np.abs(first)) * 0.5, rel=0.01)
    assert any(service.cache.root.joinpath("mum").iterdir())
    service.enroll("Mum", other_speech_wav, consent="Mum")  # new version of the voice
    assert not service.cache.root.joinpath("mum").exists()
    third = run(service.synthesize(req)).audio
    assert service.metrics.cache_misses == 3
    assert not np.allclose(third[:1000], first[:1000])  # new prompt → new audio


def test_cached_sentences_are_reused_inside_longer_texts(service: SpeechService, fake_engine) -> None:
    run(service.synthesize(SpeechRequest("The washing machine is done.", voice="mum")))
    fake_engine.calls.clear()
    run(service.synthesize(SpeechRequest("The washing machine is done. Please hang up the clothes.", voice="mum")))
    assert fake_engine.calls == ["Please hang up the clothes."]


def test_cache_is_size_capped_lru(tmp_path: Path) -> None:
    cache = AudioCache(tmp_path / "c", max_bytes=3 * 32_100)
    clip = np.zeros(16000, np.float32)  # 32044-byte WAV
    for i in range(3):
        cache.put("v", f"k{i}", clip, 16000)
    os.utime(cache._path("v", "k0"), (time.time() + 10, time.time() + 10))  # k0 recently used
    cache.put("v", "k3", clip, 16000)
    assert cache.get("v", "k1") is None and cache.get("v", "k0") is not None
    assert cache.size_bytes() <= 3 * 32_100


def test_deleting_a_voice_removes_its_cache(service: SpeechService) -> None:
    run(service.synthesize(SpeechRequest("Hello there.", voice="mum")))
    assert service.cache.root.joinpath("mum").is_dir()
    service.delete("mum")
    assert not service.cache.root.joinpath("mum").exists()


def test_bad_requests_are_clear_errors(service: SpeechService) -> None:
    cases = [
        (SpeechRequest("hi", voice="nobody"), UnknownVoice, "unknown voice"),
        (SpeechRequest("   ", voice="mum"), NothingToSay, "empty"),
        (SpeechRequest("?!", voice="mum"), NothingToSay, "no words"),
        (SpeechRequest("x" * 6000, voice="mum"), InvalidRequest, "too long"),
        (SpeechRequest("hi", voice="mum", speed=10), InvalidRequest, "speed"),
        (SpeechRequest("hi", voice="mum", volume="loud"), InvalidRequest, "volume"),  # type: ignore[arg-type]
        (
            SpeechRequest("hi", voice="mum", language="fr"),
            LanguageUnavailable,
            "'fr' is not available; available: en, zh",
        ),
        (SpeechRequest("Привет, как дела?", voice="mum"), LanguageUnavailable, "'ru' \\(detected from the text\\)"),
        (SpeechRequest(b"hi", voice="mum"), InvalidRequest, "must be a string"),  # type: ignore[arg-type]
        (SpeechRequest("hi", voice=["mum"]), InvalidRequest, "voice"),  # type: ignore[arg-type]
    ]
    for req, error, message in cases:
        with pytest.raises(error, match=message):
            run(service.synthesize(req))
    assert service.metrics.errors == len(cases)


def test_a_voice_speaks_every_language_of_its_engine(settings: Settings, fake_engine, speech_wav: Path) -> None:
    """Cross-lingual: a voice enrolled in Italian speaks English and Chinese, language detected from the text."""
    svc = service_with(settings, fake_engine, speech_wav, name="Nonna", consent="Nonna", language="it")
    try:
        english = run(svc.synthesize(SpeechRequest("The washing machine is done.", voice="nonna")))
        chinese = run(svc.synthesize(SpeechRequest("晚饭准备好了。", voice="nonna")))
        neutral = run(svc.synthesize(SpeechRequest("42.", voice="nonna")))
        offered = svc.voice_languages(svc.voice("nonna"))
    finally:
        svc.close()
    assert english.languages == ("en",) and len(english.audio)
    assert chinese.languages == ("zh",)
    assert neutral.languages == ("en",)  # nothing to detect, Italian not spoken: the configured default
    assert offered == ["en", "zh"]


def test_voice_language_and_previous_chunk_decide_when_the_text_does_not(
    settings: Settings, fake_engine, speech_wav: Path
) -> None:
    svc = service_with(settings, fake_engine, speech_wav, name="Nai Nai", consent="Nai Nai", language="zh-CN")
    try:
        assert run(svc.synthesize(SpeechRequest("42.", voice="nai_nai"))).languages == ("zh",)
        assert run(svc.synthesize(SpeechRequest("OK.", voice="nai_nai"))).languages == ("en",)  # Latin script
        mixed = run(svc.synthesize(SpeechRequest("晚饭好了。 42! Dinner is ready for everyone.", voice="nai_nai")))
        assert svc.voice_languages(svc.voice("nai_nai")) == ["zh_CN", "en"]
    finally:
        svc.close()
    assert mixed.languages == ("zh", "en") and fake_engine.languages_used[-3:] == ["zh", "zh", "en"]


def test_default_voice(settings: Settings, fake_engine, speech_wav: Path) -> None:
    svc = build_service(settings, engine=fake_engine)
    try:
        with pytest.raises(UnknownVoice, match="no voice"):
            run(svc.synthesize(SpeechRequest("hi")))
        svc.enroll("Mum", speech_wav, consent="Mum")
        svc.enroll("Dad", speech_wav, consent="Dad")
        assert svc._resolve_voice(None) == "dad"  # first by display name when no default is set
        settings.speech.default_voice = "mum"
        assert svc._resolve_voice(None) == "mum"
        assert len(run(svc.synthesize(SpeechRequest("Hello."))).audio)
    finally:
        svc.close()


def test_voice_management_never_loads_the_engine(settings: Settings, fake_engine, speech_wav: Path) -> None:
    service_with(settings, fake_engine, speech_wav).close()

    def no_engine() -> FakeEngine:
        raise EngineUnavailable("the model files are unreadable")

    svc = _Service(settings, VoiceLibrary(settings.voices_dir), no_engine)
    try:
        assert [v.id for v in svc.voices()] == ["mum"]
        assert svc.rename("mum", "Mother").name == "Mother"
        with pytest.raises(UnknownVoice):
            svc.rename("nobody", "X")
        with pytest.raises(InvalidRequest, match="invalid voice id"):
            svc.delete("../etc")
        svc.delete("mum")
        assert svc.voices() == [] and svc.queue_depth == 0
        with pytest.raises(ServiceUnavailable, match="unreadable"):
            svc.enroll("Dad", speech_wav, consent="Dad")
        with pytest.raises(ServiceUnavailable, match="cannot start"):
            svc.engine_info()
    finally:
        svc.close()


def test_enrollment_errors_are_service_errors(
    service: SpeechService, fake_engine, speech_wav: Path, tmp_path: Path
) -> None:
    with pytest.raises(InvalidRequest, match="consent"):
        service.enroll("Dad", speech_wav, consent=" ")
    with pytest.raises(InvalidRequest, match="display name"):
        service.enroll("", speech_wav, consent="Dad")
    with pytest.raises(InvalidRequest, match="invalid language"):
        service.enroll("Dad", speech_wav, consent="Dad", language="english please")
    with pytest.raises(InvalidRequest, match="decode"):
        service.enroll("Dad", b"not audio", consent="Dad")
    with pytest.raises(RecordingRejected, match="recording rejected") as rejected:
        service.enroll("Dad", espeak("Hello there.", tmp_path / "short.wav"), consent="Dad")
    assert any("speech" in reason for reason in rejected.value.report.reasons)
    fake_engine.fail_prepare = EngineError("singular matrix")
    with pytest.raises(RecordingRejected, match="could not learn this voice"):
        service.enroll("Dad", speech_wav, consent="Dad")
    assert [v.id for v in service.voices()] == ["mum"]


def test_enrollment_language_from_the_transcript(service: SpeechService, speech_wav: Path) -> None:
    zh = service.enroll("Wai Po", speech_wav, consent="Wai Po", transcript="洗衣机已经洗完了，请把衣服晾起来。")
    en = service.enroll("Dad", speech_wav, consent="Dad")
    assert zh.profile.language == "zh" and en.profile.language == "en" and zh.mode == "fake"


def test_busy_when_queue_full_and_recovers(settings: Settings, fake_engine, speech_wav: Path) -> None:
    svc = one_worker_service(settings, fake_engine, speech_wav, queue_size=2)
    fake_engine.gate = threading.Event()

    async def scenario():
        a = asyncio.create_task(collect(svc, SpeechRequest("one two", voice="mum")))
        b = asyncio.create_task(collect(svc, SpeechRequest("three four", voice="mum")))
        while svc.queue_depth < 2:
            await asyncio.sleep(0.01)
        t0 = asyncio.get_running_loop().time()
        with pytest.raises(ServiceBusy):
            await collect(svc, SpeechRequest("five six", voice="mum"))
        answered_in = asyncio.get_running_loop().time() - t0
        fake_engine.gate.set()
        results = await asyncio.gather(a, b)
        after = await collect(svc, SpeechRequest("seven eight", voice="mum"))
        return answered_in, results, after

    try:
        answered_in, results, after = run(scenario())
    finally:
        fake_engine.gate.set()
        svc.close()
    assert answered_in < 0.5  # busy is answered at once, not after the queue drains
    assert all(r for r in results) and after
    assert svc.metrics.busy == 1 and svc.queue_depth == 0


def test_interactive_overtakes_queued_announcement(settings: Settings, fake_engine, speech_wav: Path) -> None:
    svc = one_worker_service(settings, fake_engine, speech_wav)
    fake_engine.gate = threading.Event()
    long_text = " ".join(f"Sentence number {w} is here." for w in ("one", "two", "three", "four"))

    async def scenario():
        batch = asyncio.create_task(collect(svc, SpeechRequest(long_text, voice="mum", priority=Priority.BATCH)))
        while not fake_engine.calls:
            await asyncio.sleep(0.01)
        quick = asyncio.create_task(collect(svc, SpeechRequest("Lights off.", voice="mum")))
        while svc.queue_depth < 2:
            await asyncio.sleep(0.01)
        fake_engine.gate.set()
        await asyncio.gather(batch, quick)

    try:
        run(scenario())
    finally:
        fake_engine.gate.set()
        svc.close()
    # the interactive request ran right after the batch job's first sentence, not after all four
    assert fake_engine.calls[1] == "Lights off."
    assert len(fake_engine.calls) == 5


def test_listener_leaving_cancels_remaining_work(settings: Settings, fake_engine, speech_wav: Path) -> None:
    svc = one_worker_service(settings, fake_engine, speech_wav)
    fake_engine.delay = 0.1
    text = " ".join(f"This is sentence {n}." for n in ("one", "two", "three", "four", "five", "six"))

    async def scenario():
        agen = svc.stream(SpeechRequest(text, voice="mum"))
        await agen.__anext__()
        await agen.aclose()  # the client hung up after the first chunk
        await asyncio.sleep(0.2)
        return await collect(svc, SpeechRequest("Still here.", voice="mum"))

    try:
        after = run(scenario())
    finally:
        svc.close()
    assert after and svc.queue_depth == 0
    assert len(fake_engine.calls) <= 3  # the remaining sentences were not synthesised


def test_listener_leaving_a_text_stream_frees_its_slot(settings: Settings, fake_engine, speech_wav: Path) -> None:
    svc = one_worker_service(settings, fake_engine, speech_wav)

    async def endless() -> AsyncIterator[str]:
        while True:
            yield "More text. "
            await asyncio.sleep(0.05)

    async def scenario():
        agen = svc.stream(SpeechRequest(endless(), voice="mum"))
        await agen.__anext__()
        await agen.aclose()
        await asyncio.sleep(0.2)
        return svc.queue_depth, await collect(svc, SpeechRequest("Still here.", voice="mum"))

    try:
        depth, after = run(scenario())
    finally:
        svc.close()
    assert depth == 0 and after


def test_engine_failure_becomes_a_service_error_and_worker_survives(
    service: SpeechService, fake_engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = fake_engine.synthesize

    def broken(text, prompt, options):
        raise RuntimeError("onnx exploded")
        yield  # pragma: no cover

    monkeypatch.setattr(fake_engine, "synthesize", broken)
    with pytest.raises(SynthesisFailed, match="onnx exploded"):
        run(service.synthesize(SpeechRequest("Hello.", voice="mum")))
    monkeypatch.setattr(fake_engine, "synthesize", real)
    speech = run(service.synthesize(SpeechRequest("Hello again.", voice="mum")))
    assert len(speech.audio) and service.queue_depth == 0


def test_output_sample_rate_and_metrics(settings: Settings, fake_engine, speech_wav: Path) -> None:
    settings.speech.output_sample_rate = 22050
    svc = service_with(settings, fake_engine, speech_wav)
    try:
        speech = run(svc.synthesize(SpeechRequest("one two three four", voice="mum")))
    finally:
        svc.close()
    assert speech.sample_rate == 22050
    assert len(speech.audio) == pytest.approx(0.2 * 22050, rel=0.02)
    m = svc.metrics_snapshot()
    assert m["requests"] == 1 and m["first_audio_s_last"] > 0 and m["real_time_factor_median"] > 0


@pytest.mark.parametrize(
    ("batches", "max_concurrency", "device", "setting", "expected"),
    [
        (True, 8, "cuda", 0, 8),  # a batching engine gets one worker per stream slot, even on a GPU
        (False, None, "cuda", 0, 1),  # one worker per accelerator
        (False, 1, "cpu", 4, 1),  # an engine that is not thread-safe caps the pool
        (False, None, "cpu", 3, 3),
    ],
)
def test_workers_follow_the_engine_capabilities(
    settings: Settings, batches: bool, max_concurrency: int | None, device: str, setting: int, expected: int
) -> None:
    engine = FakeEngine()
    engine.batches_streams, engine.max_concurrency = batches, max_concurrency
    settings.engine.device, settings.speech.workers = device, setting
    svc = build_service(settings, engine=engine)
    try:
        svc.engine_info()
        assert svc._scheduler is not None and svc._scheduler.workers == expected
    finally:
        svc.close()
    assert engine.closed  # close() frees the engine


def test_closing_ends_requests_in_flight(settings: Settings, fake_engine, speech_wav: Path) -> None:
    svc = one_worker_service(settings, fake_engine, speech_wav)
    fake_engine.gate = threading.Event()

    async def scenario():
        task = asyncio.create_task(collect(svc, SpeechRequest("One. Two. Three.", voice="mum")))
        while svc.queue_depth < 1:
            await asyncio.sleep(0.01)
        threading.Timer(0.5, fake_engine.gate.set).start()
        await asyncio.to_thread(svc.close)
        with pytest.raises(ServiceError, match="shutting down"):
            await asyncio.wait_for(task, 5)

    run(scenario())


def test_enrolling_a_reverberant_or_noisy_recording_warns(
    settings: Settings, fake_engine: FakeEngine, speech_wav: Path, tmp_path: Path
) -> None:
    """A recording made in an echoey room, or with noise 20 dB below the speech, still enrolls, with the reason."""
    import soundfile as sf

    from voiceclone_core import audio

    x, sr = audio.decode(speech_wav)
    echoey, noisy = tmp_path / "echoey.wav", tmp_path / "noisy.wav"
    sf.write(echoey, reverberate(x, sr, 0.6, seed=5), sr)
    hum = np.random.default_rng(6).standard_normal(x.size) * np.sqrt(np.mean(x**2) / 100)  # 20 dB below the speech
    sf.write(noisy, x + hum, sr)
    service = service_with(settings, fake_engine)
    clean = service.enroll("Mum", speech_wav, consent="Mum").report
    assert clean.verdict == "ok", clean.reasons
    room = service.enroll("Dad", echoey, consent="Dad").report
    assert room.verdict == "warn" and any("echoey" in r for r in room.reasons), room.reasons
    loud = service.enroll("Gran", noisy, consent="Gran").report
    assert loud.verdict == "warn" and any("noisy" in r for r in loud.reasons), loud.reasons
    assert {v.name for v in service.voices()} == {"Mum", "Dad", "Gran"}
