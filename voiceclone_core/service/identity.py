"""Who this server is: a random id made on first start and kept in the data folder, and the package version.

Home Assistant keys its config entry on the id (announced over zeroconf, the Supervisor and ``api/health``), so a
server that moves to another address updates its entry instead of appearing twice.
"""

from __future__ import annotations

import contextlib
import os
import re
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
