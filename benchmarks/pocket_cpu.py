"""Pocket TTS on this CPU: plain pocket-tts (the reference) against our pocket engine behind the speech service.

The model has the released architecture and size (pocket-tts 4.0.1's english.yaml, ~110 M parameters) with random
weights, and a 4000-piece sentencepiece tokenizer (the released vocabulary size; the real tokenizer is not shipped
on PyPI). Random weights never stop on purpose, so end-of-speech is disabled and every generation call makes exactly
``--frames`` frames (80 ms each). Each configuration runs in a fresh process (so peak memory is its own):

* load time, voice-prompt time (5 s reference), time to first audio and real-time factor (wall / audio) for a
  26-word text, median (min–max) of ``--runs`` runs after one warm-up; peak and final resident memory.
* "plain": ``TTSModel.generate_audio_stream`` directly, package defaults (the anchor in research/pocket-cpu-anchor.md).
* "ours": ``SpeechService.stream`` with the pocket engine (normalising and chunking the text: the first chunk is a
  short clause, so first audio comes early), with the engine's thread and quantisation settings.

Run: ``python -m benchmarks.pocket_cpu`` (about 5 minutes on 2 cores; the model is built once into
benchmarks/results/pocket-full/). Goals through our service: first audio ≤ 0.3 s, real-time factor ≤ 0.5,
resident memory ≤ 1 GB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from benchmarks import children

RESULTS = Path(__file__).resolve().parent / "results"
TEXT = (
    "Good evening. The front door is locked, the living room lights are off, and the thermostat is set to "
    "twenty one degrees for the night, so sleep well."
)
SR = 24000


def model_folder() -> Path:
    """The full-size random model (built on first use)."""
    folder = RESULTS / "pocket-full" / "pocket-tts-english"
    if (folder / "model.yaml").is_file():
        return folder
    import pydoc_data.topics

    from pocket_tts.utils.config import CONFIGS_DIR

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.tiny_models import build_pocket

    config = yaml.safe_load((Path(CONFIGS_DIR) / "english.yaml").read_text(encoding="utf-8"))
    config.pop("weights_path_without_voice_cloning", None)
    config["weights_path"] = "model.safetensors"
    config["flow_lm"]["lookup_table"].update(tokenizer="sentencepiece", tokenizer_path="tokenizer.model")
    prose = [line for text in pydoc_data.topics.topics.values() for line in text.splitlines() if len(line) > 40]
    build_pocket(folder, config, vocab_size=4000, corpus=prose)
    return folder


def reference_wav(folder: Path) -> Path:
    """About 5 s of speech (espeak-ng), the voice sample both sides clone from."""
    path = folder.parent / "reference.wav"
    if not path.is_file():
        subprocess.run(
            [
                "espeak-ng",
                "-v",
                "en-us+f3",
                "-s",
                "160",
                "-w",
                str(path),
                "The quick brown fox jumps over the lazy dog. We leave for the station at half past seven.",
            ],
            check=True,
        )
    return path


def bound(model, frames: int) -> None:
    """Disable end-of-speech and make every generation call exactly ``frames`` frames."""
    model.eos_threshold = 1e9
    model._estimate_max_gen_len = lambda token_count: frames


def rss_mb() -> tuple[float, float]:
    peak = children.peak_rss_mib()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return peak, int(line.split()[1]) / 1024
    return peak, float("nan")


def child_plain(args: argparse.Namespace) -> dict:
    import torch
    from pocket_tts import TTSModel

    if args.threads:
        torch.set_num_threads(args.threads)
    folder = model_folder()
    config = yaml.safe_load((folder / "model.yaml").read_text())
    config["weights_path"] = str(folder / "model.safetensors")
    config["flow_lm"]["lookup_table"]["tokenizer_path"] = str(folder / "tokenizer.model")
    resolved = folder.parent / "plain.yaml"
    resolved.write_text(yaml.safe_dump(config))
    t0 = time.perf_counter()
    model = TTSModel.load_model(config=str(resolved), quantize=args.quantize)
    load = time.perf_counter() - t0
    bound(model, args.frames)
    prompt_times, firsts, rtfs = [], [], []
    state = None
    for i in range(args.runs + 1):
        t0 = time.perf_counter()
        state = model.get_state_for_audio_prompt(reference_wav(folder))
        prompt_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        first, n = None, 0
        for chunk in model.generate_audio_stream(state, TEXT):
            first = first if first is not None else time.perf_counter() - t0
            n += chunk.shape[-1]
        total = time.perf_counter() - t0
        if i:
            prompt_times.append(prompt_s)
            firsts.append(first)
            rtfs.append(total / (n / SR))
    return _result(load, prompt_times, firsts, rtfs)


def child_ours(args: argparse.Namespace) -> dict:
    import tempfile

    from voiceclone_core import audio
    from voiceclone_core.config import load_settings
    from voiceclone_core.engines.base import EnrollmentSample
    from voiceclone_core.engines.registry import create_engine
    from voiceclone_core.service import SpeechRequest, build_service

    folder = model_folder()
    data = Path(tempfile.mkdtemp(prefix="pocket-bench-"))
    settings = load_settings(
        None,
        overrides={
            "data_dir": str(data),
            "models_dir": str(folder.parent),
            "engine.name": "pocket",
            "pocket.threads": str(args.threads),
            "pocket.quantize": str(args.quantize).lower(),
            "cache.enabled": "false",
        },
    )
    t0 = time.perf_counter()
    engine = create_engine(settings)
    load = time.perf_counter() - t0
    bound(engine.model, args.frames)
    x, sr = audio.decode(reference_wav(folder))
    prompt_times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        prompt = engine.prepare(EnrollmentSample(x, sr, "en"))
        prompt_times.append(time.perf_counter() - t0)
    service = build_service(settings, engine=engine)
    service.enroll("Bench", reference_wav(folder), consent="benchmark (synthetic espeak voice)", voice_id="bench")
    firsts, rtfs = [], []

    async def one() -> tuple[float, float]:
        t0 = time.perf_counter()
        first, n = None, 0
        async for piece in service.stream(SpeechRequest(TEXT, voice="bench")):
            first = first if first is not None else time.perf_counter() - t0
            n += len(piece)
        return float(first), (time.perf_counter() - t0) / (n / service.sample_rate)

    for i in range(args.runs + 1):
        first, rtf = asyncio.run(one())
        if i:
            firsts.append(first)
            rtfs.append(rtf)
    service.close()
    del prompt
    return _result(load, prompt_times, firsts, rtfs)


def _result(load: float, prompts: list[float], firsts: list[float], rtfs: list[float]) -> dict:
    peak, now = rss_mb()
    return {"load_s": load, "prompt_s": prompts, "first_s": firsts, "rtf": rtfs, "peak_mb": peak, "final_mb": now}


def run_child(kind: str, threads: int, quantize: bool, args: argparse.Namespace) -> dict:
    flags = [kind, "--threads", str(threads), "--runs", str(args.runs), "--frames", str(args.frames)]
    return children.run_child("benchmarks.pocket_cpu", *flags, *(["--quantize"] if quantize else []))


def _fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--frames", type=int, default=125, help="frames per generation call (80 ms each)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quantize", action="store_true")
    parser.add_argument("--child", choices=["plain", "ours"])
    args = parser.parse_args()
    if args.child:
        result = (child_plain if args.child == "plain" else child_ours)(args)
        print(json.dumps(result))
        return
    model_folder()  # build once, outside the timed processes
    rows = [
        ("plain pocket-tts (reference)", run_child("plain", args.threads, False, args)),
        (f"ours, {args.threads} threads", run_child("ours", args.threads, False, args)),
        (f"ours, {args.threads} threads, int8", run_child("ours", args.threads, True, args)),
    ]
    ref = rows[0][1]
    print(f"Pocket TTS, full-size random weights, {args.frames} frames per call, {args.runs} runs after a warm-up")
    print(
        "| configuration | load s | voice prompt s | first audio s | ratio | real-time factor | ratio | "
        "peak RSS MiB | final RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in rows:
        print(
            f"| {name} | {r['load_s']:.2f} | {_fmt(r['prompt_s'])} | {_fmt(r['first_s'])} | "
            f"{statistics.median(r['first_s']) / statistics.median(ref['first_s']):.2f} | {_fmt(r['rtf'])} | "
            f"{statistics.median(r['rtf']) / statistics.median(ref['rtf']):.2f} | {r['peak_mb']:.0f} | "
            f"{r['final_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
