"""The quality benchmark's paired word-error interval and its MCD against a real speaker's own readings."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import scipy.signal

from benchmarks.quality import parallel_mcd, word_error_interval
from benchmarks.real_speakers import RealSpeaker
from voiceclone_core import audio

from .conftest import espeak


def test_the_interval_is_exact_when_every_sentence_differs_alike() -> None:
    words = np.full(30, 10)
    base = np.arange(30) % 3  # base errors vary by sentence; pairing takes them out
    assert word_error_interval(base, base, words) == (0.0, 0.0)
    lo, hi = word_error_interval(base, base + 1, words)
    assert np.isclose(lo, 0.1) and np.isclose(hi, 0.1)


def test_the_interval_spans_the_difference_when_a_few_sentences_carry_it() -> None:
    words = np.full(30, 10)
    base = np.zeros(30, int)
    clone = base.copy()
    clone[:3] = 5  # 15 more errors in 300 words, all in three sentences
    lo, hi = word_error_interval(base, clone, words)
    assert lo < 0.05 < hi
    assert lo >= 0.0 and hi < 0.15


def test_parallel_mcd_is_near_zero_for_the_speakers_own_reading_and_grows_with_distortion(tmp_path: Path) -> None:
    words = "The washing machine is done, and the lights in the kitchen are off."
    x, sr = audio.decode(espeak(words, tmp_path / "ref.wav"))
    ref = audio.resample(x, sr, 16000)
    muffled = scipy.signal.sosfilt(scipy.signal.butter(6, 1200, fs=16000, output="sos"), ref).astype(np.float32)
    speaker = RealSpeaker("t", "en-US", "M", ref, words, [ref], [words])
    engine = SimpleNamespace(  # the base voice "reads" the reference itself; the "clone" is that reading muffled
        sample_rate=16000,
        bases={"en": SimpleNamespace(speak=lambda text, pace: iter([ref]) if text == words else iter([]))},
        convert=lambda reading, prompt, opts: iter([muffled]),
    )
    mcd = parallel_mcd(engine, speaker, None, 1.0, None)
    assert mcd["base"] < 0.5
    assert mcd["clone"] > 2.0
