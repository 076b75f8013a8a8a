"""Tests for voiceclone_core.audio (decode, clean-up, VAD and the enrollment QualityReport)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voiceclone_core import audio
from voiceclone_core.audio import AudioError, QualityReport, SampleRejected

from .rooms import reverberate

PASSAGE = (
    "The quick brown fox jumps over the lazy dog. My grandmother kept a small garden behind the house, "
    "where she grew tomatoes, beans and sunflowers every summer."
)
SR = 22050


def _rms_db(x: np.ndarray) -> float:
    return 10.0 * np.log10(np.mean(np.square(x, dtype=np.float64)))


def _speech_rms_db(x: np.ndarray, mask: np.ndarray, n: int) -> float:
    """RMS (dBFS) over the frames of ``n`` samples that ``mask`` marks as speech."""
    return _rms_db(np.concatenate([x[i * n : (i + 1) * n] for i in np.flatnonzero(mask)]))


def _noise(n: int, level: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * level).astype(np.float32)


def _pad(x: np.ndarray, sr: int, before_s: float, after_s: float, floor: float = 1e-4) -> np.ndarray:
    """Surround ``x`` with silence holding a faint (-80 dBFS) noise floor, like a real quiet room."""
    y = np.concatenate([np.zeros(int(before_s * sr), np.float32), x, np.zeros(int(after_s * sr), np.float32)])
    return y + _noise(y.size, floor, seed=1)


def _tone(freq: float, seconds: float, sr: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """~9 s of espeak-ng speech at its native 22050 Hz (float32 mono)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng is not installed; it is needed to synthesise test speech")
    out = tmp_path_factory.mktemp("speech") / "passage.wav"
    subprocess.run([exe, "-w", str(out), PASSAGE], check=True, capture_output=True, timeout=60)
    x, sr = sf.read(out, dtype="float32")
    assert sr == SR
    assert 6.0 < x.size / sr < 14.0
    return x


@pytest.fixture(scope="session")
def core(speech: np.ndarray) -> np.ndarray:
    """The speech with espeak's own leading/trailing near-silence removed (sample-amplitude based)."""
    idx = np.flatnonzero(np.abs(speech) > 0.01 * np.abs(speech).max())
    return speech[idx[0] : idx[-1] + 1].copy()


# --- decode ----------------------------------------------------------------------------------------------


def _write(path: Path, x: np.ndarray, sr: int, fmt: str, subtype: str | None) -> None:
    if fmt == "MP3" and "MP3" not in sf.available_formats():
        sox = shutil.which("sox")
        if sox is None:
            pytest.skip("this libsndfile cannot write MP3 and sox is not installed")
        wav = path.with_suffix(".wav")
        sf.write(wav, x, sr, subtype="PCM_16")
        res = subprocess.run([sox, str(wav), str(path)], capture_output=True, timeout=60)
        if res.returncode != 0:
            pytest.skip(f"neither libsndfile nor sox can write MP3: {res.stderr.decode()[:200]}")
        return
    if subtype is not None and subtype not in sf.available_subtypes(fmt):
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} does not support {fmt}/{subtype}")
    sf.write(path, x, sr, format=fmt, subtype=subtype)


@pytest.mark.parametrize(
    ("fmt", "subtype", "sr", "lossless"),
    [
        ("WAV", "PCM_16", 22050, True),
        ("FLAC", "PCM_16", 22050, True),
        ("OGG", "VORBIS", 22050, False),
        ("OGG", "OPUS", 48000, False),
        ("MP3", "MPEG_LAYER_III", 22050, False),
    ],
)
def test_decode_formats_from_bytes_and_path(
    tmp_path: Path, speech: np.ndarray, fmt: str, subtype: str, sr: int, lossless: bool
) -> None:
    x = audio.resample(speech, SR, sr)
    path = tmp_path / f"clip.{fmt.lower()}"
    _write(path, x, sr, fmt, subtype)

    y_path, sr_path = audio.decode(path)
    y_str, _ = audio.decode(str(path))
    y_bytes, sr_bytes = audio.decode(path.read_bytes())

    assert sr_path == sr_bytes == sr
    assert y_path.dtype == np.float32 and y_path.ndim == 1
    np.testing.assert_array_equal(y_path, y_bytes)
    np.testing.assert_array_equal(y_path, y_str)
    assert np.abs(y_path).max() <= 1.0
    if lossless:
        assert y_path.size == x.size
        np.testing.assert_allclose(y_path, x, atol=1.0 / 16384)
    else:
        # codecs add priming/padding; duration and level must survive
        assert abs(y_path.size - x.size) < 0.1 * sr
        assert abs(_rms_db(y_path) - _rms_db(x)) < 1.5


def test_decode_stereo_is_averaged_to_mono(tmp_path: Path) -> None:
    left = _tone(440, 1.0, 16000, amp=0.6)
    right = np.full_like(left, 0.2)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    y, sr = audio.decode(path)
    assert sr == 16000 and y.ndim == 1 and y.size == left.size
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-6)


def test_decode_clips_float_files_and_replaces_nan(tmp_path: Path) -> None:
    path = tmp_path / "hot.wav"
    sf.write(path, np.array([0.0, 1.5, -2.0, np.nan, 0.25], np.float32), 16000, subtype="FLOAT")
    y, _ = audio.decode(path)
    np.testing.assert_array_equal(y, np.array([0.0, 1.0, -1.0, 0.0, 0.25], np.float32))


def test_to_mono_accepts_both_layouts() -> None:
    frames = np.stack([np.ones(100), np.zeros(100)], axis=1)
    np.testing.assert_allclose(audio.to_mono(frames), 0.5)
    np.testing.assert_allclose(audio.to_mono(frames.T), 0.5)
    assert audio.to_mono(frames).dtype == np.float32


def test_decode_unreadable_bytes_raises_audio_error() -> None:
    with pytest.raises(AudioError, match="decode"):
        audio.decode(b"this is definitely not an audio file" * 50)
    assert issubclass(AudioError, ValueError)


def test_decode_empty_inputs_raise_audio_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        audio.decode(empty)
    with pytest.raises(AudioError, match="empty"):
        audio.decode(b"")
    no_frames = tmp_path / "noframes.wav"
    sf.write(no_frames, np.zeros(0, np.float32), 16000, subtype="PCM_16")
    with pytest.raises(AudioError, match="no audio"):
        audio.decode(no_frames)
    with pytest.raises(AudioError, match="not found"):
        audio.decode(tmp_path / "missing.wav")


# --- resample / energy -----------------------------------------------------------------------------------


def test_resample_length_dtype_and_noop() -> None:
    x = _tone(440, 1.0, 22050)
    y = audio.resample(x, 22050, 16000)
    assert y.dtype == np.float32
    assert abs(y.size - 16000) <= 1
    assert audio.resample(x, 22050, 22050) is x or np.array_equal(audio.resample(x, 22050, 22050), x)
    assert audio.resample(x.astype(np.float64), 16000, 16000).dtype == np.float32
    with pytest.raises(AudioError):
        audio.resample(x, 0, 16000)


@pytest.mark.parametrize(("sr_from", "sr_to"), [(22050, 16000), (16000, 48000), (44100, 8000)])
def test_resample_preserves_sine_frequency(sr_from: int, sr_to: int) -> None:
    freq = 440.0
    y = audio.resample(_tone(freq, 2.0, sr_from), sr_from, sr_to)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    peak_hz = np.argmax(spectrum) * sr_to / y.size
    assert abs(peak_hz - freq) < 1.0
    # amplitude preserved (away from the filter edges)
    mid = y[sr_to // 4 : -sr_to // 4]
    assert abs(np.abs(mid).max() - 0.5) < 0.01


def test_frame_energy_db_levels_and_frame_count() -> None:
    sr = 16000
    x = np.concatenate([_tone(1000, 0.5, sr, amp=1.0), np.zeros(sr // 2 + 5, np.float32)])
    db = audio.frame_energy_db(x, sr, frame_ms=20.0)
    assert db.size == -(-x.size // 320)
    np.testing.assert_allclose(db[2:20], -3.01, atol=0.1)
    assert np.all(db[-10:] <= -119.0)


# --- VAD / trim ------------------------------------------------------------------------------------------


def test_voice_activity_finds_speech_between_silences(core: np.ndarray) -> None:
    x = _pad(core, SR, 1.0, 1.0)
    mask = audio.voice_activity(x, SR)
    frame_s = 0.02
    assert mask.dtype == bool and mask.size == -(-x.size // round(SR * frame_s))
    assert not mask[: int(0.9 / frame_s)].any(), "leading silence marked as speech"
    assert not mask[-int(0.8 / frame_s) :].any(), "trailing silence marked as speech"
    on = np.flatnonzero(mask)
    assert abs(on[0] * frame_s - 1.0) < 0.1
    assert abs((on[-1] + 1) * frame_s - (1.0 + core.size / SR)) < 0.2
    speech_part = mask[int(1.0 / frame_s) : int((1.0 + core.size / SR) / frame_s)]
    assert speech_part.mean() > 0.8


def test_voice_activity_ignores_stationary_noise() -> None:
    mask = audio.voice_activity(_noise(4 * 16000, 0.03), 16000)
    assert mask.mean() < 0.05


def test_voice_activity_hangover_bridges_short_pauses_only() -> None:
    sr = 16000
    burst = _tone(300, 0.5, sr, amp=0.2)
    short_gap = np.zeros(int(0.16 * sr), np.float32)
    long_gap = np.zeros(int(0.8 * sr), np.float32)
    x = _pad(np.concatenate([burst, short_gap, burst, long_gap, burst]), sr, 0.5, 0.5)
    mask = audio.voice_activity(x, sr)
    t = lambda s: int(s / 0.02)  # noqa: E731
    assert mask[t(1.0) : t(1.16)].all(), "160 ms pause inside speech should stay speech"
    assert not mask[t(1.9) : t(2.4)].any(), "800 ms pause should be non-speech"


def test_trim_silence_removes_padding_but_keeps_speech(core: np.ndarray) -> None:
    x = _pad(core, SR, 1.5, 2.0)
    y = audio.trim_silence(x, SR, pad_ms=100.0)
    assert core.size <= y.size < core.size + int(0.5 * SR)
    # nearly all the energy is kept
    assert np.sum(np.square(y, dtype=np.float64)) > 0.999 * np.sum(np.square(x, dtype=np.float64))
    # the kept signal really is the speech, aligned within a frame
    start = int(np.argmax(np.correlate(y[: int(0.5 * SR)], core[:2000], mode="valid")))
    assert 0 < start <= int(0.13 * SR)


def test_trim_silence_without_speech_returns_input() -> None:
    x = _noise(16000, 1e-4)
    np.testing.assert_array_equal(audio.trim_silence(x, 16000), x)


# --- loudness --------------------------------------------------------------------------------------------


def test_loudness_normalize_hits_target_on_speech_frames() -> None:
    sr = 16000
    burst = _tone(300, 1.0, sr, amp=0.01)
    x = _pad(burst, sr, 1.0, 1.0, floor=1e-5)
    y = audio.loudness_normalize(x, sr, target_dbfs=-20.0)
    region = y[sr + sr // 10 : 2 * sr - sr // 10]
    assert abs(_rms_db(region) - (-20.0)) < 1.0
    # silence gets the same gain: it is not pumped up separately
    assert _rms_db(y[: sr // 2]) < -60


def test_loudness_normalize_on_real_speech(core: np.ndarray) -> None:
    x = _pad(core * 0.05, SR, 0.5, 0.5)
    y = audio.loudness_normalize(x, SR, target_dbfs=-23.0)
    assert abs(_speech_rms_db(y, audio.voice_activity(x, SR), 441) - (-23.0)) < 1.0
    assert np.abs(y).max() <= 0.95 + 1e-6


def test_loudness_normalize_respects_peak_limit(core: np.ndarray) -> None:
    y = audio.loudness_normalize(core * 0.1, SR, target_dbfs=-3.0, peak_limit=0.8)
    assert np.abs(y).max() == pytest.approx(0.8, abs=1e-4)
    assert y.dtype == np.float32
    silent = np.zeros(1000, np.float32)
    np.testing.assert_array_equal(audio.loudness_normalize(silent, SR), silent)


# --- PCM16 / WAV -----------------------------------------------------------------------------------------


def test_pcm16_round_trip_and_clipping() -> None:
    x = np.linspace(-1.0, 1.0, 1001, dtype=np.float32)
    data = audio.to_pcm16(x)
    assert isinstance(data, bytes) and len(data) == 2 * x.size
    y = audio.from_pcm16(data)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, x, atol=1.0 / 16384)
    ints = np.frombuffer(audio.to_pcm16(np.array([2.0, -3.0, 0.0, 0.5])), dtype="<i2")
    assert ints.tolist() == [32767, -32767, 0, 16384]
    assert audio.to_pcm16(np.array([1.0 / 32767]))[:2] == b"\x01\x00"  # little-endian
    with pytest.raises(AudioError):
        audio.from_pcm16(b"\x00\x01\x02")


def test_encode_and_write_wav(tmp_path: Path) -> None:
    x = _tone(440, 0.5, 16000, amp=0.5)
    data = audio.encode_wav(x, 16000)
    info = sf.info(io.BytesIO(data))
    assert (info.format, info.subtype, info.channels, info.samplerate) == ("WAV", "PCM_16", 1, 16000)
    y, sr = audio.decode(data)
    assert sr == 16000
    np.testing.assert_allclose(y, x, atol=1e-4)

    out = tmp_path / "voice.wav.tmp"  # callers write temp names and rename
    audio.write_wav(out, np.stack([x, x], axis=1), 16000)
    info = sf.info(out)
    assert (info.format, info.subtype, info.channels, info.frames) == ("WAV", "PCM_16", 1, x.size)


# --- QualityReport ---------------------------------------------------------------------------------------


def test_assess_good_speech_is_ok(speech: np.ndarray) -> None:
    report = audio.assess(_pad(speech, SR, 0.5, 0.5), SR)
    assert report.verdict == "ok", report.reasons
    assert report.accepted and report.reasons == ()
    assert report.speech_s > 6.0
    assert report.snr_db > 25.0
    assert report.clipping_ratio == 0.0
    d = report.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["reasons"] == [] and d["verdict"] == "ok" and d["sample_rate"] == SR


def test_assess_short_speech_rejected(core: np.ndarray) -> None:
    report = audio.assess(_pad(core[: int(1.5 * SR)], SR, 0.5, 0.5), SR)
    assert report.verdict == "reject" and not report.accepted
    assert report.speech_s < 3.0
    assert any("speech" in r and "3 s" in r for r in report.reasons), report.reasons


def test_assess_too_long_rejected() -> None:
    sr = 8000
    n = int(11 * 60 * sr)
    x = _noise(n, 0.003) + _tone(200, n / sr, sr, amp=0.01)
    report = audio.assess(x, sr)
    assert report.verdict == "reject"
    assert report.duration_s == pytest.approx(660.0)
    assert any("10 minutes" in r for r in report.reasons), report.reasons


def test_assess_mostly_silence_rejected(core: np.ndarray) -> None:
    x = np.zeros(40 * SR, np.float32)
    x[10 * SR : 10 * SR + int(3.5 * SR)] = core[: int(3.5 * SR)]
    report = audio.assess(x + _noise(x.size, 1e-4), SR)
    assert report.verdict == "reject"
    assert 2.5 < report.speech_s < 4.5
    assert any("silence" in r for r in report.reasons), report.reasons


def test_assess_heavily_clipped_rejected(speech: np.ndarray) -> None:
    report = audio.assess(np.clip(speech * 20.0, -1.0, 1.0), SR)
    assert report.verdict == "reject"
    assert report.clipping_ratio > 0.01
    assert any("clipped" in r for r in report.reasons), report.reasons


def test_assess_some_clipping_warns(speech: np.ndarray) -> None:
    x = speech / np.abs(speech).max() * 0.5
    for start in range(SR, SR + 60 * 1000, 1000):  # 60 flat tops of 8 samples: ~0.26 % of 9 s
        x[start : start + 8] = 1.0
    report = audio.assess(x, SR)
    assert 0.001 < report.clipping_ratio < 0.01
    assert report.verdict == "warn"
    assert any("clipping" in r.lower() for r in report.reasons), report.reasons


def test_assess_noisy_speech_warns(speech: np.ndarray, core: np.ndarray) -> None:
    power = np.mean(np.square(core, dtype=np.float64))
    noisy = speech + _noise(speech.size, float(np.sqrt(power / 10 ** (5 / 10))), seed=7)
    report = audio.assess(noisy, SR)
    assert report.verdict == "warn", report.reasons
    assert report.snr_db < 15.0
    assert any("nois" in r for r in report.reasons), report.reasons
    assert audio.assess(speech, SR).snr_db > 25.0


def test_assess_low_sample_rate_warns(speech: np.ndarray) -> None:
    report = audio.assess(audio.resample(speech, SR, 8000), 8000)
    assert report.verdict == "warn"
    assert any("sample rate" in r for r in report.reasons), report.reasons


def test_assess_empty_and_digital_silence_rejected() -> None:
    for x in (np.zeros(0, np.float32), np.zeros(16000 * 5, np.float32)):
        report = audio.assess(x, 16000)
        assert report.verdict == "reject" and report.reasons


def test_quality_report_accepted_property() -> None:
    kw = dict(duration_s=5.0, speech_s=4.0, snr_db=30.0, clipping_ratio=0.0, sample_rate=16000, reasons=())
    assert QualityReport(verdict="warn", **kw).accepted
    assert not QualityReport(verdict="reject", **kw).accepted


# --- clean_for_enrollment --------------------------------------------------------------------------------


def test_clean_for_enrollment_rejects_with_report(core: np.ndarray) -> None:
    data = audio.encode_wav(_pad(core[: int(1.5 * SR)], SR, 0.5, 0.5), SR)
    with pytest.raises(SampleRejected) as info:
        audio.clean_for_enrollment(data)
    report = info.value.report
    assert isinstance(report, QualityReport) and report.verdict == "reject"
    assert str(info.value) == "; ".join(report.reasons)
    assert isinstance(info.value, AudioError)


def test_clean_for_enrollment_trims_resamples_and_normalizes(tmp_path: Path, core: np.ndarray) -> None:
    path = tmp_path / "enroll.wav"
    sf.write(path, _pad(core * 0.1, SR, 1.5, 1.5), SR, subtype="PCM_16")
    y, sr, report = audio.clean_for_enrollment(path, target_sr=16000)
    assert sr == 16000 and y.dtype == np.float32
    assert report.accepted and report.sample_rate == SR
    expected = core.size / SR
    assert expected <= y.size / sr < expected + 0.5
    assert abs(_speech_rms_db(y, audio.voice_activity(y, sr), 320) - (-20.0)) < 1.0
    assert np.abs(y).max() <= 0.95 + 1e-6


def test_assess_reverberant_speech_warns(speech: np.ndarray) -> None:
    dry = audio.assess(speech, SR)
    assert dry.rt60_s is not None and dry.rt60_s < 0.3 and not any("echo" in r for r in dry.reasons)
    small = audio.assess(reverberate(speech, SR, 0.2), SR)
    assert small.rt60_s is not None and small.rt60_s < 0.35 and not any("echo" in r for r in small.reasons)
    hall = audio.assess(reverberate(speech, SR, 0.7), SR)
    assert hall.verdict == "warn" and hall.rt60_s is not None and hall.rt60_s >= audio.RT60_WARN_S
    assert any("echoey" in r for r in hall.reasons), hall.reasons
    assert hall.to_dict()["rt60_s"] == round(hall.rt60_s, 2)


def test_reverberation_estimate_rises_with_the_room(core: np.ndarray) -> None:
    from voiceclone_core import room

    x = np.concatenate([core] * 3)
    estimates = [room.reverberation_time(reverberate(x, SR, rt60), SR) for rt60 in (0.2, 0.4, 0.8)]
    assert all(e is not None for e in estimates) and estimates == sorted(estimates), estimates
    assert estimates[2] - estimates[0] > 0.2
    assert room.reverberation_time(core[: SR // 2], SR) is None  # half a second: too little to tell
