"""Benchmark sides run in child processes, each printing one JSON line, so that each one's peak memory is its own."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_child(module: str, *args: str) -> dict:
    """Run ``python -m module --child ARGS`` in the repository root; its last line of output, as JSON.

    A failing child stops the benchmark with the end of its error output.
    """
    cmd = [sys.executable, "-m", module, "--child", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if out.returncode:
        raise SystemExit(f"{module} --child {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
