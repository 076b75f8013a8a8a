"""Qwen3-TTS through our speech service: one stream, and 4 / 8 concurrent streams on one model instance.

The model has the released 0.6B-Base architecture and sizes with random weights (``--size full``, built once into
benchmarks/results/qwen3-full/ by tests/tiny_models.py), or the tests' tiny one (``--size tiny``). Random weights
never stop on purpose, so every text chunk is forced to exactly ``--frames`` codec frames (80 ms each). The voice
is enrolled from 5 s of espeak-ng speech without a transcript (x-vector mode) or with one (``--icl``).

Each configuration runs in a fresh process (so peak memory is its own), median of ``--runs`` after one warm-up:

* **batched** (the engine as shipped): ``qwen3.max_streams`` = the largest concurrency; every forward step serves all
  active requests.
* **queued** (the reference, same run, same model): ``qwen3.max_streams`` = 1, so requests wait for each other —
  what one model instance without batched decoding does.

Reported: time to first audio and real-time factor (wall / audio) for a 25-word text alone; with N requests at once,
first-audio p50 / p95 (from the common start) and the slowest stream's real-time factor (< 1: every stream faster
than real time); peak memory (GPU: allocated by torch; CPU: resident). Goals on an H100 (issue 7): first audio alone
≤ 0.12 s; 8 streams all faster than real time with first-audio p95 ≤ 0.4 s.

Run: ``python -m benchmarks.gpu`` (CUDA) or ``python -m benchmarks.gpu --device cpu --frames 12 --runs 3
--streams 4`` (the CPU, to see batching's effect where there is no GPU; far slower than real time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import children

RESULTS = Path(__file__).resolve().parent / "results"
TEXT = (
    "Good evening. The front door is locked, the living room lights are off, and the thermostat is set to "
    "twenty one degrees for the night."
)
TRANSCRIPT = "The quick brown fox jumps over the lazy dog. We leave for the station at half past seven."


def model_root(size: str) -> Path:
    """The models dir holding a random checkpoint of ``size`` (built on first use)."""
    root = RESULTS / f"qwen3-{size}"
    folder = root / "qwen3-tts-0.6b"
    if not (folder / "speech_tokenizer" / "model.safetensors").is_file():
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.tiny_models import build_qwen3
        from voiceclone_core.engines.torchaudio_compat import ensure_torchaudio

        ensure_torchaudio()

        build_qwen3(folder, full=size == "full")
    return root


def reference_wav(root: Path) -> Path:
    """About 5 s of speech (espeak-ng) to enroll from."""
    path = root / "reference.wav"
    if not path.is_file():
        subprocess.run(["espeak-ng", "-v", "en-us+f3", "-s", "160", "-w", str(path), TRANSCRIPT], check=True)
    return path


def child(args: argparse.Namespace) -> dict:
    import torch

    from voiceclone_core.config import load_settings
    from voiceclone_core.engines.registry import create_engine
    from voiceclone_core.service import SpeechRequest, build_service

    root = model_root(args.size)
    cuda = args.device.startswith("cuda")
    settings = load_settings(
        None,
        overrides={
            "data_dir": tempfile.mkdtemp(prefix="qwen3-bench-"),
            "models_dir": str(root),
            "engine.name": "qwen3",
            "engine.device": args.device,
            "cache.enabled": "false",
            "speech.queue_size": "64",
            "qwen3.max_streams": str(args.slots),
            "qwen3.min_frames": str(args.frames),
            "qwen3.max_frames": str(args.frames),
        },
    )
    t0 = time.perf_counter()
    engine = create_engine(settings)
    load_s = time.perf_counter() - t0
    service = build_service(settings, engine=engine)
    service.enroll(
        "Bench",
        reference_wav(root),
        consent="benchmark (synthetic espeak voice)",
        voice_id="bench",
        transcript=TRANSCRIPT if args.icl else None,
    )

    async def one(start: float) -> tuple[float, float, float]:
        first, samples = None, 0
        async for piece in service.stream(SpeechRequest(TEXT, voice="bench")):
            first = first if first is not None else time.perf_counter() - start
            samples += len(piece)
        audio_s = samples / service.sample_rate
        return float(first), (time.perf_counter() - start) / audio_s, audio_s

    async def together(n: int) -> list[tuple[float, float, float]]:
        start = time.perf_counter()
        return await asyncio.gather(*(one(start) for _ in range(n)))

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    result: dict = {"load_s": load_s, "backend": engine.backend}
    for n in args.streams:
        firsts, slowest, audio = [], [], 0.0
        for run in range(args.runs + 1):
            rows = asyncio.run(together(n))
            if run:  # the first is a warm-up
                firsts += [r[0] for r in rows]
                slowest.append(max(r[1] for r in rows))
                audio = rows[0][2]
        result[str(n)] = {
            "first_p50": statistics.median(firsts),
            "first_p95": _p95(firsts),
            "slowest_rtf": statistics.median(slowest),
            "audio_s": audio,
        }
    service.close()
    if cuda:
        result["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        result["peak_mib"] = children.peak_rss_mib()
    return result


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def run_child(slots: int, args: argparse.Namespace) -> dict:
    flags = ["--slots", str(slots), "--device", args.device, "--size", args.size, "--frames", str(args.frames)]
    flags += ["--runs", str(args.runs), "--streams", *map(str, args.streams)] + (["--icl"] if args.icl else [])
    return children.run_child("benchmarks.gpu", *flags)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", choices=("full", "tiny"), default="full")
    parser.add_argument("--frames", type=int, default=100, help="codec frames per text chunk (80 ms each)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--icl", action="store_true", help="enroll with a transcript (in-context cloning)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--slots", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    reference_wav(model_root(args.size))  # build both once, outside the timed processes
    runs = {"batched": run_child(max(args.streams), args), "queued": run_child(1, args)}
    device = args.device
    if device.startswith("cuda"):
        import torch

        device = torch.cuda.get_device_name()
    print(
        f"Qwen3-TTS 0.6B-Base architecture ({args.size}, random weights), {device}, {args.frames} frames per "
        f"chunk, {'ICL' if args.icl else 'x-vector'} voice, median of {args.runs} after a warm-up, "
        f"{time.strftime('%Y-%m-%d')}"
    )
    print(f"batched backend: {runs['batched']['backend']}; load {runs['batched']['load_s']:.1f} s")
    print()
    print("| streams | mode | first audio p50 | first audio p95 | slowest stream RTF | audio per stream |")
    print("|---|---|---|---|---|---|")
    for n in args.streams:
        for mode, res in runs.items():
            r = res[str(n)]
            print(
                f"| {n} | {mode} | {r['first_p50']:.3f} s | {r['first_p95']:.3f} s | {r['slowest_rtf']:.2f} | "
                f"{r['audio_s']:.1f} s |"
            )
    for n in args.streams[1:]:
        b, q = runs["batched"][str(n)], runs["queued"][str(n)]
        print(
            f"\n{n} streams, queued / batched: first-audio p95 {q['first_p95'] / b['first_p95']:.1f}x, "
            f"slowest stream {q['slowest_rtf'] / b['slowest_rtf']:.1f}x"
        )
    unit = "GPU allocated" if args.device.startswith("cuda") else "resident"
    print(
        f"\npeak memory ({unit}): batched {runs['batched']['peak_mib']:.0f} MiB, "
        f"queued {runs['queued']['peak_mib']:.0f} MiB"
    )


if __name__ == "__main__":
    main()
