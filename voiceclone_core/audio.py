"""Audio decoding, clean-up and enrollment quality checks.

Everything here works on float32 mono arrays in [-1, 1] plus an integer sample rate.  The central piece is
:func:`assess`, which turns a raw recording (a family member reading a passage into a phone or browser
microphone) into a :class:`QualityReport` whose verdict decides whether the recording can be enrolled.

Level conventions: dBFS values are RMS relative to a digital amplitude of 1.0 (so a full-scale sine is about
-3 dBFS).  Frames are non-overlapping; frame ``i`` covers samples ``[i * n, (i + 1) * n)`` with
``n = round(sr * frame_ms / 1000)`` and the last frame may be shorter.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile as sf
import soxr
from scipy import signal

from voiceclone_core import room

__all__ = [
    "MAX_DECODE_SAMPLE_RATE",
    "MAX_SAMPLE_SECONDS",
    "MIN_SPEECH_SECONDS",
    "AudioError",
    "QualityReport",
    "SampleRejected",
    "assess",
    "clean_for_enrollment",
    "decode",
    "encode_wav",
    "frame_energy_db",
    "from_pcm16",
    "loudness_normalize",
    "resample",
    "to_mono",
    "to_pcm16",
    "trim_silence",
    "voice_activity",
    "write_wav",
]

MAX_SAMPLE_SECONDS = 600.0
MIN_SPEECH_SECONDS = 3.0

# --- assessment thresholds -------------------------------------------------------------------------------
MIN_SPEECH_FRACTION = 0.20  # reject when speech is < 20 % of the recording ...
SPEECH_FRACTION_MIN_DURATION = 5.0  # ... and the recording is longer than this (seconds)
CLIP_REJECT_RATIO = 0.01  # > 1 % of samples in clipped runs -> reject
CLIP_WARN_RATIO = 0.001  # > 0.1 % -> warn
SNR_WARN_DB = 25.0  # estimated SNR below this -> warn "noisy" (household noise at 20 dB reads 22-24 dB and costs
# the clone intelligibility: benchmarks.quality --real, French speaker without transcript, word error 0.26 -> 0.43)
RT60_WARN_S = 0.4  # estimated reverberation time at or above this -> warn "echoey" (room.py: true RT60 ~0.45 s)
SNR_CAP_DB = 60.0  # digitally clean input reports this
MIN_GOOD_SAMPLE_RATE = 16000  # below -> warn
QUIET_SPEECH_DBFS = -40.0  # active speech level below this -> warn "very quiet"
DIGITAL_SILENCE_PEAK = 2.0 / 32768.0  # peak at or below ~1 LSB of 16-bit audio counts as digital silence

# --- VAD tuning ------------------------------------------------------------------------------------------
_VAD_BAND_HZ = (100.0, 4000.0)
_VAD_FLOOR_PERCENTILE = 5.0  # adaptive noise floor
_VAD_REF_PERCENTILE = 95.0  # loud-speech reference
_VAD_MIN_MARGIN_DB = 6.0  # threshold at least this far above the floor ...
_VAD_MARGIN_FRACTION = 0.2  # ... or this fraction of the floor-to-reference range, whichever is larger
_VAD_MAX_RANGE_DB = 50.0  # never require more than ref - 50 dB
_VAD_ABS_FLOOR_DBFS = -70.0  # band energy below this is never speech
_VAD_FILL_GAP_MS = 200.0  # pauses up to this long inside speech stay speech
_VAD_MIN_RUN_MS = 40.0  # isolated bursts shorter than this are dropped (clicks)
_VAD_HANGOVER_MS = 60.0  # speech is extended by this much after each run

_CLIP_FULL_SCALE = 0.985  # |x| at or above this counts as "at full scale"
_EPS_POWER = 1e-12  # -120 dB


class AudioError(ValueError):
    """Input audio cannot be used (unreadable, empty, unsupported)."""


class SampleRejected(AudioError):
    """Enrollment sample fails quality checks; ``.report`` holds the QualityReport."""

    def __init__(self, report: QualityReport):
        super().__init__("; ".join(report.reasons) or "Recording rejected.")
        self.report = report


@dataclass(frozen=True)
class QualityReport:
    """Outcome of :func:`assess` for one recording."""

    duration_s: float
    speech_s: float
    snr_db: float
    clipping_ratio: float
    sample_rate: int
    verdict: str  # "ok" | "warn" | "reject"
    reasons: tuple[str, ...]
    rt60_s: float | None = None  # estimated reverberation time of the room (None: could not tell)

    @property
    def accepted(self) -> bool:
        """True unless the verdict is ``"reject"``."""
        return self.verdict != "reject"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready representation (rounded floats, reasons as a list)."""
        return {
            "duration_s": round(float(self.duration_s), 2),
            "speech_s": round(float(self.speech_s), 2),
            "snr_db": round(float(self.snr_db), 1),
            "clipping_ratio": round(float(self.clipping_ratio), 5),
            "sample_rate": int(self.sample_rate),
            "rt60_s": None if self.rt60_s is None else round(float(self.rt60_s), 2),
            "verdict": self.verdict,
            "accepted": self.accepted,
            "reasons": list(self.reasons),
        }


# --- decoding / conversion -------------------------------------------------------------------------------


def to_mono(x: np.ndarray) -> np.ndarray:
    """Average channels to a 1-D float32 array.

    2-D input is taken as ``(frames, channels)`` (soundfile's layout) unless the first axis is clearly the
    channel axis (at most 8 rows and more columns than rows).
    """
    a = np.asarray(x)
    if a.ndim == 0:
        raise AudioError("Audio must be an array of samples, not a scalar.")
    if a.ndim == 1:
        return a.astype(np.float32, copy=False)
    if a.ndim != 2:
        raise AudioError(f"Audio must be 1-D or 2-D (frames, channels); got shape {a.shape}.")
    axis = 0 if (a.shape[0] <= 8 and a.shape[1] > a.shape[0]) else 1
    if a.shape[axis] == 0:
        return np.zeros(a.shape[1 - axis], dtype=np.float32)
    return a.astype(np.float32, copy=False).mean(axis=axis, dtype=np.float64).astype(np.float32)


def decode(source: bytes | str | os.PathLike, max_seconds: float | None = MAX_SAMPLE_SECONDS) -> tuple[np.ndarray, int]:
    """Decode WAV/FLAC/OGG (Vorbis/Opus)/MP3 from bytes or a path via soundfile.

    Returns float32 mono audio (channels averaged) clipped to [-1, 1] and the sample rate.  Raises
    :class:`AudioError` with a clear message when the input is missing, empty or unreadable.

    Decoding is bounded: a recording longer than ``max_seconds`` (``None``: no limit) raises
    :class:`SampleRejected` (a "reject" report saying it is too long) without being decoded in full.  A few hundred
    kilobytes of compressed silence can claim hours of audio, so the length in the header is checked first, and
    the audio is then read block by block, down-mixed as it comes, and given up one block past the limit (for
    files whose header says nothing about their length, or says too little).  Memory stays proportional to
    ``max_seconds``, never to what the file claims.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if not data:
            raise AudioError("The audio data is empty (0 bytes).")
        handle: Any = io.BytesIO(data)
        label = "audio data"
    elif isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise AudioError(f"Audio file not found: {path}")
        if os.path.getsize(path) == 0:
            raise AudioError(f"The audio file is empty (0 bytes): {path}")
        handle = path
        label = f"audio file {path}"
    else:
        raise AudioError(f"Unsupported audio source type: {type(source).__name__}")

    try:
        with sf.SoundFile(handle) as f:
            mono, sr = _read_bounded(f, label, max_seconds)
    except AudioError:
        raise
    except (sf.SoundFileError, RuntimeError, OSError, ValueError, TypeError, EOFError) as exc:
        raise AudioError(
            f"Could not decode the {label}: unsupported or corrupt format "
            f"(WAV, FLAC, OGG/Opus or MP3 expected). Details: {exc}"
        ) from exc
    if mono.size == 0:
        raise AudioError(f"The {label} contains no audio samples.")
    return mono, sr


MAX_DECODE_SAMPLE_RATE = 192_000  # above this a 10-minute recording alone would need gigabytes
_UNKNOWN_LENGTH = 1 << 62  # libsndfile reports SF_COUNT_MAX (2**63 - 1) frames when a file does not say
_BLOCK_SAMPLES = 1 << 18  # samples (all channels together) decoded per block: 1 MB of float32


def _too_long(sr: int, max_seconds: float, seconds: float, known: bool) -> SampleRejected:
    """The rejection of a recording over the length limit: ``seconds`` long (``known``) or at least that long."""
    limit = f"{max_seconds / 60:g} minutes" if max_seconds >= 60 else f"{max_seconds:g} seconds"
    length = f" ({seconds / 60:.1f} minutes)" if known else ""
    reason = f"The recording is longer than {limit}{length}; the maximum is {limit}."
    return SampleRejected(QualityReport(seconds, 0.0, 0.0, 0.0, sr, "reject", (reason,)))


def _read_block(f: sf.SoundFile, block: np.ndarray, raw: bool) -> int:
    """Decode up to ``len(block)`` frames into ``block`` (C-contiguous float32, frames x channels); how many came.

    ``raw`` calls libsndfile itself: soundfile seeks to where it believes it is after every read, and that seek fails
    at the very end of a file that does not say its length (a FLAC written by a streaming encoder), so the last block
    of such a file could not be read through it.
    """
    if raw:
        ffi, lib = sf._ffi, sf._snd  # soundfile's own binding of libsndfile
        return int(lib.sf_readf_float(f._file, ffi.cast("float *", ffi.from_buffer(block)), block.shape[0]))
    return f.read(block.shape[0], dtype="float32", always_2d=True, out=block).shape[0]


def _read_bounded(f: sf.SoundFile, label: str, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """Mono float32 audio of an open file, block by block, refusing it past ``max_seconds`` (see :func:`decode`)."""
    sr, channels = int(f.samplerate), int(f.channels)
    if sr <= 0:
        raise AudioError(f"The {label} has an invalid sample rate ({sr}).")
    if sr > MAX_DECODE_SAMPLE_RATE:
        raise AudioError(
            f"The {label} has a sample rate of {sr} Hz; at most {MAX_DECODE_SAMPLE_RATE // 1000} kHz is supported."
        )
    if channels <= 0:
        raise AudioError(f"The {label} has an invalid channel count ({channels}).")
    limit = None if max_seconds is None else math.floor(max_seconds * sr)
    claimed = int(f.frames)
    if limit is not None and limit < claimed < _UNKNOWN_LENGTH:  # the header says it is too long: not decoded
        raise _too_long(sr, float(max_seconds), claimed / sr, known=True)
    block = np.empty((max(1, _BLOCK_SAMPLES // channels), channels), dtype=np.float32)
    raw = claimed >= _UNKNOWN_LENGTH and hasattr(sf, "_snd") and hasattr(sf, "_ffi")
    parts: list[np.ndarray] = []
    total = 0
    while True:
        n = _read_block(f, block, raw)
        if n <= 0:
            break
        got = block[:n]
        mono = got[:, 0].copy() if channels == 1 else got.mean(axis=1, dtype=np.float64).astype(np.float32)
        np.nan_to_num(mono, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
        np.clip(mono, -1.0, 1.0, out=mono)
        parts.append(mono)
        total += mono.size
        if limit is not None and total > limit:  # the header said less, or nothing: stop one block past the limit
            raise _too_long(sr, float(max_seconds), total / sr, known=False)
    if len(parts) == 1:
        return parts[0], sr
    return (np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)), sr


def resample(x: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Resample with soxr ('VHQ') to float32; returns the input (as float32) when the rates are equal."""
    if int(sr_from) <= 0 or int(sr_to) <= 0:
        raise AudioError(f"Sample rates must be positive (got {sr_from} -> {sr_to}).")
    a = np.asarray(x, dtype=np.float32)
    if int(sr_from) == int(sr_to) or a.shape[0] == 0:
        if a.shape[0] == 0 and int(sr_from) != int(sr_to):
            return np.zeros((0, *a.shape[1:]), dtype=np.float32)
        return a
    out = soxr.resample(np.ascontiguousarray(a), int(sr_from), int(sr_to), quality="VHQ")
    return np.asarray(out, dtype=np.float32)


def to_pcm16(x: np.ndarray) -> bytes:
    """Clip to [-1, 1] and convert to little-endian signed 16-bit PCM bytes (scale 32767)."""
    a = np.clip(np.nan_to_num(np.asarray(x, dtype=np.float32)), -1.0, 1.0)
    return np.rint(a * 32767.0).astype("<i2").tobytes()


def from_pcm16(data: bytes) -> np.ndarray:
    """Little-endian signed 16-bit PCM bytes to float32 in [-1, 1) (scale 1/32768, like soundfile)."""
    if len(data) % 2:
        raise AudioError(f"PCM16 data must have an even number of bytes (got {len(data)}).")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / np.float32(32768.0)


def _pcm16_array(x: np.ndarray) -> np.ndarray:
    return np.frombuffer(to_pcm16(to_mono(x)), dtype="<i2")


def encode_wav(x: np.ndarray, sr: int, info: dict[str, str] | None = None) -> bytes:
    """Encode as a PCM16 mono WAV file in memory; ``info`` (e.g. ``comment``, ``software``) goes in ``LIST/INFO``."""
    buf = io.BytesIO()
    write_wav(buf, x, sr, info)
    return buf.getvalue()


def write_wav(
    target: str | os.PathLike | io.BytesIO, x: np.ndarray, sr: int, info: dict[str, str] | None = None
) -> None:
    """Write a PCM16 mono WAV file (format forced to WAV whatever the extension; no atomic rename); ``info`` as in
    :func:`encode_wav`."""
    handle = target if isinstance(target, io.BytesIO) else os.fspath(target)
    with sf.SoundFile(handle, "w", int(sr), 1, "PCM_16", format="WAV") as f:
        for key, value in (info or {}).items():
            setattr(f, key, value)
        f.write(_pcm16_array(x))


# --- analysis --------------------------------------------------------------------------------------------


def _frame_len(sr: int, frame_ms: float) -> int:
    if sr <= 0 or frame_ms <= 0:
        raise AudioError(f"Invalid sample rate / frame length ({sr} Hz, {frame_ms} ms).")
    return max(1, round(sr * frame_ms / 1000.0))


def _frame_power(x: np.ndarray, n: int) -> np.ndarray:
    """Mean square per non-overlapping frame of ``n`` samples (last frame may be partial)."""
    a = np.asarray(x, dtype=np.float32)
    length = a.shape[0]
    if length == 0:
        return np.zeros(0, dtype=np.float64)
    n_frames = -(-length // n)
    padded = np.zeros(n_frames * n, dtype=np.float32)
    padded[:length] = a
    sums = np.square(padded).reshape(n_frames, n).sum(axis=1, dtype=np.float64)
    counts = np.full(n_frames, float(n))
    counts[-1] = length - (n_frames - 1) * n
    return sums / counts


def _to_db(power: np.ndarray | float) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(power, _EPS_POWER))


def frame_energy_db(x: np.ndarray, sr: int, frame_ms: float = 20.0) -> np.ndarray:
    """Per-frame RMS in dBFS (floored at -120 dB)."""
    return _to_db(_frame_power(to_mono(x), _frame_len(sr, frame_ms)))


def _bandpass(x: np.ndarray, sr: int) -> np.ndarray:
    lo, hi = _VAD_BAND_HZ
    hi = min(hi, 0.45 * sr)
    if hi <= lo * 1.5:
        return x
    sos = signal.butter(4, [lo, hi], btype="bandpass", fs=sr, output="sos")
    return signal.sosfilt(sos, x).astype(np.float32)


def _highpass(x: np.ndarray, sr: int, cutoff: float = 80.0) -> np.ndarray:
    if sr <= 4 * cutoff:
        return x - np.float32(x.mean()) if x.size else x
    sos = signal.butter(2, cutoff, btype="highpass", fs=sr, output="sos")
    return signal.sosfilt(sos, x).astype(np.float32)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and (exclusive) end indices of the True runs in a 1-D boolean array."""
    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def _smooth(mask: np.ndarray, fill: int, min_run: int, hangover: int) -> np.ndarray:
    starts, ends = _runs(mask)
    if starts.size == 0:
        return mask
    keep_gap = (starts[1:] - ends[:-1]) > fill
    starts = np.concatenate((starts[:1], starts[1:][keep_gap]))
    ends = np.concatenate((ends[:-1][keep_gap], ends[-1:]))
    long_enough = (ends - starts) >= min_run
    starts, ends = starts[long_enough], np.minimum(ends[long_enough] + hangover, mask.size)
    acc = np.zeros(mask.size + 1, dtype=np.int32)
    np.add.at(acc, starts, 1)
    np.add.at(acc, ends, -1)
    return np.cumsum(acc[:-1]) > 0


def voice_activity(x: np.ndarray, sr: int, frame_ms: float = 20.0, smooth: bool = True) -> np.ndarray:
    """Boolean per frame: speech or not (the house's one voice-activity detector).

    Energy-based on the 100-4000 Hz band.  The threshold adapts to the recording: it sits above the noise
    floor (5th percentile of frame energies) by max(6 dB, 20 % of the floor-to-loud-speech range), but never
    more than 50 dB below loud speech (95th percentile) and never below -70 dBFS.  With ``smooth``, pauses up to
    200 ms inside speech are filled, bursts under 40 ms dropped and each speech run extended by a 60 ms hangover
    (whole utterances, for trimming and levels); without, only frames that carry speech themselves (statistics).
    """
    a = to_mono(x)
    n = _frame_len(sr, frame_ms)
    if a.size == 0:
        return np.zeros(0, dtype=bool)
    db = _to_db(_frame_power(_bandpass(a, sr), n))
    floor = float(np.percentile(db, _VAD_FLOOR_PERCENTILE))
    ref = float(np.percentile(db, _VAD_REF_PERCENTILE))
    margin = max(_VAD_MIN_MARGIN_DB, _VAD_MARGIN_FRACTION * (ref - floor))
    threshold = max(floor + margin, ref - _VAD_MAX_RANGE_DB, _VAD_ABS_FLOOR_DBFS)
    raw = db > threshold
    if not smooth:
        return raw
    to_frames = 1.0 / frame_ms
    return _smooth(
        raw,
        fill=int(_VAD_FILL_GAP_MS * to_frames),
        min_run=max(1, math.ceil(_VAD_MIN_RUN_MS * to_frames)),
        hangover=round(_VAD_HANGOVER_MS * to_frames),
    )


def trim_silence(x: np.ndarray, sr: int, pad_ms: float = 100.0) -> np.ndarray:
    """Remove leading/trailing non-speech, keeping ``pad_ms`` of context on each side.

    Returns the input unchanged when no speech is detected at all.
    """
    a = to_mono(x)
    mask = voice_activity(a, sr)
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return a
    n = _frame_len(sr, 20.0)
    pad = round(sr * pad_ms / 1000.0)
    start = max(0, int(idx[0]) * n - pad)
    end = min(a.size, (int(idx[-1]) + 1) * n + pad)
    return a[start:end]


def _speech_power(a: np.ndarray, mask: np.ndarray, n: int) -> float:
    """Mean square over the speech frames (whole signal if there are none)."""
    power = _frame_power(a, n)
    if mask.any():
        weights = np.full(power.size, float(n))
        weights[-1] = a.size - (power.size - 1) * n
        return float(np.sum(power[mask] * weights[mask]) / np.sum(weights[mask]))
    return float(np.mean(np.square(a, dtype=np.float64))) if a.size else 0.0


def loudness_normalize(x: np.ndarray, sr: int, target_dbfs: float = -20.0, peak_limit: float = 0.95) -> np.ndarray:
    """Scale so the RMS of the *speech* frames is ``target_dbfs``; the peak never exceeds ``peak_limit``.

    Falls back to the RMS of the whole signal when no speech is detected; silence is returned unchanged.
    """
    a = to_mono(x)
    if a.size == 0:
        return a.copy()
    peak = float(np.max(np.abs(a)))
    if peak == 0.0:
        return a.copy()
    power = _speech_power(a, voice_activity(a, sr), _frame_len(sr, 20.0))
    if power <= 0.0:
        return a.copy()
    gain = 10.0 ** ((target_dbfs - 10.0 * math.log10(power)) / 20.0)
    gain = min(gain, peak_limit / peak)
    return (a * np.float32(gain)).astype(np.float32)


def _clipping_ratio(a: np.ndarray) -> float:
    """Fraction of samples that sit in clipped runs.

    Counts runs of >= 2 consecutive samples at/near full scale (|x| >= 0.985), plus -- for recordings whose
    peak is below full scale but above -20 dBFS -- flat-topped runs of >= 3 samples within 0.1 % of the peak
    (clipping that happened before a later gain stage).
    """
    if a.size == 0:
        return 0.0
    mag = np.abs(a)
    peak = float(mag.max())
    if peak >= _CLIP_FULL_SCALE:
        level, min_run = _CLIP_FULL_SCALE, 2
    elif peak >= 0.1:
        level, min_run = peak * 0.999, 3
    else:
        return 0.0
    starts, ends = _runs(mag >= level)
    lengths = ends - starts
    return int(lengths[lengths >= min_run].sum()) / a.size


def assess(x: np.ndarray, sr: int) -> QualityReport:
    """Judge a decoded (raw, not normalised) recording.

    Reject: empty or digital silence; longer than 10 minutes; under 3 s of speech; mostly silence (speech
    < 20 % of a recording longer than 5 s); badly clipped (> 1 % of samples in clipped runs).  Warn: estimated
    SNR < 25 dB; estimated reverberation time >= 0.4 s (``room.py``); some clipping (> 0.1 %); sample rate
    < 16 kHz; active speech level < -40 dBFS.  The SNR is
    the mean power of the speech frames (minus the noise) over the median power of the non-speech frames
    (or the 10th percentile of all frames when there are too few), after an 80 Hz high-pass, capped at 60 dB.
    """
    a = np.ascontiguousarray(to_mono(x), dtype=np.float32)
    sr = int(sr)
    if sr <= 0:
        raise AudioError(f"Invalid sample rate: {sr}")
    duration = a.size / sr
    rejects: list[str] = []
    warns: list[str] = []

    def report(speech_s: float, snr: float, clip: float, rt60: float | None = None) -> QualityReport:
        verdict = "reject" if rejects else ("warn" if warns else "ok")
        return QualityReport(
            duration_s=float(duration),
            speech_s=float(speech_s),
            snr_db=float(snr),
            clipping_ratio=float(clip),
            sample_rate=sr,
            verdict=verdict,
            reasons=tuple(rejects + warns),
            rt60_s=rt60,
        )

    if a.size == 0:
        rejects.append("The recording is empty.")
        return report(0.0, 0.0, 0.0)
    if float(np.max(np.abs(a))) <= DIGITAL_SILENCE_PEAK:
        rejects.append("The recording contains only silence; check that the microphone is working.")
        return report(0.0, 0.0, 0.0)

    if duration > MAX_SAMPLE_SECONDS:
        rejects.append(
            f"The recording is {duration / 60:.1f} minutes long; the maximum is {MAX_SAMPLE_SECONDS / 60:.0f} minutes."
        )

    n = _frame_len(sr, 20.0)
    mask = voice_activity(a, sr)
    speech_s = min(duration, float(mask.sum()) * n / sr)

    if speech_s < MIN_SPEECH_SECONDS:
        rejects.append(f"Only {speech_s:.1f} s of speech; at least {MIN_SPEECH_SECONDS:.0f} s is needed.")
    elif duration > SPEECH_FRACTION_MIN_DURATION and speech_s < MIN_SPEECH_FRACTION * duration:
        rejects.append(
            f"The recording is mostly silence: only {speech_s:.1f} s of speech in {duration:.1f} s "
            f"({100 * speech_s / duration:.0f} %); please read continuously."
        )

    clip = _clipping_ratio(a)
    if clip > CLIP_REJECT_RATIO:
        rejects.append(
            f"The recording is badly clipped ({100 * clip:.1f} % of samples distorted at full scale); "
            "lower the microphone gain or move further away."
        )
    elif clip > CLIP_WARN_RATIO:
        warns.append(f"Some clipping detected ({100 * clip:.2f} % of samples at full scale).")

    hp = _highpass(a, sr)
    power = _frame_power(hp, n)
    if mask.any():
        speech_power = _speech_power(hp, mask, n)
        nonspeech = power[~mask]
        if nonspeech.size >= max(5, round(0.25 * sr / n)):
            noise = float(np.median(nonspeech))
        else:
            noise = float(np.percentile(power, 10))
        noise = max(noise, _EPS_POWER)
        snr = 10.0 * math.log10(max(speech_power - noise, _EPS_POWER) / noise)
        snr = float(min(max(snr, -10.0), SNR_CAP_DB))
        level_db = 10.0 * math.log10(max(speech_power, _EPS_POWER))
    else:
        snr, level_db = 0.0, float(_to_db(float(np.mean(power))))

    if mask.any() and snr < SNR_WARN_DB:
        warns.append(
            f"The recording is noisy (estimated signal-to-noise ratio {snr:.0f} dB); "
            "a quieter room will give a better voice."
        )
    rt60 = room.reverberation_time(a, sr) if mask.any() else None
    if rt60 is not None and rt60 >= RT60_WARN_S:
        warns.append(
            f"The room sounds echoey (estimated reverberation time {rt60:.1f} s); the voice will carry the echo. "
            "Record in a smaller room with soft furnishings, close to the microphone."
        )
    if sr < MIN_GOOD_SAMPLE_RATE:
        warns.append(f"Low sample rate ({sr} Hz); 16 kHz or higher is recommended.")
    if mask.any() and level_db < QUIET_SPEECH_DBFS:
        warns.append(f"The recording is very quiet (speech level {level_db:.0f} dBFS); move closer to the microphone.")
    return report(speech_s, snr, clip, rt60)


def clean_for_enrollment(
    source: bytes | str | os.PathLike, target_sr: int | None = None
) -> tuple[np.ndarray, int, QualityReport]:
    """Decode, assess (raising :class:`SampleRejected` when rejected), remove DC, trim silence, resample to
    ``target_sr`` if given and loudness-normalise.  Returns ``(audio, sr, report)``."""
    audio, sr = decode(source)
    report = assess(audio, sr)
    if not report.accepted:
        raise SampleRejected(report)
    audio = audio - np.float32(audio.mean())
    audio = trim_silence(audio, sr)
    if target_sr is not None and int(target_sr) != sr:
        audio = resample(audio, sr, int(target_sr))
        sr = int(target_sr)
    return loudness_normalize(audio, sr), sr, report
