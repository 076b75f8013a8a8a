"""Cloning quality of the embedded engine: speaker similarity, intelligibility, distortion, pitch error.

For each stand-in target voice (festival kal, ked, slt; espeak-ng f3), the voice is enrolled from 20 sentences
(with transcript, and optionally without) and 10 held-out sentences are rendered by (a) the plain base voice,
(b) the cloned voice; (c) is the target's own speech. Reported per target and on average:

* SECS: cosine similarity of resemblyzer embeddings to the centroid of the target's held-out utterances,
  averaged over utterances; (c) uses the target's enrollment utterances (the ceiling).
* gap closed = (b - a) / (c - a).
* WER: pocketsphinx (bundled en-us model) word error rate against the script; base and clone also read 20
  extra sentences (about 330 words in all) so that the rate is not dominated by a few misrecognitions.
* MCD (dB, c1..c24, DTW-aligned to the target's reading) and log-F0 RMSE (semitones, aligned voiced frames).

Real-speaker mode (``--real DIR``, a folder made by ``../shared/data/get_real_speech.sh DIR``): each real speaker is
enrolled from up to 60 s of its recordings, with and without their transcript, as recorded and in three household
variants (a room of RT60 0.3 s and 0.6 s, pink noise with hum at 20 dB SNR); the clone speaks the English held-out
sentences; SECS is against the centroid of the speaker's own held-out recordings, the ceiling is the speaker's own
enrollment utterances against that centroid. MCD there only for speakers of the base voice's language (English):
base and clone read the texts of up to ``MCD_UTTERANCES`` of the speaker's held-out recordings, which are the
reference (the others have no reading of their own in English).
Word error there is paired (each base reading and its conversion); ``--readings N`` has the base voice read every
sentence N times (Piper samples its durations and noise, so one reading is one draw), and each row carries a 90 %
interval for the clone's word error minus the base's, by resampling the sentences (paired bootstrap).
``--only NAME,...`` and ``--transcript yes|no`` pick rows.

Run: ``python -m benchmarks.quality`` (add ``--no-transcript`` to also measure enrollment without a transcript).
Needs the ``quality`` extra (resemblyzer, pocketsphinx) and festival/espeak-ng (scripts/setup.sh installs them).
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks import corpus
from voiceclone_core import audio
from voiceclone_core.config import Settings
from voiceclone_core.engines import conversion as cv
from voiceclone_core.engines.base import EnrollmentSample, SynthesisOptions
from voiceclone_core.engines.classic import ClassicEngine
from voiceclone_core.engines.registry import create_engine

RESULTS = Path(__file__).parent / "results"


class Judge:
    """Speaker encoder and recogniser, loaded once."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder
        from resemblyzer import VoiceEncoder

        self.encoder = VoiceEncoder("cpu", verbose=False)
        self.decoder = Decoder(samprate=16000, logfn="/dev/null")

    def embed(self, x: np.ndarray, sr: int) -> np.ndarray:
        from resemblyzer import preprocess_wav

        return self.encoder.embed_utterance(preprocess_wav(x, source_sr=sr))

    def transcribe(self, x: np.ndarray, sr: int) -> str:
        pcm = audio.to_pcm16(audio.resample(x, sr, 16000))
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return hyp.hypstr if hyp else ""


def _words(s: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", s.lower()).split()


def word_errors(ref: str, hyp: str) -> tuple[int, int]:
    """Levenshtein distance over words, and the reference length."""
    r, h = _words(ref), _words(hyp)
    prev = list(range(len(h) + 1))
    for i, rw in enumerate(r, 1):
        cur = [i] + [0] * len(h)
        for j, hw in enumerate(h, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (rw != hw))
        prev = cur
    return prev[-1], len(r)


def dtw_path(a: np.ndarray, b: np.ndarray, band: float = 0.25) -> np.ndarray:
    """Align two feature sequences; returns (K, 2) index pairs from (0, 0) to (N-1, M-1).

    Slope-constrained steps (1,1), (1,2), (2,1) so each row depends only on earlier rows (vectorised per row);
    a Sakoe-Chiba band around the length-scaled diagonal keeps memory at O(N * band).
    """
    n, m = len(a), len(b)
    if n < 2 or m < 2 or max(n, m) > 2 * min(n, m) - 2:
        raise ValueError("sequences too different in length to align")
    width = int(band * max(n, m)) + abs(n - m) // 2 + 8
    centre = np.round(np.arange(n) * (m - 1) / max(n - 1, 1)).astype(int)
    lo = np.clip(centre - width, 0, m - 1)
    hi = np.clip(centre + width + 1, 1, m)
    w = int((hi - lo).max())
    inf = np.float32(np.inf)
    cost_d = np.full((n, w), inf, dtype=np.float32)
    back = np.zeros((n, w), dtype=np.int8)
    b_sq = np.sum(b * b, axis=1)

    def row_vals(r: int, cols: np.ndarray) -> np.ndarray:
        if r < 0:
            return np.full(len(cols), inf, dtype=np.float32)
        k = cols - lo[r]
        ok = (k >= 0) & (k < hi[r] - lo[r])
        out = np.full(len(cols), inf, dtype=np.float32)
        out[ok] = cost_d[r, k[ok]]
        return out

    for i in range(n):
        cols = np.arange(lo[i], hi[i])
        local = np.sqrt(np.maximum(np.sum(a[i] * a[i]) + b_sq[cols] - 2.0 * (b[cols] @ a[i]), 0.0))
        if i == 0:
            acc = np.where(cols == 0, local, inf).astype(np.float32)
            cost_d[0, : len(cols)] = acc
            continue
        cands = np.stack([row_vals(i - 1, cols - 1), row_vals(i - 1, cols - 2), row_vals(i - 2, cols - 1)])
        choice = np.argmin(cands, axis=0)
        best = cands[choice, np.arange(len(cols))]
        cost_d[i, : len(cols)] = best + local
        back[i, : len(cols)] = choice
    if not np.isfinite(row_vals(n - 1, np.array([m - 1]))[0]):
        raise ValueError("no alignment path within the band")
    path = []
    i, j = n - 1, m - 1
    steps = ((1, 1), (1, 2), (2, 1))
    while i > 0 or j > 0:
        path.append((i, j))
        di, dj = steps[back[i, j - lo[i]]]
        i, j = i - di, j - dj
        if i < 0 or j < 0:
            raise ValueError("alignment path left the grid")
    path.append((0, 0))
    return np.array(path[::-1])


def distortion(x: np.ndarray, y: np.ndarray, sr: int) -> tuple[float, float]:
    """MCD (dB) and log-F0 RMSE (semitones) between x and reference y after DTW on mel-cepstra."""
    codec = cv.codec_for(16000)
    x, y = audio.resample(x, sr, 16000), audio.resample(y, sr, 16000)
    fx, fy = cv.analyze(x, codec, False), cv.analyze(y, codec, False)
    mx, my = cv.speech_mask(x, codec, fx), cv.speech_mask(y, codec, fy)
    cx, cy = fx.mcep[mx, 1:], fy.mcep[my, 1:]
    path = dtw_path(cx, cy, band=0.4)
    diff = cx[path[:, 0]] - cy[path[:, 1]]
    mcd = float(np.mean(10.0 / np.log(10) * np.sqrt(2.0 * np.sum(diff**2, axis=1))))
    f0x, f0y = fx.f0[mx][path[:, 0]], fy.f0[my][path[:, 1]]
    both = (f0x > 0) & (f0y > 0)
    f0_err = float(np.sqrt(np.mean((12 * np.log2(f0x[both] / f0y[both])) ** 2))) if both.any() else float("nan")
    return mcd, f0_err


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings."""
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def evaluate(engine: ClassicEngine, judge: Judge, speaker: str, use_transcript: bool, cache: Path) -> dict:
    rec, sr, transcript = corpus.enrollment_recording(speaker, cache)
    clean, csr, _report = audio.clean_for_enrollment(audio.encode_wav(rec, sr), target_sr=engine.sample_rate)
    t0 = time.perf_counter()
    prompt = engine.prepare(EnrollmentSample(clean, csr, "en", transcript if use_transcript else None))
    enroll_s = time.perf_counter() - t0
    opts = SynthesisOptions(language="en")
    held = list(corpus.HELD_OUT)
    targets = [corpus.utterance(speaker, i, cache) for i in held]
    centroid = np.mean([judge.embed(x, s) for x, s in targets], axis=0)
    rows: dict[str, dict[str, list[float]]] = {
        k: {"secs": [], "err": [], "n": [], "mcd": [], "f0": []} for k in ("base", "clone", "target")
    }
    base = engine.bases["en"]
    for idx, (tx, tsr) in zip(held, targets, strict=True):
        ref_text = corpus.SENTENCES[idx]
        tx_e = audio.resample(tx, tsr, engine.sample_rate)
        outs = {
            "base": base.read(ref_text),
            "clone": np.concatenate(list(engine.synthesize(ref_text, prompt, opts))),
            "target": tx_e,
        }
        for k, y in outs.items():
            rows[k]["secs"].append(cosine(judge.embed(y, engine.sample_rate), centroid))
            e, n = word_errors(ref_text, judge.transcribe(y, engine.sample_rate))
            rows[k]["err"].append(e)
            rows[k]["n"].append(n)
            if k != "target":
                mcd, f0e = distortion(y, tx_e, engine.sample_rate)
                rows[k]["mcd"].append(mcd)
                rows[k]["f0"].append(f0e)
    for ref_text in corpus.WER_ONLY:  # more words for the word error rate of base and clone
        outs = {"base": base.read(ref_text), "clone": np.concatenate(list(engine.synthesize(ref_text, prompt, opts)))}
        for k, y in outs.items():
            e, n = word_errors(ref_text, judge.transcribe(y, engine.sample_rate))
            rows[k]["err"].append(e)
            rows[k]["n"].append(n)
    ceiling = float(
        np.mean([cosine(judge.embed(*corpus.utterance(speaker, i, cache)), centroid) for i in list(corpus.ENROLL)[:10]])
    )
    out = {
        "speaker": speaker,
        "mode": prompt.meta.get("reference"),
        "warp": prompt.meta.get("warp"),
        "enroll_s": enroll_s,
        "ceiling": ceiling,
    }
    for k, r in rows.items():
        out[k] = {
            "secs": float(np.mean(r["secs"])),
            "wer": sum(r["err"]) / max(sum(r["n"]), 1),
            "mcd": float(np.mean(r["mcd"])) if r["mcd"] else None,
            "f0_rmse_st": float(np.nanmean(r["f0"])) if r["f0"] else None,
        }
    a, b, c = out["base"]["secs"], out["clone"]["secs"], ceiling
    out["gap_closed"] = (b - a) / (c - a) if c > a else float("nan")
    return out


def word_error_interval(base: np.ndarray, clone: np.ndarray, words: np.ndarray, runs: int = 2000) -> tuple:
    """90 % interval of (clone - base) word error rate, resampling the sentences with their paired errors.

    ``base``, ``clone``: word errors per sentence; ``words``: reference words per sentence.
    """
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(words), size=(runs, len(words)))
    diffs = (clone[pick].sum(1) - base[pick].sum(1)) / np.maximum(words[pick].sum(1), 1)
    lo, hi = np.quantile(diffs, [0.05, 0.95])
    return float(lo), float(hi)


def evaluate_real(
    engine: ClassicEngine, judge: Judge, spk, use_transcript: bool, variant: str, readings: int = 1
) -> dict:
    """One real speaker (``benchmarks.real_speakers``), enrolled as recorded or in a household ``variant``.

    Base and clone are paired: each sentence is read ``readings`` times by the base voice (at the voice's pace) and
    the clone is each reading converted, so the difference in word error is the conversion's and not Piper's sampling.
    """
    from benchmarks import real_speakers

    x, sr = spk.enroll, spk.sample_rate
    if variant.startswith("room"):
        x = real_speakers.in_room(x, sr, float(variant[4:]))
    elif variant.startswith("noise"):
        x = real_speakers.with_noise(x, float(variant[5:]))
    clean, csr, report = audio.clean_for_enrollment(audio.encode_wav(x, sr), target_sr=engine.sample_rate)
    language = spk.language.split("-")[0]
    t0 = time.perf_counter()
    prompt = engine.prepare(EnrollmentSample(clean, csr, language, spk.transcript if use_transcript else None))
    enroll_s = time.perf_counter() - t0
    centroid = np.mean([judge.embed(h, sr) for h in spk.held_out], axis=0)
    cuts = [int(a) for a in np.linspace(0, len(spk.enroll), 6)]
    pieces = [spk.enroll[a:b] for a, b in itertools.pairwise(cuts)]
    ceiling = float(np.mean([cosine(judge.embed(p, sr), centroid) for p in pieces]))
    opts = SynthesisOptions(language="en")
    rows: dict[str, dict[str, list[float]]] = {k: {"secs": [], "err": [], "n": []} for k in ("base", "clone")}
    texts = [corpus.SENTENCES[i] for i in corpus.HELD_OUT]
    pace = engine.reading_pace(prompt)
    for i, ref_text in enumerate([*texts, *corpus.WER_ONLY]):
        for k in rows:
            rows[k]["err"].append(0)
            rows[k]["n"].append(0)
        for draw in range(readings):
            outs = dict(zip(("base", "clone"), read_and_convert(engine, prompt, ref_text, pace, opts), strict=True))
            for k, y in outs.items():
                if i < len(texts) and draw == 0:
                    rows[k]["secs"].append(cosine(judge.embed(y, engine.sample_rate), centroid))
                e, n = word_errors(ref_text, judge.transcribe(y, engine.sample_rate))
                rows[k]["err"][-1] += e
                rows[k]["n"][-1] += n
    out = {
        "speaker": spk.name,
        "variant": variant,
        "transcript": use_transcript,
        "mode": prompt.meta.get("reference"),
        "warp": prompt.meta.get("warp"),
        "enroll_s": enroll_s,
        "ceiling": ceiling,
        "rt60_s": report.rt60_s,
        "snr_db": report.snr_db,
        "warnings": list(report.reasons),
        "mcd": parallel_mcd(engine, spk, prompt, pace, opts) if language == "en" else None,
    }
    for k, r in rows.items():
        out[k] = {"secs": float(np.mean(r["secs"])), "wer": sum(r["err"]) / max(sum(r["n"]), 1)}
    a, b, c = out["base"]["secs"], out["clone"]["secs"], ceiling
    out["gap_closed"] = (b - a) / (c - a) if c > a else float("nan")
    out["readings"] = readings
    out["wer_diff_90"] = word_error_interval(
        *(np.array(x) for x in (rows["base"]["err"], rows["clone"]["err"], rows["base"]["n"]))
    )
    return out


MCD_UTTERANCES = 5


def read_and_convert(engine: ClassicEngine, prompt, words: str, pace: float, opts: SynthesisOptions) -> tuple:
    """The English base voice reading ``words`` at ``pace``, and the clone as that very reading converted (paired)."""
    reading = list(engine.bases["en"].speak(words, pace))
    return np.concatenate(reading), np.concatenate(list(engine.convert(reading, prompt, opts)))


def parallel_mcd(engine: ClassicEngine, spk, prompt, pace: float, opts: SynthesisOptions) -> dict[str, float]:
    """Mean MCD (dB) of the base voice's and the clone's readings of the speaker's held-out texts against the
    speaker's own recordings of them (DTW-aligned; ``distortion``)."""
    out: dict[str, list[float]] = {"base": [], "clone": []}
    for ref, words in list(zip(spk.held_out, spk.held_out_texts, strict=True))[:MCD_UTTERANCES]:
        for k, y in zip(("base", "clone"), read_and_convert(engine, prompt, words, pace, opts), strict=True):
            y16 = audio.resample(y, engine.sample_rate, spk.sample_rate)
            out[k].append(distortion(y16, ref, spk.sample_rate)[0])
    return {k: float(np.mean(v)) for k, v in out.items()}


def print_real_table(results: list[dict]) -> None:
    print(
        "| speaker | variant | transcript | mode | warp | enroll s | SECS base | clone | ceiling | gap closed | "
        "WER base | WER clone | clone − base, 90 % | MCD base → clone | RT60 est. s | SNR est. dB | warnings |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        rt = "-" if r["rt60_s"] is None else f"{r['rt60_s']:.2f}"
        warns = "; ".join(w.split(" (")[0] for w in r["warnings"]) or "-"
        lo, hi = r["wer_diff_90"]
        mcd = "-" if r["mcd"] is None else f"{r['mcd']['base']:.2f} → {r['mcd']['clone']:.2f}"
        print(
            f"| {r['speaker']} | {r['variant']} | {'yes' if r['transcript'] else 'no'} | {r['mode']} | "
            f"{r['warp'] or '-'} | {r['enroll_s']:.1f} | {r['base']['secs']:.3f} | {r['clone']['secs']:.3f} | "
            f"{r['ceiling']:.3f} | "
            f"{r['gap_closed']:.2f} | {r['base']['wer']:.2f} | {r['clone']['wer']:.2f} | "
            f"{r['clone']['wer'] - r['base']['wer']:+.3f} [{lo:+.3f}, {hi:+.3f}] | {mcd} | {rt} | "
            f"{r['snr_db']:.0f} | {warns} |"
        )


def print_table(results: list[dict]) -> None:
    hdr = (
        "| target | mode | enroll s | SECS base | SECS clone | SECS ceiling | gap closed | WER base | WER clone "
        "| WER target | MCD base | MCD clone | F0 err base st | F0 err clone st |"
    )
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    for r in results:
        print(
            f"| {r['speaker']} | {r['mode']} | {r['enroll_s']:.1f} | {r['base']['secs']:.3f} | "
            f"{r['clone']['secs']:.3f} | {r['ceiling']:.3f} | {r['gap_closed']:.0%} | {r['base']['wer']:.2f} | "
            f"{r['clone']['wer']:.2f} | {r['target']['wer']:.2f} | {r['base']['mcd']:.2f} | "
            f"{r['clone']['mcd']:.2f} | {r['base']['f0_rmse_st']:.2f} | {r['clone']['f0_rmse_st']:.2f} |"
        )
    for mode in sorted({r["mode"] for r in results}):
        sel = [r for r in results if r["mode"] == mode]
        mean = statistics.fmean
        gap = mean(r["gap_closed"] for r in sel)
        dwer = mean(r["clone"]["wer"] for r in sel) - mean(r["base"]["wer"] for r in sel)
        beats = all(r["clone"]["secs"] > r["base"]["secs"] for r in sel)
        print(
            f"\nmean over {len(sel)} targets ({mode}): SECS base {mean(r['base']['secs'] for r in sel):.3f} → "
            f"clone {mean(r['clone']['secs'] for r in sel):.3f} (ceiling {mean(r['ceiling'] for r in sel):.3f}); "
            f"gap closed {gap:.0%} (goal ≥ 50%); clone beats base on every target: {beats}; "
            f"WER clone − base {dwer:+.3f} (goal ≤ +0.10); enrollment {mean(r['enroll_s'] for r in sel):.1f} s"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speakers", default="kal,ked,slt,espeak_f")
    ap.add_argument("--no-transcript", action="store_true", help="also evaluate enrollment without transcript")
    ap.add_argument("--cache", type=Path, default=RESULTS / "corpus")
    ap.add_argument("--real", type=Path, help="real-speaker mode: a folder made by get_real_speech.sh")
    ap.add_argument("--variants", default="clean,room0.3,room0.6,noise20", help="real-speaker mode: conditions")
    ap.add_argument("--readings", type=int, default=1, help="real-speaker mode: base readings of each sentence")
    ap.add_argument("--only", help="real-speaker mode: these speakers (comma-separated names)")
    ap.add_argument("--transcript", choices=("yes", "no", "both"), default="both", help="real-speaker mode")
    args = ap.parse_args()
    engine = create_engine(Settings())
    assert isinstance(engine, ClassicEngine)
    judge = Judge()
    if args.real:
        from benchmarks import real_speakers

        real = []
        only = set(args.only.split(",")) if args.only else None
        transcripts = {"yes": (True,), "no": (False,), "both": (True, False)}[args.transcript]
        for spk in real_speakers.speakers(args.real):
            if only is not None and spk.name not in only:
                continue
            for variant in args.variants.split(","):
                for use_transcript in transcripts:
                    real.append(evaluate_real(engine, judge, spk, use_transcript, variant, args.readings))
                    print_real_table(real[-1:])
        print()
        print_real_table(real)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "quality_real.json").write_text(json.dumps(real, indent=2))
        return
    results = []
    for spk in args.speakers.split(","):
        results.append(evaluate(engine, judge, spk, True, args.cache))
        if args.no_transcript:
            results.append(evaluate(engine, judge, spk, False, args.cache))
    print_table(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quality.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
