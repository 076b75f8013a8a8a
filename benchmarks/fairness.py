"""Fairness: a short request's first audio while a long request of the same priority is being spoken.

One ``voiceclone serve`` (embedded engine, one enrolled voice, cache off, default workers) on 127.0.0.1, started by
this script; every request is a one-shot Wyoming ``synthesize`` on a fresh TCP connection, as Home Assistant sends
them, so all are interactive (the same priority). Each run:

* idle: "Hello, are you there?" alone — time to its first audio chunk (the reference);
* loaded: a 2,500-character text is sent first; ``--offset`` seconds later (spread evenly over 1–3 s across the
  runs, so the short request lands at different points of the long one's sentences) the same short request is
  sent, and its time to first audio measured from its own send. The long request is then dropped (its connection
  closed, which cancels it on the server) unless ``--finish`` is given, which waits for it and reports its total.

Reported: median (min–max) over ``--runs`` runs after a warm-up, and the ratio of the medians loaded / idle (goal
≤ 2; strictly first-come-first-served scheduling made it ~50). Raw figures go to
``benchmarks/results/fairness.json``.

Run: ``python -m benchmarks.fairness`` (about 1.5 minutes on 2 cores; ``--runs 3`` for less).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize, SynthesizeVoice

from benchmarks.wyoming_latency import Server, start_ours
from tests.procs import serve, wait_port

SHORT = "Hello, are you there?"
LONG = ("The quick brown fox jumps over the lazy dog near the river bank today. " * 40)[:2500]
RESULTS = Path(__file__).resolve().parent / "results"


class Timeline:
    """When one request was sent, when its first audio came, when it ended."""

    def __init__(self) -> None:
        self.sent = 0.0
        self.first: float | None = None
        self.end: float | None = None
        self.audio_bytes = 0


async def request(server: Server, text: str, line: Timeline) -> Timeline:
    """A one-shot synthesis on a fresh connection; its times go into ``line`` as they happen."""
    async with AsyncTcpClient("127.0.0.1", server.port) as client, asyncio.timeout(300):
        line.sent = time.perf_counter()
        await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name=server.voice)).event())
        while True:
            event = await client.read_event()
            if event is None:
                raise ConnectionError("the server closed the connection")
            if event.type == "audio-chunk":
                line.first = line.first if line.first is not None else time.perf_counter() - line.sent
                line.audio_bytes += len(event.payload or b"")
            elif event.type == "error":
                raise RuntimeError(f"server error: {event.data}")
            elif event.type == "audio-stop":
                line.end = time.perf_counter() - line.sent
                return line


async def idle(server: Server) -> float:
    line = await request(server, SHORT, Timeline())
    assert line.first is not None
    return line.first


async def loaded(server: Server, offset: float, finish: bool) -> tuple[float, Timeline]:
    """The short request's first audio, sent ``offset`` s after the long one; and the long one's timeline."""
    long_line = Timeline()
    long_task = asyncio.create_task(request(server, LONG, long_line))
    await asyncio.sleep(offset)
    if long_task.done():
        raise RuntimeError("the long request ended before the short one was sent")
    short = await request(server, SHORT, Timeline())
    if finish:
        await long_task
    elif not long_task.done():  # hang up, as a client that leaves does: the server drops the job
        long_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await long_task
        await asyncio.sleep(1.0)  # let the server drop the long job before the next idle measurement
    assert short.first is not None
    return short.first, long_line


def _fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


async def run(server: Server, runs: int, offsets: list[float], finish: bool) -> dict:
    await idle(server)  # warm-up: first use of the voice, the phonemiser, the ONNX session
    await loaded(server, 1.0, finish=False)
    idles, loads, longs_first, longs_total = [], [], [], []
    for i in range(runs):
        idles.append(await idle(server))
        first, long_line = await loaded(server, offsets[i], finish)
        loads.append(first)
        if long_line.first is not None:
            longs_first.append(long_line.first)
        if long_line.end is not None:
            longs_total.append(long_line.end)
        print(
            f"run {i + 1}: idle {idles[-1]:.3f} s, loaded (sent {offsets[i]:.1f} s after the long one) "
            f"{loads[-1]:.3f} s",
            flush=True,
        )
    ratio = statistics.median(loads) / statistics.median(idles)
    print(f"\n| short request ({SHORT!r}), first audio | median (min–max) s |")
    print("|---|---|")
    print(f"| idle | {_fmt(idles)} |")
    print(f"| while a {len(LONG)}-character request of the same priority is spoken | {_fmt(loads)} |")
    print(f"| ratio loaded / idle (goal ≤ 2) | {ratio:.2f} |")
    print(f"| the long request's own first audio | {_fmt(longs_first)} |")
    if longs_total:
        print(f"| the long request's total time (audio-stop) | {_fmt(longs_total)} |")
    return {
        "short": SHORT,
        "long_chars": len(LONG),
        "offsets_s": offsets,
        "idle_first_audio_s": idles,
        "loaded_first_audio_s": loads,
        "ratio": ratio,
        "long_first_audio_s": longs_first,
        "long_total_s": longs_total,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--offset", type=float, default=None, help="seconds between the long and the short request")
    ap.add_argument("--finish", action="store_true", help="let each long request finish (about 30 s more per run)")
    ap.add_argument("--workers", type=int, default=0, help="speech.workers (0: the server's default)")
    args = ap.parse_args()
    if args.offset is not None:
        offsets = [args.offset] * args.runs
    else:
        offsets = [round(1.0 + 2.0 * i / max(1, args.runs - 1), 2) for i in range(args.runs)]
    with tempfile.TemporaryDirectory() as tmp:
        server = start_ours(Path(tmp) / "data")
        if args.workers:  # start_ours serves with the defaults: restart with the worker count asked for
            server.proc.terminate()
            server.proc.wait(timeout=10)
            proc = serve(Path(tmp) / "data", server.port, "cache.enabled=false", f"speech.workers={args.workers}")
            wait_port(server.port, proc, timeout=90)
            server = Server(server.name, server.port, proc, server.voice)
        try:
            print(f"{os.cpu_count()} CPUs, speech.workers={args.workers or 'default'}, {args.runs} runs", flush=True)
            results = asyncio.run(run(server, args.runs, offsets, args.finish))
        finally:
            server.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.proc.wait(timeout=10)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fairness.json").write_text(json.dumps({**results, "workers": args.workers or "default"}, indent=2))


if __name__ == "__main__":
    main()
