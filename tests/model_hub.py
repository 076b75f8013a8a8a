"""A local stand-in for the Hugging Face hub (real HTTP on 127.0.0.1), for the model manager's tests."""

from __future__ import annotations

import hashlib

from .procs import LoopbackHttp, QuietHandler


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Hub(LoopbackHttp):
    """Serves ``/{repo}/resolve/{revision}/{path}`` with ranges, LFS sums in X-Linked-Etag and optional auth."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.token = ""
        self.cut_after: int | None = None  # drop the connection after this many body bytes (once)
        self.requests: list[dict] = []
        hub = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                hub.requests.append(
                    {"path": self.path, "range": self.headers.get("Range"), "auth": self.headers.get("Authorization")}
                )
                if hub.token and self.headers.get("Authorization") != f"Bearer {hub.token}":
                    self.send_response(401)
                    self.end_headers()
                    return
                data = hub.files.get(self.path)
                if data is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
                body = data[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                if self.path.endswith(".safetensors"):
                    self.send_header("X-Linked-Etag", f'"{sha(data)}"')
                self.end_headers()
                if hub.cut_after is not None:
                    self.wfile.write(body[: hub.cut_after])
                    hub.cut_after = None
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)

        super().__init__(Handler)

    def ranges(self) -> list[str]:
        """The Range headers asked for so far, in order."""
        return [r["range"] for r in self.requests if r["range"]]
