"""SpeechService: streaming, cache, busy answer, priorities, cancellation, errors."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from voiceclone_core.config import Settings
from voiceclone_core.speech import Priority, ServiceBusy, SpeechError, SpeechRequest, SpeechService
from voiceclone_core.voices import VoiceLibrary


@pytest.fixture
def service(settings: Settings, fake_engine, speech_wav: Path):
    library = VoiceLibrary(settings.voices_dir, fake_engine)
    library.enroll("Mum", speech_wav, consent="Mum")
    svc = SpeechService(settings, library, fake_engine)
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
    library = VoiceLibrary(settings.voices_dir, engine)
    library.enroll("Mum", wav, consent="Mum")
    return SpeechService(settings, library, engine)


def run(coro):
    return asyncio.run(coro)


async def collect(svc: SpeechService, req: SpeechRequest) -> list[np.ndarray]:
    return [c async for c in svc.stream(req)]


def test_stream_yields_audio_per_chunk_and_whole_clip(service: SpeechService, fake_engine) -> None:
    text = "Good evening. " + "The front door is open and the lights in the garden are still on. " * 3
    chunks = run(collect(service, SpeechRequest(text, voice="mum")))
    assert len(chunks) == len(fake_engine.calls) >= 2
    assert fake_engine.calls[0] == "Good evening."  # short first chunk → early first audio
    assert all(c.dtype == np.float32 and len(c) for c in chunks)
    clip, sr = run(service.synthesize(SpeechRequest("Hello there.", voice="mum")))
    assert sr == 16000 and len(clip) > 0


def test_text_is_normalised_before_the_engine(service: SpeechService, fake_engine) -> None:
    run(service.synthesize(SpeechRequest("It is 7:30 and 50% done.", voice="mum")))
    joined = " ".join(fake_engine.calls)
    assert "seven thirty" in joined and "fifty percent" in joined and "7" not in joined


def test_chinese_text_gets_chinese_numerals(service: SpeechService, fake_engine) -> None:
    run(service.synthesize(SpeechRequest("我有3个苹果。", voice="mum", language="zh")))
    assert fake_engine.calls == ["我有三个苹果。"]


def test_cache_hit_miss_and_invalidation_on_reenrollment(service: SpeechService, fake_engine,
                                                          other_speech_wav: Path) -> None:
    req = SpeechRequest("The washing machine is done.", voice="mum")
    first, _ = run(service.synthesize(req))
    assert service.metrics.cache_misses == 1 and service.metrics.cache_hits == 0
    calls = len(fake_engine.calls)
    second, _ = run(service.synthesize(req))
    assert service.metrics.cache_hits == 1 and len(fake_engine.calls) == calls  # engine not called again
    np.testing.assert_allclose(first, second, atol=1 / 32768 * 2)
    run(service.synthesize(SpeechRequest("The washing machine is done.", voice="mum", speed=1.5)))
    assert service.metrics.cache_misses == 2  # options are part of the key
    loud, _ = run(service.synthesize(SpeechRequest("The washing machine is done.", voice="mum", volume=0.5)))
    assert service.metrics.cache_hits == 2  # volume is applied after the cache
    assert np.max(np.abs(loud)) == pytest.approx(np.max(np.abs(first)) * 0.5, rel=0.01)
    assert any(service.cache.root.joinpath("mum").iterdir())
    service.library.enroll("Mum", other_speech_wav, consent="Mum")  # new version of the voice
    assert not service.cache.root.joinpath("mum").exists()
    third, _ = run(service.synthesize(req))
    assert service.metrics.cache_misses == 3
    assert not np.allclose(third[:1000], first[:1000])  # new prompt → new audio


def test_cache_is_size_capped_lru(tmp_path: Path) -> None:
    from voiceclone_core.speech import AudioCache

    cache = AudioCache(tmp_path / "c", max_bytes=3 * 32_100)
    clip = np.zeros(16000, np.float32)  # 32044-byte WAV
    for i in range(3):
        cache.put("v", f"k{i}", clip, 16000)
    import os
    import time

    os.utime(cache._path("v", "k0"), (time.time() + 10, time.time() + 10))  # k0 recently used
    cache.put("v", "k3", clip, 16000)
    assert cache.get("v", "k1") is None and cache.get("v", "k0") is not None
    assert cache.size_bytes() <= 3 * 32_100


def test_deleting_a_voice_removes_its_cache(service: SpeechService) -> None:
    run(service.synthesize(SpeechRequest("Hello there.", voice="mum")))
    assert service.cache.root.joinpath("mum").is_dir()
    service.library.delete("mum")
    assert not service.cache.root.joinpath("mum").exists()


def test_bad_requests_are_clear_errors(service: SpeechService) -> None:
    cases = [
        (SpeechRequest("hi", voice="nobody"), "unknown voice"),
        (SpeechRequest("   ", voice="mum"), "empty"),
        (SpeechRequest("?!", voice="mum"), "no words"),
        (SpeechRequest("x" * 6000, voice="mum"), "too long"),
        (SpeechRequest("hi", voice="mum", speed=10), "speed"),
        (SpeechRequest("hi", voice="mum", language="fr"), "language"),
    ]
    for req, message in cases:
        with pytest.raises(SpeechError, match=message):
            run(service.synthesize(req))
    assert service.metrics.errors == len(cases)


def test_default_voice(settings: Settings, fake_engine, speech_wav: Path) -> None:
    library = VoiceLibrary(settings.voices_dir, fake_engine)
    svc = SpeechService(settings, library, fake_engine)
    try:
        with pytest.raises(SpeechError, match="no voice"):
            run(svc.synthesize(SpeechRequest("hi")))
        library.enroll("Mum", speech_wav, consent="Mum")
        library.enroll("Dad", speech_wav, consent="Dad")
        assert svc.resolve_voice(None) == "dad"  # first by name when no default is set
        settings.speech.default_voice = "mum"
        assert svc.resolve_voice(None) == "mum"
    finally:
        svc.close()


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


def test_engine_failure_becomes_speech_error_and_worker_survives(service: SpeechService, fake_engine,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    real = fake_engine.synthesize

    def broken(text, prompt, options):
        raise RuntimeError("onnx exploded")
        yield  # pragma: no cover

    monkeypatch.setattr(fake_engine, "synthesize", broken)
    with pytest.raises(SpeechError, match="onnx exploded"):
        run(service.synthesize(SpeechRequest("Hello.", voice="mum")))
    monkeypatch.setattr(fake_engine, "synthesize", real)
    clip, _ = run(service.synthesize(SpeechRequest("Hello again.", voice="mum")))
    assert len(clip) and service.queue_depth == 0


def test_output_sample_rate_and_metrics(settings: Settings, fake_engine, speech_wav: Path) -> None:
    settings.speech.output_sample_rate = 22050
    library = VoiceLibrary(settings.voices_dir, fake_engine)
    library.enroll("Mum", speech_wav, consent="Mum")
    svc = SpeechService(settings, library, fake_engine)
    try:
        clip, sr = run(svc.synthesize(SpeechRequest("one two three four", voice="mum")))
    finally:
        svc.close()
    assert sr == 22050
    assert len(clip) == pytest.approx(0.2 * 22050, rel=0.02)
    m = svc.metrics_snapshot()
    assert m["requests"] == 1 and m["first_audio_s_last"] > 0 and m["real_time_factor_median"] > 0
