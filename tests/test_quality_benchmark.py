"""The quality benchmark's paired word-error interval (``benchmarks.quality.word_error_interval``)."""

import numpy as np

from benchmarks.quality import word_error_interval


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
