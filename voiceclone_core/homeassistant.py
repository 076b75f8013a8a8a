"""Home Assistant's REST API (play announcements on media players) and the media folder we write them to."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from voiceclone_core import audio
from voiceclone_core.config import Settings

log = logging.getLogger(__name__)

SUPERVISOR_URL = "http://supervisor/core"


class HomeAssistantError(RuntimeError):
    """Home Assistant could not be reached or refused the call."""


class HomeAssistantClient:
    """Calls Home Assistant services over its REST API with a bearer token."""

    def __init__(self, url: str, token: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> HomeAssistantClient | None:
        """From ``homeassistant.url``/``token``; inside the add-on, the Supervisor proxy and its token."""
        url, token = settings.homeassistant.url, settings.homeassistant.token
        supervisor_token = os.environ.get("SUPERVISOR_TOKEN", "")
        if not url and supervisor_token:
            url, token = SUPERVISOR_URL, token or supervisor_token
        return cls(url, token) if url else None

    def request(self, method: str, path: str, data: dict[str, Any] | None = None) -> Any:
        """A JSON request with the bearer token; raises :class:`HomeAssistantError` with a clear reason."""
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=json.dumps(data).encode("utf-8") if data is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:200].decode("utf-8", "replace")
            raise HomeAssistantError(f"{self.url} refused {method} {path}: HTTP {exc.code} {detail}") from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise HomeAssistantError(f"Home Assistant is unreachable at {self.url}: {reason}") from exc
        try:
            return json.loads(body) if body else None
        except ValueError as exc:
            raise HomeAssistantError(f"{self.url} answered {method} {path} with something that is not JSON") from exc

    def call_service(self, domain: str, service: str, data: dict[str, Any]) -> Any:
        """``POST /api/services/<domain>/<service>``."""
        return self.request("POST", f"/api/services/{domain}/{service}", data)

    async def play_media(self, entity_ids: list[str], media_content_id: str, announce: bool = True) -> None:
        """Ask the media players to play a media-source id (as an announcement where they support it)."""
        data = {
            "entity_id": entity_ids,
            "media_content_id": media_content_id,
            "media_content_type": "music",
            "announce": announce,
        }
        await asyncio.to_thread(self.call_service, "media_player", "play_media", data)


class MediaStore:
    """Rendered announcements as WAV files in Home Assistant's media folder, removed after a while."""

    def __init__(self, directory: Path, media_source: str, keep_seconds: float) -> None:
        self.directory = Path(directory)
        self.media_source = media_source.rstrip("/")
        self.keep_seconds = keep_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> MediaStore:
        ha = settings.homeassistant
        return cls(ha.media_dir, ha.media_source, ha.keep_media_minutes * 60.0)

    def save(
        self, clip: np.ndarray, sample_rate: int, stem: str, info: dict[str, str] | None = None
    ) -> tuple[Path, str]:
        """Write a clip (``info``: its WAV metadata); returns its path and media-source id. Old files are cleaned up
        first."""
        self.cleanup()
        # Speech in a cloned voice is as private as the voice: the folder (when this makes it) is 0700 and each file
        # 0600. Home Assistant reads them as root in the add-on set-up (both write and read /media as root) and in its
        # usual container, so that is enough there. A server writing into a share that Home Assistant reads as
        # another, unprivileged user would need group-readable files (0640 and a shared group): not done, on purpose.
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}.wav"
        path = self.directory / name
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(audio.encode_wav(clip, sample_rate, info))
        os.replace(tmp, path)
        return path, f"{self.media_source}/{name}"

    def cleanup(self, now: float | None = None) -> int:
        """Delete announcement files older than the keep time; returns how many were removed."""
        if not self.directory.is_dir():
            return 0
        limit = (time.time() if now is None else now) - self.keep_seconds
        removed = 0
        for path in self.directory.glob("*.wav"):
            try:
                if path.stat().st_mtime < limit:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed
