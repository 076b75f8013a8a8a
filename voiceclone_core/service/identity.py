"""Who this server is: a random id made on first start and kept in the data folder, the package version, and the
API's bearer token.

Home Assistant keys its config entry on the id (announced over zeroconf, the Supervisor and ``api/health``), so a
server that moves to another address updates its entry instead of appearing twice.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import re
import secrets
import uuid
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ID_FILE = "server_id"
_ID = re.compile(r"[0-9a-f]{32}")


def server_id(data_dir: Path) -> str:
    """The server's id (32 hex digits), created privately and atomically on first use."""
    path = Path(data_dir) / ID_FILE
    with contextlib.suppress(OSError):
        existing = path.read_text(encoding="ascii").strip()
        if _ID.fullmatch(existing):
            return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    new = uuid.uuid4().hex
    tmp = path.with_name(f".{ID_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(new + "\n")
    try:
        os.link(tmp, path)  # the first writer wins; a concurrent start reads the winner's id
    except FileExistsError:
        existing = path.read_text(encoding="ascii").strip()
        if _ID.fullmatch(existing):
            return existing
        os.replace(tmp, path)  # a damaged id file: replaced (discovery then moves the HA entry to the new id)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return new


def package_version() -> str:
    """The installed ``voiceclone`` version ("0" when running from a source tree that was never installed)."""
    try:
        return version("voiceclone")
    except PackageNotFoundError:  # pragma: no cover - source tree without an install
        return "0"


TOKEN_FILE = "api_token"


class ApiToken:
    """The bearer token of the web/JSON API: made on first use, kept privately in the data folder, rotatable.

    Read again whenever the file changes, so ``voiceclone token --rotate`` takes effect in a running server.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / TOKEN_FILE
        self._cached: tuple[int, str] | None = None

    def current(self) -> str:
        """The token (created on first use)."""
        try:
            stamp = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return self.rotate(only_if_missing=True)
        if self._cached is None or self._cached[0] != stamp:
            token = self.path.read_text(encoding="ascii").strip()
            if len(token) < 32:
                return self.rotate()
            self._cached = (stamp, token)
        return self._cached[1]

    def rotate(self, only_if_missing: bool = False) -> str:
        """Make a new token (the old one stops working at once); with ``only_if_missing``, keep an existing one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(32)
        tmp = self.path.with_name(f".{TOKEN_FILE}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(token + "\n")
        try:
            if only_if_missing:
                try:
                    os.link(tmp, self.path)
                except FileExistsError:
                    return self.current()
            else:
                os.replace(tmp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        self._cached = None
        return self.current()

    def matches(self, presented: str) -> bool:
        """Whether ``presented`` is the token (compared in constant time)."""
        return hmac.compare_digest(presented.encode("utf-8", "replace"), self.current().encode("ascii"))
