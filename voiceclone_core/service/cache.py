"""Rendered speech kept on disk: one WAV per text chunk, per voice, least recently used evicted first.

Stored per voice so that deleting a voice removes its cached audio too; the key covers everything that changes the
audio (engine and version, the voice's prompt, language, speed, output rate, the chunk's text).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from pathlib import Path

import numpy as np

from voiceclone_core import audio
from voiceclone_core.voices import make_private_dir


class AudioCache:
    """Rendered clips as WAV files under ``<dir>/<voice_id>/<key>.wav``; least recently used evicted first."""

    def __init__(self, root: Path, max_bytes: int):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._total: int | None = None  # bytes on disk, counted on first use
        make_private_dir(self.root)  # the data folder above it too, when this creates it

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def _path(self, voice_id: str, key: str) -> Path:
        return self.root / voice_id / f"{key}.wav"

    def get(self, voice_id: str, key: str) -> tuple[np.ndarray, int] | None:
        """The clip and its rate, or None when it is not cached."""
        if not self.enabled:
            return None
        path = self._path(voice_id, key)
        try:
            clip = audio.decode(path)
            os.utime(path)  # mark as recently used
            return clip
        except (audio.AudioError, FileNotFoundError):
            return None

    def put(self, voice_id: str, key: str, clip: np.ndarray, sample_rate: int) -> None:
        """Keep a clip (written whole, owner-only), evicting the least recently used beyond the size cap."""
        if not self.enabled:
            return
        path = self._path(voice_id, key)
        path.parent.mkdir(exist_ok=True, mode=0o700)
        data = audio.encode_wav(clip, sample_rate)
        tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        with self._lock:
            self._total = self.size_bytes() if self._total is None else self._total + len(data)
            if self._total > self.max_bytes:
                self._evict()

    def _evict(self) -> None:
        files = []
        for p in self.root.glob("*/*.wav"):
            with contextlib.suppress(FileNotFoundError):
                stat = p.stat()
                files.append((stat.st_mtime, stat.st_size, p))
        total = sum(size for _, size, _ in files)
        for _, size, p in sorted(files):
            if total <= self.max_bytes:
                break
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
            total -= size
        self._total = total

    def drop_voice(self, voice_id: str) -> None:
        """Remove every clip of a voice."""
        shutil.rmtree(self.root / voice_id, ignore_errors=True)
        with self._lock:
            self._total = None

    def size_bytes(self) -> int:
        """Bytes of cached audio on disk."""
        total = 0
        for p in self.root.glob("*/*.wav"):
            with contextlib.suppress(FileNotFoundError):
                total += p.stat().st_size
        return total
