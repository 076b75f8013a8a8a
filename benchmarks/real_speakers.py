"""Real human speakers for the quality benchmark: recordings from ``../shared/data/get_real_speech.sh`` (shipped in
Debian and PyPI packages), split into an enrollment part with its transcript and held-out utterances.

The English, Spanish, Italian and Russian Asterisk prompt recordings are reserved for independent evaluation and
are never read here (the script does not fetch them; :func:`speakers` refuses them if they appear).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voiceclone_core import audio

RESERVED = ("ast_en", "ast_es", "ast_it", "ast_ru")


@dataclass
class RealSpeaker:
    """One speaker: enrollment audio (16 kHz) with transcript, and held-out utterances with theirs."""

    name: str
    language: str
    sex: str
    enroll: np.ndarray
    transcript: str
    held_out: list[np.ndarray]
    held_out_texts: list[str]
    sample_rate: int = 16000


def sentences(folder: Path) -> dict[str, list[dict[str, str]]]:
    """The sentence rows of ``folder/metadata.tsv``, per speaker in file order; stops at a reserved speaker."""
    rows: dict[str, list[dict[str, str]]] = {}
    with (folder / "metadata.tsv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["speaker"].startswith(RESERVED):
                raise SystemExit(f"{row['speaker']} is reserved for independent evaluation: remove it from {folder}")
            if row["kind"] == "sentence":
                rows.setdefault(row["speaker"], []).append(row)
    return rows


def speakers(folder: Path, enroll_seconds: float = 60.0, min_held_out: int = 3) -> list[RealSpeaker]:
    """Every speaker in ``folder/metadata.tsv`` with at least 10 s of sentences: up to ``enroll_seconds`` of them
    (at most 80 % of the speaker's speech) to enroll, the rest (at least ``min_held_out``) held out."""
    rows = sentences(folder)
    out = []
    for name, utts in sorted(rows.items()):
        total = sum(float(u["seconds"]) for u in utts)
        if total < 10.0 or len(utts) < min_held_out + 2:
            continue
        budget = min(enroll_seconds, 0.8 * total)
        enroll, texts, held, held_texts, used = [], [], [], [], 0.0
        for u in utts:
            x, sr = audio.decode(folder / u["wav"])
            x = audio.resample(x, sr, 16000)
            if used + float(u["seconds"]) <= budget and len(utts) - len(texts) > min_held_out:
                enroll += [x, np.zeros(4000, np.float32)]
                texts.append(u["text"].strip())
                used += float(u["seconds"])
            else:
                held.append(x)
                held_texts.append(u["text"].strip())
        lang, sex = utts[0]["lang"], utts[0]["sex"]
        out.append(RealSpeaker(name, lang, sex, np.concatenate(enroll), " ".join(texts), held[:20], held_texts[:20]))
    return out


def in_room(x: np.ndarray, sr: int, rt60: float, seed: int = 11) -> np.ndarray:
    """``x`` as recorded in a room of reverberation time ``rt60`` (pyroomacoustics shoebox when installed, else a
    statistical response: direct path plus exponentially decaying noise)."""
    try:
        import pyroomacoustics as pra

        absorption, order = pra.inverse_sabine(rt60, [4.5, 3.8, 2.6])
        room = pra.ShoeBox([4.5, 3.8, 2.6], fs=sr, materials=pra.Material(absorption), max_order=order)
        room.add_source([1.2, 1.5, 1.5], signal=x)
        room.add_microphone([2.8, 2.0, 1.2])
        room.simulate()
        y = room.mic_array.signals[0][: len(x)]
    except ImportError:
        from tests.rooms import reverberate

        y = reverberate(x, sr, rt60, seed)
    return (y / (np.max(np.abs(y)) + 1e-9) * 0.7).astype(np.float32)


def with_noise(x: np.ndarray, snr_db: float, seed: int = 12) -> np.ndarray:
    """``x`` with household-like noise (pink, with a 100 Hz hum) at ``snr_db`` against the speech's mean power."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(len(x))
    spectrum = np.fft.rfft(white)
    spectrum /= np.sqrt(np.maximum(np.arange(spectrum.size), 1))
    pink = np.fft.irfft(spectrum, n=len(x))
    hum = 0.3 * np.sin(2 * np.pi * 100 * np.arange(len(x)) / 16000)
    noise = pink / np.std(pink) + hum
    active = x[np.abs(x) > 0.02 * np.max(np.abs(x))]
    power = float(np.mean(active**2))
    noise *= np.sqrt(power / 10 ** (snr_db / 10) / np.mean(noise**2))
    return (x + noise).astype(np.float32)
