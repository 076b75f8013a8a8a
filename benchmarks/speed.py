"""Speed of the embedded engine against plain Piper, measured side by side in one run.

* Time to first audio chunk and real-time factor (synthesis time / audio duration) for a 6-word and a 60-word
  text: plain Piper (``PiperVoice.synthesize``, the reference) vs our full path (``SpeechService.stream``:
  normalisation, chunking, queue, Piper, conversion), cache off. Median (min–max) over ``--runs`` runs after
  one warm-up.
* Enrollment time of a ~60 s sample with transcript (``SpeechService.enroll``: decode, quality check, clean-up,
  base-voice reading, analysis, fit, atomic save), median over ``--enroll-runs``.
* With ``--real FOLDER`` (a folder made by ``get_real_speech.sh`` or ``benchmarks.fillets_speech``; may be given
  twice): the same for each real speaker's 60 s (``benchmarks.real_speakers``), with and without its transcript.

Run: ``python -m benchmarks.speed`` (about two minutes on 2 cores; each real speaker adds about half a minute).
Goals: first audio ≤ 2× Piper's, real-time factor ≤ 0.3, enrollment of 60 s ≤ 20 s (festival, with transcript) and
≤ 10 s (real speakers, issue 16).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import corpus
from voiceclone_core import audio
from voiceclone_core.config import load_settings
from voiceclone_core.engines.classic import ClassicEngine
from voiceclone_core.engines.registry import create_engine
from voiceclone_core.service import SpeechRequest, SpeechService, build_service

TEXTS = {
    "6 words": "The washing machine is done now.",
    "60 words": (
        "Good evening. The washing machine finished twenty minutes ago, so the laundry is ready to hang up. "
        "The back door is still unlocked and the garden lights are on. Tomorrow will be cold and windy with rain "
        "in the afternoon, so take an umbrella. Your parcel arrived and is waiting on the porch next to the door."
    ),
}


def _fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def measure_piper(engine: ClassicEngine, words: str) -> tuple[float, float]:
    base = engine.bases["en"]
    t0 = time.perf_counter()
    first = None
    n = 0
    for piece in base.speak(words):
        first = first if first is not None else time.perf_counter() - t0
        n += len(piece)
    total = time.perf_counter() - t0
    return float(first), total / (n / base.sample_rate)


async def measure_ours(service: SpeechService, words: str, voice: str) -> tuple[float, float]:
    t0 = time.perf_counter()
    first = None
    n = 0
    async for piece in service.stream(SpeechRequest(words, voice=voice)):
        first = first if first is not None else time.perf_counter() - t0
        n += len(piece)
    total = time.perf_counter() - t0
    return float(first), total / (n / service.sample_rate)


def time_enrollment(service: SpeechService, wav: bytes, runs: int, **kwargs: str | None) -> list[float]:
    """Seconds for each of ``runs`` enrollments of ``wav`` through the service (re-enrolling one voice)."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        service.enroll("Bench", wav, consent="benchmark recording", **kwargs)
        times.append(time.perf_counter() - t0)
    return times


def real_enrollment_rows(service: SpeechService, folders: list[Path], runs: int) -> list[str]:
    """A table row per real speaker: enrollment seconds with and without its transcript."""
    from benchmarks import real_speakers

    rows = []
    for folder in folders:
        for spk in real_speakers.speakers(folder):
            wav = audio.encode_wav(spk.enroll, spk.sample_rate)
            language = spk.language.split("-")[0]
            with_text = time_enrollment(service, wav, runs, transcript=spk.transcript, language=language)
            without = time_enrollment(service, wav, runs, transcript=None, language=language)
            seconds = len(spk.enroll) / spk.sample_rate
            rows.append(f"| {spk.name} | {seconds:.0f} | {_fmt(with_text)} | {_fmt(without)} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--enroll-runs", type=int, default=3)
    ap.add_argument("--speaker", default="slt")
    ap.add_argument("--real", type=Path, action="append", default=[], help="also time real speakers' enrollment")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(overrides={"data_dir": tmp, "cache.enabled": "false", "speech.workers": "1"})
        engine = create_engine(settings)
        assert isinstance(engine, ClassicEngine)
        service = build_service(settings, engine=engine)
        cache = Path(__file__).parent / "results" / "corpus"
        rec, sr, transcript = corpus.enrollment_recording(args.speaker, cache, count=16)
        wav = audio.encode_wav(rec, sr)
        try:
            enroll_times = time_enrollment(service, wav, args.enroll_runs, transcript=transcript)
            rows = []
            for label, words in TEXTS.items():
                measure_piper(engine, words)  # warm-up
                asyncio.run(measure_ours(service, words, "bench"))
                piper = [measure_piper(engine, words) for _ in range(args.runs)]
                ours = [asyncio.run(measure_ours(service, words, "bench")) for _ in range(args.runs)]
                rows.append((label, piper, ours))
            real_rows = real_enrollment_rows(service, args.real, args.enroll_runs)  # re-enrolls "Bench": last
        finally:
            service.close()

    print(
        f"enrollment of {len(rec) / sr:.0f} s recording (with transcript), median of {args.enroll_runs}: "
        f"{_fmt(enroll_times)} s (goal ≤ 20 s)\n"
    )
    if real_rows:
        n = args.enroll_runs
        print(f"| real speaker | recording s | enrollment s, transcript, median of {n} (goal ≤ 10) | without |")
        print("|---|---|---|---|")
        print("\n".join(real_rows) + "\n")
    print("| text | Piper first audio s | ours first audio s | ratio (goal ≤ 2) | Piper RTF | ours RTF (goal ≤ 0.3) |")
    print("|---|---|---|---|---|---|")
    for label, piper, ours in rows:
        pf, pr = [p[0] for p in piper], [p[1] for p in piper]
        of, orr = [o[0] for o in ours], [o[1] for o in ours]
        ratio = statistics.median(of) / statistics.median(pf)
        print(f"| {label} | {_fmt(pf)} | {_fmt(of)} | {ratio:.2f} | {_fmt(pr)} | {_fmt(orr)} |")
    print(f"\nmedian of {args.runs} runs after a warm-up; (min–max). numpy {np.__version__}")


if __name__ == "__main__":
    main()
