"""Process helpers shared by tests and benchmarks: free loopback ports, a loopback HTTP stub, `voiceclone serve` as a
process."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CLI = [sys.executable, "-m", "voiceclone_core.cli"]
QUIET_ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that does not log each request to stderr."""

    def log_message(self, *args: object) -> None:
        pass


class LoopbackHttp:
    """A threaded HTTP server for ``handler`` on a free 127.0.0.1 port: ``url``, and ``close()`` to stop it."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 60) -> None:
    """Wait until something accepts connections on 127.0.0.1:port (fail early if ``proc`` exits)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def serve(data: Path, port: int, *settings: str, **popen) -> subprocess.Popen:
    """`voiceclone serve` on loopback (no zeroconf, no web page) with extra ``--set`` settings."""
    extra = [arg for item in settings for arg in ("--set", item)]
    popen.setdefault("stdout", subprocess.DEVNULL)
    popen.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen(
        [
            *CLI,
            "serve",
            "--uri",
            f"tcp://127.0.0.1:{port}",
            "--no-zeroconf",
            "--data-dir",
            str(data),
            "--set",
            "web.enabled=false",
            *extra,
        ],
        env=QUIET_ENV,
        **popen,
    )
