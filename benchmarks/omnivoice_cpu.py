"""OmniVoice on this CPU: wyoming-piper 2.5.2's omnivoice backend (the reference) against our omnivoice engine.

Both run the same weights — the released architecture and sizes with random values (tests/tiny_models.py,
``full=True``: 28-layer Qwen3 of width 1024, Higgs audio v2 tokenizer), no download — through the same block-wise
int4 ONNX graph (exported once by our ``voiceclone models export`` code), with the same number of decoding steps,
the same reference recording and transcript and the same texts. Random weights make noise, but the work per
utterance is set by the text and reference lengths (OmniVoice estimates the duration from them), not the weights.

* "theirs": ``wyoming_piper.omnivoice.OmniVoiceModel.synthesize_wav`` (the whole text in one ``generate``; its
  reference tokens cached after the warm-up), pointed at the local checkpoint.
* "ours": ``SpeechService.stream`` with the omnivoice engine (the first sentence alone, the rest packed).

Each side runs in a fresh process (peak memory is its own): load time, time to first audio and real-time factor
(wall / audio seconds) for a one-sentence and a three-sentence announcement, median (min–max) of ``--runs`` runs
after a warm-up, and peak resident memory. ``--steps-sweep`` adds our real-time factor at other step counts.

Run: ``python -m benchmarks.omnivoice_cpu`` (the model is built and exported once into
benchmarks/results/omnivoice-full/: several minutes and ~8 GB of memory). Goals (issue 15): first audio for the
three-sentence text ≤ 0.5× theirs, real-time factor ≤ 1.0× theirs, peak memory ≤ 1.1× theirs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import children

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = children.ROOT
TEXTS = {
    "one sentence": "The washing machine has finished.",
    "three sentences": (
        "The washing machine has finished. Please take the laundry out before it starts to smell. "
        "The dryer is free now as well."
    ),
}
REFERENCE_TEXT = "The quick brown fox jumps over the lazy dog. We leave for the station at half past seven."


def models_dir() -> Path:
    """Folder holding ``omnivoice/`` (full-size random) and ``omnivoice-onnx-int4/`` (built on first use)."""
    folder = RESULTS / "omnivoice-full"
    checkpoint = folder / "omnivoice"
    if not (checkpoint / "audio_tokenizer" / "model.safetensors").is_file():
        sys.path.insert(0, str(ROOT))
        from tests.tiny_models import build_omnivoice
        from voiceclone_core.engines.torchaudio_compat import ensure_torchaudio

        ensure_torchaudio()
        build_omnivoice(checkpoint, full=True)
    if not (folder / "omnivoice-onnx-int4" / "lm.onnx").is_file():
        from voiceclone_core.engines import omnivoice_onnx

        omnivoice_onnx.export(checkpoint, folder / "omnivoice-onnx-int4", bits=4)
    return folder


def reference_wav(folder: Path) -> Path:
    """About 5 s of speech (espeak-ng) with a known transcript: the voice both sides clone from."""
    path = folder / "reference.wav"
    if not path.is_file():
        subprocess.run(["espeak-ng", "-v", "en-us+f3", "-s", "170", "-w", str(path), REFERENCE_TEXT], check=True)
    return path


def child_theirs(args: argparse.Namespace) -> dict:
    import wave

    from voiceclone_core.engines.torchaudio_compat import ensure_torchaudio

    ensure_torchaudio()  # the same stand-in for both sides: the package imports torchaudio
    import wyoming_piper.omnivoice as theirs

    folder = models_dir()
    theirs.PIPELINE_REPO = str(folder / "omnivoice")  # their loader takes a hub id or a folder
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model = theirs.OmniVoiceModel(str(folder / "omnivoice-onnx-int4" / "lm.onnx"), num_step=args.steps)
    load = time.perf_counter() - t0
    ref = Path(tempfile.mkdtemp(prefix="ov-theirs-")) / "ref.wav"
    ref.write_bytes(reference_wav(folder).read_bytes())
    results = {}
    for label, text in TEXTS.items():
        firsts, rtfs = [], []
        for i in range(args.runs + 1):
            out = Path(tempfile.mkdtemp(prefix="ov-out-")) / "out.wav"
            t0 = time.perf_counter()
            with wave.open(str(out), "wb") as writer:
                model.synthesize_wav(text, writer, ref_audio=str(ref), ref_text=REFERENCE_TEXT, language="en")
            total = time.perf_counter() - t0  # nothing plays before the whole text is made
            with wave.open(str(out), "rb") as reader:
                seconds = reader.getnframes() / reader.getframerate()
            if i:
                firsts.append(total)
                rtfs.append(total / seconds)
        results[label] = {"first_s": firsts, "rtf": rtfs}
    return {"load_s": load, "texts": results, "peak_mb": children.peak_rss_mib()}


def child_ours(args: argparse.Namespace) -> dict:
    from voiceclone_core.config import load_settings
    from voiceclone_core.engines.registry import create_engine
    from voiceclone_core.service import SpeechRequest, build_service

    folder = models_dir()
    data = Path(tempfile.mkdtemp(prefix="ov-ours-"))
    settings = load_settings(
        None,
        overrides={
            "data_dir": str(data),
            "models_dir": str(folder),
            "engine.name": "omnivoice",
            "omnivoice.steps": str(args.steps),
            "omnivoice.threads": str(args.threads),
            "cache.enabled": "false",
        },
    )
    t0 = time.perf_counter()
    engine = create_engine(settings)
    load = time.perf_counter() - t0
    service = build_service(settings, engine=engine)
    service.enroll(
        "Bench", reference_wav(folder), consent="benchmark (synthetic espeak voice)", voice_id="bench",
        transcript=REFERENCE_TEXT,
    )  # fmt: skip

    async def one(text: str) -> tuple[float, float]:
        t0 = time.perf_counter()
        first, n = None, 0
        async for piece in service.stream(SpeechRequest(text, voice="bench", language="en")):
            first = first if first is not None else time.perf_counter() - t0
            n += len(piece)
        return float(first), (time.perf_counter() - t0) / (n / service.sample_rate)

    results = {}
    for label, text in TEXTS.items():
        firsts, rtfs = [], []
        for i in range(args.runs + 1):
            first, rtf = asyncio.run(one(text))
            if i:
                firsts.append(first)
                rtfs.append(rtf)
        results[label] = {"first_s": firsts, "rtf": rtfs}
    service.close()
    return {"load_s": load, "texts": results, "peak_mb": children.peak_rss_mib()}


def run_child(kind: str, args: argparse.Namespace, steps: int, runs: int) -> dict:
    flags = [kind, "--steps", str(steps), "--runs", str(runs), "--threads", str(args.threads)]
    return children.run_child("benchmarks.omnivoice_cpu", *flags)


def _fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=16, help="decoding steps, the same for both sides")
    parser.add_argument("--threads", type=int, default=0, help="0: the libraries' defaults (all cores)")
    parser.add_argument("--steps-sweep", default="", help="e.g. 8,32: our real-time factor at these step counts")
    parser.add_argument("--child", choices=["theirs", "ours"])
    parser.add_argument("--prepare", action="store_true", help="only build and export the model")
    args = parser.parse_args()
    if args.child:
        print(json.dumps((child_theirs if args.child == "theirs" else child_ours)(args)))
        return
    models_dir()  # build and export once, outside the timed processes
    if args.prepare:
        return
    theirs = run_child("theirs", args, args.steps, args.runs)
    ours = run_child("ours", args, args.steps, args.runs)
    print(
        f"OmniVoice on {os.cpu_count()} cores, full-size random weights, int4 graph, {args.steps} steps, "
        f"median (min–max) of {args.runs} runs after a warm-up"
    )
    print("| text | side | first audio s | ratio | real-time factor | ratio |")
    print("|---|---|---|---|---|---|")
    for label in TEXTS:
        ref = theirs["texts"][label]
        for side, r in (("wyoming-piper 2.5.2 (reference)", ref), ("ours", ours["texts"][label])):
            print(
                f"| {label} | {side} | {_fmt(r['first_s'])} | "
                f"{statistics.median(r['first_s']) / statistics.median(ref['first_s']):.2f} | {_fmt(r['rtf'])} | "
                f"{statistics.median(r['rtf']) / statistics.median(ref['rtf']):.2f} |"
            )
    print("\n| side | load s | peak RSS MiB | ratio |")
    print("|---|---|---|---|")
    for side, r in (("wyoming-piper 2.5.2 (reference)", theirs), ("ours", ours)):
        print(f"| {side} | {r['load_s']:.1f} | {r['peak_mb']:.0f} | {r['peak_mb'] / theirs['peak_mb']:.2f} |")
    sweep = [int(s) for s in args.steps_sweep.split(",") if s.strip()]
    if sweep:
        print("\n| our steps | first audio s (three sentences) | real-time factor (three sentences) |")
        print("|---|---|---|")
        for steps in sweep:
            r = run_child("ours", args, steps, max(1, args.runs // 2))["texts"]["three sentences"]
            print(f"| {steps} | {_fmt(r['first_s'])} | {_fmt(r['rtf'])} |")


if __name__ == "__main__":
    main()
