"""The AI-generated watermark: the real Perth weights from the resemble-perth wheel, marking whole and streamed, the
detector, the pinned weights file, and the service's switch. Every door's output is checked in test_doors.py."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile

from voiceclone_core import audio, watermark
from voiceclone_core.config import load_settings
from voiceclone_core.service import SpeechRequest, build_service

from .conftest import FakeEngine, espeak, service_with


@pytest.fixture(scope="module")
def marker() -> watermark.Watermarker:
    wm = watermark.Watermarker()
    wm.load()
    return wm


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, int]:
    path = espeak(
        "The washing machine has finished. Please hang the clothes up before dinner, and close the garage door.",
        tmp_path_factory.mktemp("wm") / "speech.wav",
        voice="en-us+f3",
    )
    return audio.decode(path)


def mark_snr_db(clean: np.ndarray, marked: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(clean**2) / np.sum((marked - clean) ** 2)))


@pytest.mark.parametrize("rate", [16000, 22050, 24000, 44100, 48000])
def test_marked_speech_is_detected_and_the_same_speech_unmarked_is_not(
    marker: watermark.Watermarker, speech: tuple[np.ndarray, int], rate: int
) -> None:
    x = audio.resample(*speech, rate)
    marked = marker.mark(x, rate)
    assert marked.shape == x.shape and marked.dtype == np.float32
    found, plain = marker.detect(marked, rate), marker.detect(x, rate)
    assert found.marked and found.confidence > 0.9, found
    assert not plain.marked and plain.confidence < 0.1, plain
    assert found.payload is None and found.method == watermark.METHOD
    assert mark_snr_db(x, marked) > 12  # the mark changes the sound by little (its energy sits under the speech)


def test_marking_in_pieces_gives_the_whole_clip_marking(
    marker: watermark.Watermarker, speech: tuple[np.ndarray, int]
) -> None:
    x, sr = speech
    whole, _ = marker._mark_segment(x, sr, 0.0)  # one pass over the whole clip: the reference
    size = np.max(np.abs(whole - x))  # the mark's own size
    rng = np.random.default_rng(3)
    for first in (int(1.2 * sr), 777, 1):  # a long first piece, a short one (an engine's early head), one sample
        stream = marker.stream(sr)
        cuts = np.sort(rng.choice(np.arange(first + 1, len(x)), size=40, replace=False))
        out = [stream.push(piece) for piece in np.split(x, [first, *cuts])]  # then pieces of 1 sample to seconds
        out.append(stream.flush())
        streamed = np.concatenate(out)
        assert streamed.shape == x.shape
        head = len(out[0])
        assert head == min(first, int(watermark.FIRST_BLOCK_S * sr))  # the first audio is not held back
        # exact (up to float rounding) everywhere but the head's estimated end and the mark's fade back in
        exact = np.ones(len(x), bool)
        exact[head - stream.estimated : head + int(watermark.FADE_S * sr)] = False
        assert np.max(np.abs(streamed - whole)[exact]) < 1e-4
        assert np.max(np.abs(streamed - whole)[~exact], initial=0.0) <= 2 * size
        assert stream.estimated == (0 if first > sr else head)
        assert marker.detect(streamed, sr).marked


def test_a_stream_holds_back_only_its_reach(marker: watermark.Watermarker, speech: tuple[np.ndarray, int]) -> None:
    x, sr = speech
    stream = marker.stream(sr)
    assert stream.reach < 0.25 * sr  # at most a quarter of a second waits for what follows
    first = stream.push(x[: sr * 2])
    assert len(first) == int(watermark.FIRST_BLOCK_S * sr) and stream.estimated == 0  # out early, and exact
    second = stream.push(x[2 * sr : 2 * sr + 10])
    assert len(first) + len(second) == 2 * sr + 10 - stream.reach  # then all but the reach
    assert len(stream.push(x[2 * sr + 10 : 2 * sr + 20])) == 0  # too little new audio to be worth a pass
    rest = stream.flush()
    assert len(first) + len(second) + len(rest) == 2 * sr + 20
    assert len(stream.flush()) == 0
    head = marker.stream(sr).push(x[: sr // 10])  # an engine's short first piece leaves at once
    assert len(head) == sr // 10


def test_silence_and_tiny_clips_are_handled(marker: watermark.Watermarker) -> None:
    silence = np.zeros(16000, np.float32)
    assert np.array_equal(marker.mark(silence, 16000), silence)  # nothing to hide a mark in: nothing added
    assert marker.detect(silence, 16000).confidence == 0.0
    assert marker.mark(np.zeros(0, np.float32), 16000).shape == (0,)
    tiny = np.full(50, 0.1, np.float32)
    assert marker.mark(tiny, 16000).shape == (50,)
    assert marker.detect(tiny, 16000).confidence == 0.0
    with pytest.raises(audio.AudioError, match="8 kHz"):
        marker.mark(silence, 4000)


def test_detection_finds_a_clone_inside_a_longer_recording_and_reads_at_most_two_minutes(
    marker: watermark.Watermarker, speech: tuple[np.ndarray, int]
) -> None:
    x, sr = speech
    room = np.concatenate([x] * 4)  # about 25 s of someone speaking, with the clone's words in the middle
    middle = len(room) // 2
    inside = room.copy()
    inside[middle : middle + len(x)] = marker.mark(x, sr)
    assert marker.detect(inside, sr).marked and not marker.detect(room, sr).marked
    long = np.tile(x, int(150 * sr / len(x)) + 1)  # 150 s: only the first 120 s are read
    found = marker.detect(long, sr)
    assert found.seconds == pytest.approx(watermark.DETECT_MAX_S, abs=0.01) and not found.marked


def test_weights_that_are_not_the_pinned_file_are_refused(tmp_path: Path) -> None:
    real = watermark.weights_path()
    altered = tmp_path / real.name
    data = bytearray(real.read_bytes())
    data[len(data) // 2] ^= 1
    altered.write_bytes(bytes(data))
    with pytest.raises(watermark.WatermarkUnavailable, match="pinned"):
        watermark.Watermarker(altered).load()


def test_file_info_names_the_voice_and_the_mark() -> None:
    info = watermark.file_info("Mum", True, "0.2.0")
    assert info["comment"].startswith("AI-generated voice clone of Mum, VoiceClone")
    assert watermark.METHOD in info["comment"] and info["software"] == "VoiceClone 0.2.0"
    assert "watermarked" not in watermark.file_info("Mum", False, "0.2.0")["comment"]


def test_the_service_marks_every_engine_and_says_so_when_marking_is_off(
    tmp_path: Path, classic_engine, speech_wav: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The service marks whatever the engine makes; with marking off it logs a warning at start, its speech carries
    no mark, and its files still say they are AI-generated."""
    clips = {}
    for enabled in ("true", "false"):
        settings = load_settings(env={}, overrides={"data_dir": str(tmp_path / enabled), "watermark.enabled": enabled})
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="voiceclone_core.service.speech"):
            service = build_service(settings, engine=classic_engine)
        warned = [r for r in caplog.records if "watermark.enabled is off" in r.getMessage()]
        assert bool(warned) == (enabled == "false")
        try:
            service.enroll("Mum", speech_wav, consent="Mum (test)", transcript=None)
            speech = asyncio.run(service.synthesize(SpeechRequest("The washing machine has finished.")))
        finally:
            service.close()
        assert speech.marked == (enabled == "true") and speech.voice_name == "Mum"
        clips[enabled] = speech
        out = tmp_path / f"{enabled}.wav"
        audio.write_wav(out, speech.audio, speech.sample_rate, speech.file_info())
        with soundfile.SoundFile(out) as f:
            assert f.comment.startswith("AI-generated voice clone of Mum")
    detector = watermark.Watermarker()
    assert detector.detect(clips["true"].audio, clips["true"].sample_rate).marked
    assert not detector.detect(clips["false"].audio, clips["false"].sample_rate).marked


class StreamingSpeechEngine(FakeEngine):
    """A streaming engine stand-in that speaks real speech: a recording handed out in 80 ms pieces (as Pocket and
    Qwen3 hand out theirs), or in one piece."""

    sample_rate = 24000

    def __init__(self, speech: tuple[np.ndarray, int], piece: int | None) -> None:
        super().__init__()
        self.audio = audio.resample(*speech, self.sample_rate)
        self.piece = piece

    def synthesize(self, text, prompt, options):
        self.calls.append(text)
        if self.piece is None:
            yield self.audio.copy()
            return
        for start in range(0, len(self.audio), self.piece):
            yield self.audio[start : start + self.piece].copy()


@pytest.mark.parametrize("piece", [1920, None])
def test_a_streaming_engine_s_speech_is_marked_through_the_service(
    tmp_path: Path, speech: tuple[np.ndarray, int], speech_wav: Path, piece: int | None
) -> None:
    """The service marks whatever an engine yields, piece by piece: the words two engines speak come out marked,
    in the same number of samples, and turning marking off gives the engine's own audio back."""
    outputs = {}
    for enabled in ("true", "false"):
        engine = StreamingSpeechEngine(speech, piece)
        settings = load_settings(env={}, overrides={"data_dir": str(tmp_path / enabled), "watermark.enabled": enabled})
        service = service_with(settings, engine, speech_wav)
        try:
            outputs[enabled] = asyncio.run(service.synthesize(SpeechRequest("Two sentences. Said in pieces.")))
        finally:
            service.close()
        assert len(engine.calls) == 2
    marked, plain = outputs["true"], outputs["false"]
    assert marked.audio.shape == plain.audio.shape
    detector = watermark.Watermarker()
    assert detector.detect(marked.audio, marked.sample_rate).marked
    assert not detector.detect(plain.audio, plain.sample_rate).marked
    engine_audio = audio.resample(*speech, StreamingSpeechEngine.sample_rate)
    assert np.array_equal(plain.audio, np.concatenate([engine_audio, engine_audio]))
