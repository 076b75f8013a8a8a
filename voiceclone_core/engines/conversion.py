"""Voice conversion maths for the embedded engine: WORLD analysis, formant warp, frame selection, rendering.

The conversion works on WORLD parameters (F0 by RAPT, spectral envelope by CheapTrick, aperiodicity by D4C):

* F0: log-linear transform (mean and spread of voiced log-F0 matched to the target; see ``log_f0_stats``).
* Vocal tract: the base envelope is warped along frequency by the scaling that lines the target's formant profile
  (where its LPC resonances lie, :func:`formant_profile`) up with the base voice's, which moves formants with their
  fine detail intact.
* Spectral envelope: frame selection (:func:`convert_mcep`). Each base-voice mel-cepstral frame (c1..c24),
  normalised by the base voice's own statistics, is matched to the target's speech frames normalised by theirs; the
  average of the nearest few takes 35 % of the result, the base frame shifted by the two voices' mean difference
  the rest. Text-independent: the target's recording needs no transcript and may be in any language. (A linear
  map fitted on DTW-aligned parallel frames, used until engine version 3 when a transcript was known, closed less
  of the similarity gap and cost intelligibility: ``docs/benchmarks.md``.)
* Rendering is *differential*: the base voice's own fine-resolution envelope is kept and only the smooth
  converted-minus-source mel-cepstral difference is added, so consonant detail survives.

Spectrum <-> mel-cepstrum conversions are linear in the log domain and are done with precomputed matrices.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pysptk
import pyworld
import scipy.ndimage

from voiceclone_core import audio

MCEP_ORDER = 24
FRAME_HOP_S = 0.005
SPEECH_FRAME_S = 0.01  # voice-activity frames for speech_mask
F0_MIN, F0_MAX = 60.0, 500.0


@dataclass(frozen=True)
class SpectralCodec:
    """Precomputed log-power-spectrum <-> mel-cepstrum matrices for one sample rate."""

    sample_rate: int
    fft_size: int
    hop: int
    to_mcep: np.ndarray  # (bins, order+1)
    from_mcep: np.ndarray  # (order+1, bins)

    @property
    def frame_period_ms(self) -> float:
        return 1000.0 * self.hop / self.sample_rate


@lru_cache(maxsize=4)
def codec_for(sample_rate: int, order: int = MCEP_ORDER) -> SpectralCodec:
    """Build (once per rate) the linear maps equivalent to ``pysptk.sp2mc`` / ``pysptk.mc2sp``."""
    fft_size = pyworld.get_cheaptrick_fft_size(sample_rate)
    bins = fft_size // 2 + 1
    alpha = pysptk.util.mcepalpha(sample_rate)
    eye_b = np.eye(bins)
    to_mcep = np.stack([pysptk.sp2mc(np.exp(eye_b[i]), order, alpha) for i in range(bins)])
    eye_c = np.eye(order + 1)
    from_mcep = np.stack([np.log(pysptk.mc2sp(eye_c[k], alpha, fft_size)) for k in range(order + 1)])
    hop = max(1, round(sample_rate * FRAME_HOP_S))
    return SpectralCodec(sample_rate, fft_size, hop, to_mcep, from_mcep)


@dataclass
class Frames:
    """WORLD analysis of one waveform."""

    f0: np.ndarray  # (T,), 0 where unvoiced
    sp: np.ndarray  # (T, bins) power envelope
    ap: np.ndarray | None  # (T, bins) aperiodicity
    mcep: np.ndarray  # (T, order+1)


def log_envelope(sp: np.ndarray) -> np.ndarray:
    """Natural log of WORLD power envelopes, floored so that silent bins stay finite."""
    return np.log(np.maximum(sp, 1e-16))


# Frames (or LPC windows) processed at a time wherever a minute of them would need temporaries of tens of MB.
BLOCK = 2048
NOISE_KEEP = 0.2  # of each envelope bin's power that stays however much noise is taken out (-7 dB)


def envelope_mcep(
    sp: np.ndarray,
    codec: SpectralCodec,
    mask: np.ndarray | None = None,
    noise: np.ndarray | None = None,
    warp: float = 1.0,
) -> np.ndarray:
    """Mel-cepstra c0..cD of WORLD power envelopes ``sp`` (of the frames ``mask`` selects; all without one).

    ``noise``: a steady noise envelope subtracted in power first, keeping at least ``NOISE_KEEP`` of each bin;
    ``warp``: the formant warp (:func:`warp_log_spectrum`) applied to the log envelopes. Done ``BLOCK`` frames at
    a time, so that a minute of speech needs no temporaries of the envelopes' full size (tens of MB each).
    """
    index = np.arange(len(sp)) if mask is None else np.flatnonzero(mask)
    out = np.empty((len(index), codec.to_mcep.shape[1]))
    for i in range(0, len(index), BLOCK):
        block = sp[index[i : i + BLOCK]]
        if noise is not None:
            block = np.maximum(block - noise, NOISE_KEEP * block)
        out[i : i + BLOCK] = warp_log_spectrum(log_envelope(block), warp) @ codec.to_mcep
    return out


def analyze(x: np.ndarray, codec: SpectralCodec, with_aperiodicity: bool = True) -> Frames:
    """WORLD analysis with RAPT F0 (robust on low, creaky voices where DIO/Harvest double the pitch)."""
    x64 = np.ascontiguousarray(x, dtype=np.float64)
    sr, hop = codec.sample_rate, codec.hop
    f0 = pysptk.rapt((x64 * 32767.0).astype(np.float32), fs=sr, hopsize=hop, min=F0_MIN, max=F0_MAX, otype="f0")
    f0 = np.ascontiguousarray(f0, dtype=np.float64)
    t = np.arange(len(f0), dtype=np.float64) * hop / sr
    sp = pyworld.cheaptrick(x64, f0, t, sr, fft_size=codec.fft_size)
    ap = None
    if with_aperiodicity:  # aperiodicity varies slowly: estimate it every other frame (D4C dominates the cost)
        ap = pyworld.d4c(x64, np.ascontiguousarray(f0[::2]), np.ascontiguousarray(t[::2]), sr, fft_size=codec.fft_size)
        ap = np.repeat(ap, 2, axis=0)[: len(f0)]
    mcep = envelope_mcep(sp, codec)
    return Frames(f0, sp, ap, mcep)


def speech_mask(x: np.ndarray, codec: SpectralCodec, frames: Frames) -> np.ndarray:
    """The analysis frames of ``x`` that carry speech, for alignment and statistics.

    From the house's voice-activity detector (``audio.voice_activity``), unsmoothed so that pauses inside sentences
    stay out of the statistics, in 10 ms frames mapped onto the analysis hop.
    """
    n = len(frames.f0)
    step = max(1, round(codec.sample_rate * SPEECH_FRAME_S))
    vad = audio.voice_activity(x, codec.sample_rate, SPEECH_FRAME_S * 1000.0, smooth=False)
    if not len(vad):
        return np.zeros(n, dtype=bool)
    return vad[np.minimum(np.arange(n) * codec.hop // step, len(vad) - 1)]


@dataclass
class ConversionModel:
    """Everything needed to convert the base voice towards one target voice (saved as prompt arrays).

    ``f0_src``, ``src_mean``, ``src_std`` and ``warp`` describe the base voice it was fitted with (its *base side*);
    the rest describes the target alone, so the base side can be fitted again for any other base voice.
    """

    f0_src: np.ndarray  # [mean, spread] of voiced log-F0 (``log_f0_stats``)
    f0_tgt: np.ndarray
    src_mean: np.ndarray  # (D,) mean and standard deviation of the base voice's c1..cD (after the warp)
    src_std: np.ndarray
    tgt_mean: np.ndarray  # (D,) the same of the target's speech frames
    tgt_std: np.ndarray
    bank: np.ndarray  # (N, D) float32: the target's speech frames (c1..cD, 10 ms apart) to select from
    select: np.ndarray  # [k, share]: neighbours averaged, and their share of the converted envelope
    length_scale: np.ndarray  # [scale] for the base voice's speaking rate
    warp: np.ndarray  # [rho]: frequency-axis scaling of the base envelope (formants up when > 1)
    tgt_profile: np.ndarray  # the target's formant_profile, to fit the warp for another base voice

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ConversionModel:
        return cls(**{k: arrays[k] for k in cls.__dataclass_fields__})


@lru_cache(maxsize=64)
def _warp_table(bins: int, rho: float) -> tuple[np.ndarray, np.ndarray]:
    """For each output bin, the (fractional) input bin it reads: linear scaling by ``rho`` up to a knee at
    70 % of Nyquist (scaled by rho when rho < 1), then a straight line to Nyquist, so nothing is cut off."""
    f_out = np.arange(bins, dtype=np.float64)
    top = bins - 1.0
    knee = 0.7 * top * min(rho, 1.0)
    f_in = np.where(f_out <= knee, f_out / rho, knee / rho + (f_out - knee) * (top - knee / rho) / (top - knee))
    i0 = np.clip(np.floor(f_in).astype(int), 0, bins - 2)
    return i0, np.clip(f_in - i0, 0.0, 1.0)


def warp_log_spectrum(log_sp: np.ndarray, rho: float) -> np.ndarray:
    """Move spectral features along frequency (rho > 1: formants up), keeping the fine detail with them."""
    if abs(rho - 1.0) < 1e-6:
        return log_sp
    i0, w = _warp_table(log_sp.shape[-1], float(rho))
    return log_sp[..., i0] * (1.0 - w) + log_sp[..., i0 + 1] * w


def noise_frames(power: np.ndarray, speech: np.ndarray) -> np.ndarray | None:
    """The frames that hold only the recording's steady noise: its quietest fifth (by ``power``) outside
    ``speech``; None when there are fewer than 20 of them to average."""
    if not len(power):
        return None
    quiet = ~speech & (power <= np.percentile(power, 20))
    return quiet if quiet.sum() >= 20 else None


PROFILE_STEP = 0.005  # log-frequency step of a formant profile (0.5 %), also the step of the warp search
PROFILE_LOW_HZ, PROFILE_HIGH_HZ = 100.0, 6000.0
PROFILE_MATCH_HZ = (1000.0, 3300.0)  # the base voice's F2-F3 region, which the target's profile is matched against
_LPC_RATE, _LPC_ORDER = 12000, 14


def _log_steps(ratio: float) -> int:
    """``ratio`` as a whole number of profile steps."""
    return round(float(np.log(ratio)) / PROFILE_STEP)


_PROFILE_BINS = _log_steps(PROFILE_HIGH_HZ / PROFILE_LOW_HZ)


def _lpc_autocorrelations(x: np.ndarray, sample_rate: int, n_frames: int, every: int) -> tuple[np.ndarray, np.ndarray]:
    """Autocorrelations (lags 0..order) of pre-emphasised 30 ms windows at ``_LPC_RATE``, ``every`` 5 ms frames,
    with the index of the analysis frame each window is centred on."""
    y = audio.resample(np.asarray(x, np.float32), sample_rate, _LPC_RATE).astype(np.float64)
    y = np.append(y[:1], y[1:] - 0.63 * y[:-1])
    win, hop = int(0.03 * _LPC_RATE), int(FRAME_HOP_S * _LPC_RATE) * every
    if len(y) <= win:
        return np.zeros((0, _LPC_ORDER + 1)), np.zeros(0, int)
    starts = np.lib.stride_tricks.sliding_window_view(y, win)[::hop]
    lags = np.empty((len(starts), _LPC_ORDER + 1))
    for i in range(0, len(starts), BLOCK):
        windows = starts[i : i + BLOCK] * np.hamming(win)
        for k in range(_LPC_ORDER + 1):
            lags[i : i + BLOCK, k] = (windows[:, : win - k] * windows[:, k:]).sum(axis=1)
    centre = (np.arange(len(starts)) * hop + win / 2) / _LPC_RATE / FRAME_HOP_S
    return lags, np.minimum(centre.astype(int), n_frames - 1)


def lpc_resonances(lags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies and bandwidths (Hz at ``_LPC_RATE``) of the LPC poles of each row of autocorrelations
    (N, order + 1), by Levinson-Durbin and the eigenvalues of the companion matrices, all rows at once. Each row
    gives ``order // 2`` candidates; a pole that is not one of a conjugate pair inside the unit circle (and a row
    whose recursion breaks down) gets frequency 0 and infinite bandwidth."""
    n, p = len(lags), lags.shape[1] - 1
    a = np.zeros((n, p))
    err = lags[:, 0].copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(p):
            k = -(lags[:, i + 1] + (a[:, :i] * lags[:, i:0:-1]).sum(axis=1)) / err
            if i:
                a[:, :i] += k[:, None] * a[:, i - 1 :: -1]
            a[:, i] = k
            err = err * (1.0 - k * k)
    ok = np.isfinite(a).all(axis=1)
    companion = np.zeros((n, p, p))
    companion[:, 0, :] = -np.where(ok[:, None], a, 0.0)
    companion[:, np.arange(1, p), np.arange(p - 1)] = 1.0
    roots = np.linalg.eigvals(companion)
    pole = ok[:, None] & (roots.imag > 0) & (np.abs(roots) < 1.0)
    roots = np.where(pole, roots, 0.5j)  # a placeholder inside the circle, masked out below
    freq = np.where(pole, np.angle(roots) * _LPC_RATE / (2 * np.pi), 0.0)
    bandwidth = np.where(pole, -np.log(np.abs(roots)) * _LPC_RATE / np.pi, np.inf)
    return freq, bandwidth


def formant_profile(x: np.ndarray, sample_rate: int, f0: np.ndarray, mask: np.ndarray, every: int = 2) -> np.ndarray:
    """Where a voice's resonances lie: the distribution over log-frequency of the LPC resonances (200-5600 Hz,
    bandwidth under 400 Hz) of its voiced frames, smoothed and summing to 1.

    The recording's steady noise is taken out of each window's autocorrelation first (the mean autocorrelation of
    its quietest fifth of windows outside speech), so hiss does not add resonances of its own. A distribution does
    not care which resonance is F2 and which F3; a per-frame median of "the first three" does, and a room that
    widens one formant past the bandwidth limit shifts the others into its place (``docs/benchmarks.md``).
    """
    lags, frame = _lpc_autocorrelations(x, sample_rate, len(f0), every)
    quiet = noise_frames(lags[:, 0], mask[frame])
    if quiet is not None:
        lags = lags - lags[quiet].mean(axis=0)
    lags = lags[(f0[frame] > 0) & (lags[:, 0] > 1e-9)]
    found, frames = [], 0
    for i in range(0, len(lags), BLOCK):
        freq, bandwidth = lpc_resonances(lags[i : i + BLOCK])
        keep = (freq > 200) & (freq < 5600) & (bandwidth < 400)
        frames += int((keep.sum(axis=1) >= 3).sum())
        found.append(freq[keep])
    if frames < 20:
        raise ValueError("too little voiced speech to measure formants")
    steps = np.log(np.concatenate(found) / PROFILE_LOW_HZ) / PROFILE_STEP
    counts, _ = np.histogram(steps, _PROFILE_BINS, (0, _PROFILE_BINS))
    profile = scipy.ndimage.gaussian_filter1d(counts.astype(np.float64), 3.0)
    return (profile / profile.sum()).astype(np.float32)


# The warps applied. Beyond 1.25 the base voice's vowels move where they are no longer heard as the vowels it said
# (the clone's word error over the base voice's: the sonnet reader +0.15 at 1.3; espeak's Italian female +0.05 at
# 1.3 and +0.10 at 1.34; docs/benchmarks.md), so a shorter vocal tract (a child's) gets 1.25, with its own pitch.
WARP_RANGE = (0.85, 1.25)
_WARP_SEARCH = (0.7, 1.7)
PITCH_PRIOR = (1 / 3, 1.0)  # expected log-warp per log pitch ratio, and the weight of a squared log-warp away from it


def estimate_warp(src_profile: np.ndarray, tgt_profile: np.ndarray, pitch_ratio: float = 1.0) -> float:
    """Vocal-tract-length warp factor: the frequency scaling that best lines the target's formant profile up with
    the base voice's over the base voice's F2-F3 region (highest correlation), within ``WARP_RANGE``.

    Resonances repeat along frequency, so the correlation also peaks where one voice's F3 meets the other's F2
    (a scaling about 3/4 or 4/3 of the right one, and sometimes higher). A weak prior from the voices' pitch ratio
    (a voice with twice the pitch has about a 1.26 times shorter vocal tract: women against men, children against
    women) decides between such peaks; it moves the chosen peak itself by under 0.01.
    """
    lo, hi = (_log_steps(f / PROFILE_LOW_HZ) for f in PROFILE_MATCH_HZ)
    src = np.asarray(src_profile, np.float64)[lo:hi]
    tgt = np.asarray(tgt_profile, np.float64)
    if src.std() == 0:
        return 1.0
    expected = PITCH_PRIOR[0] * float(np.log(max(pitch_ratio, 1e-3)))
    best, best_score = 1.0, -np.inf
    for shift in range(_log_steps(_WARP_SEARCH[0]), _log_steps(_WARP_SEARCH[1]) + 1):
        window = tgt[lo + shift : hi + shift]
        if len(window) < len(src) or window.std() == 0:
            continue
        score = float(np.corrcoef(src, window)[0, 1]) - PITCH_PRIOR[1] * (shift * PROFILE_STEP - expected) ** 2
        if score > best_score:
            best, best_score = float(np.exp(shift * PROFILE_STEP)), score
    return float(np.clip(round(best, 3), WARP_RANGE[0], WARP_RANGE[-1]))


IQR_TO_SIGMA = 1.349  # a normal distribution's interquartile range in standard deviations


def log_f0_stats(f0: np.ndarray, robust: bool = False) -> np.ndarray:
    """Mean and spread of log-F0 over voiced frames.

    The spread is the standard deviation, or with ``robust`` the interquartile range over ``IQR_TO_SIGMA``: the
    same number for a normal distribution, but a recording's octave errors and shouted or reverberant tails do not
    widen it. Enrolled recordings are measured robustly (engine version 8): a spread widened by such tails swung the
    clone's pitch further than the voice does and cost words (docs/benchmarks.md); the base voice's clean
    synthetic speech keeps the standard deviation, which measured better on its side.
    """
    voiced = np.log(f0[f0 > 0])
    if len(voiced) < 20:
        raise ValueError("too little voiced speech to measure pitch")
    if robust:
        q1, q3 = np.percentile(voiced, [25, 75])
        spread = (q3 - q1) / IQR_TO_SIGMA
    else:
        spread = voiced.std()
    return np.array([voiced.mean(), max(float(spread), 1e-3)])


def convert_f0(f0: np.ndarray, model: ConversionModel, strength: float = 1.0) -> np.ndarray:
    """Log-linear F0 transform; unvoiced frames stay 0."""
    out = np.zeros_like(f0)
    v = f0 > 0
    (ms, ss), (mt, st) = model.f0_src, model.f0_tgt
    z = (np.log(f0[v]) - ms) / ss
    out[v] = np.exp((1 - strength) * np.log(f0[v]) + strength * (z * st + mt))
    return out


SELECT_K = 4  # target frames averaged per converted frame
# Their share of the converted envelope; the rest is the base frame moved by the mean difference. 0.5 until engine
# version 7: 0.35 keeps more of what the base voice said for 0.01 less similarity (docs/benchmarks.md).
SELECT_SHARE = 0.35
BANK_STEP = 2  # bank frames every 10 ms
BANK_MAX = 6000  # at most a minute of speech frames in the bank


def denoised_speech_mcep(frames: Frames, mask: np.ndarray, codec: SpectralCodec) -> np.ndarray:
    """c1..cD of the speech frames (``mask``) with the recording's steady noise taken out of their envelopes.

    The noise is the mean envelope of the quietest fifth of the frames, where they are outside speech; it is
    subtracted in power (keeping at least ``NOISE_KEEP`` of each bin), so hum and hiss do not become part of the
    voice's frames and statistics. Without 20 such frames the envelopes stay as they are.
    """
    quiet = noise_frames(frames.sp.sum(axis=1), mask)
    if quiet is None:
        return frames.mcep[mask, 1:]
    return envelope_mcep(frames.sp, codec, mask=mask, noise=frames.sp[quiet].mean(axis=0))[:, 1:]


def base_statistics(src: np.ndarray) -> dict[str, np.ndarray]:
    """Per-dimension mean and deviation of the base voice's speech frames (c1..cD, after the warp)."""
    if len(src) < 20:
        raise ValueError("too little speech to learn the voice")
    return {"src_mean": src.mean(axis=0), "src_std": src.std(axis=0) + 1e-8}


def fit_selection(src: np.ndarray, tgt: np.ndarray) -> dict[str, np.ndarray]:
    """Text-independent spectral conversion from the base voice's (``src``) and the target's (``tgt``) speech frames.

    Returns the model's spectral arrays: both voices' per-dimension means and deviations (the difference of the
    means is a fixed equaliser; each voice normalised by its own statistics is where frames are matched) and the
    bank of target frames that :func:`convert_mcep` selects from.
    """
    if len(tgt) < 20:
        raise ValueError("too little speech to learn the voice")
    bank = tgt[::BANK_STEP]
    if len(bank) > BANK_MAX:
        bank = bank[np.linspace(0, len(bank) - 1, BANK_MAX).astype(int)]
    return {
        **base_statistics(src),
        "tgt_mean": tgt.mean(axis=0),
        "tgt_std": tgt.std(axis=0) + 1e-8,
        "bank": bank.astype(np.float32),
        "select": np.array([SELECT_K, SELECT_SHARE]),
    }


def convert_mcep(c: np.ndarray, model: ConversionModel) -> np.ndarray:
    """Converted c1..cD for base-voice c1..cD: frame selection blended with the mean-shifted base frame.

    Each frame, normalised by the base voice's statistics, is matched to the bank normalised by the target's (so
    a frame is compared by where it sits in its own speaker's space, not by the speakers' differences); the average
    of its ``k`` nearest target frames takes ``share`` of the result. The rest is the base frame plus the
    difference of the two voices' means, which keeps what is said when no target frame matches it well.
    """
    k, share = int(model.select[0]), float(model.select[1])
    shifted = c + (model.tgt_mean - model.src_mean)
    if share <= 0 or len(model.bank) <= k or not len(c):
        return shifted
    query = ((c - model.src_mean) / model.src_std).astype(np.float32)
    bank = ((model.bank - model.tgt_mean) / model.tgt_std).astype(np.float32)
    dist = (bank * bank).sum(axis=1)[None, :] - 2.0 * (query @ bank.T)  # + |query|², the same along each row
    nearest = np.argpartition(dist, k, axis=1)[:, :k]
    return (1.0 - share) * shifted + share * model.bank[nearest].mean(axis=1)


def render(frames: Frames, model: ConversionModel, codec: SpectralCodec, strength: float = 1.0) -> np.ndarray:
    """Convert analysed base-voice frames and resynthesise with WORLD (differential envelope, converted F0)."""
    if frames.ap is None:
        raise ValueError("rendering needs aperiodicity")
    log_sp = log_envelope(frames.sp)
    rho = 1.0 + strength * (float(model.warp[0]) - 1.0)
    if rho != 1.0:
        log_sp = warp_log_spectrum(log_sp, rho)
        src = (log_sp @ codec.to_mcep)[:, 1:]
    else:
        src = frames.mcep[:, 1:]
    conv = convert_mcep(src, model)
    log_sp = log_sp + strength * (conv - src) @ codec.from_mcep[1:]
    f0 = convert_f0(frames.f0, model, strength)
    y = pyworld.synthesize(f0, np.exp(log_sp), frames.ap, codec.sample_rate, codec.frame_period_ms)
    return y.astype(np.float32)
