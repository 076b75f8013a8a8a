"""Speech as a room would record it, for tests and benchmarks of the quality report's reverberation estimate."""

from __future__ import annotations

import numpy as np


def reverberate(x: np.ndarray, sr: int, rt60: float, seed: int = 3) -> np.ndarray:
    """``x`` through the statistical room response: a direct path plus noise decaying by 60 dB in ``rt60`` seconds
    (equal energy in both: a talker a metre or two from the microphone). Same length as ``x``, float32."""
    t = np.arange(int(1.5 * rt60 * sr)) / sr
    tail = np.random.default_rng(seed).standard_normal(t.size) * np.exp(-6.9 * t / rt60)
    response = tail / np.sqrt(np.sum(tail**2))
    response[0] += 1.0
    return np.convolve(x, response)[: len(x)].astype(np.float32)
