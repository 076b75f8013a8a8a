"""Draw VoiceClone's icon and logo as PNG files (numpy + zlib only): the add-on's icon.png/logo.png and the
integration's brand/ images. Run: .venv/bin/python scripts/brand_images.py"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BLUE = np.array([3, 169, 244], dtype=float)  # Home Assistant's blue
WHITE = np.array([255, 255, 255], dtype=float)
BARS = (0.30, 0.55, 0.85, 0.55, 1.0, 0.65, 0.40)  # a voice's waveform, as bar heights


def _png(rgba: np.ndarray) -> bytes:
    h, w, _ = rgba.shape
    raw = b"".join(b"\x00" + rgba[y].astype(np.uint8).tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def _icon_mask(size: int, scale: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Coverage of the round badge and of the white bars, supersampled ``scale`` times."""
    n = size * scale
    y, x = np.mgrid[0:n, 0:n] / n
    badge = ((x - 0.5) ** 2 + (y - 0.5) ** 2) <= 0.48**2
    bars = np.zeros_like(badge)
    width = 0.055
    for i, height in enumerate(BARS):
        cx = 0.5 + (i - (len(BARS) - 1) / 2) * 0.095
        half = 0.25 * height
        in_bar = (np.abs(x - cx) <= width / 2) & (np.abs(y - 0.5) <= half)
        cap = ((x - cx) ** 2 + (np.abs(y - 0.5) - half) ** 2) <= (width / 2) ** 2  # rounded ends
        bars |= in_bar | cap
    shrink = (size, scale, size, scale)
    return badge.reshape(shrink).mean(axis=(1, 3)), (bars & badge).reshape(shrink).mean(axis=(1, 3))


def icon(size: int) -> np.ndarray:
    badge, bars = _icon_mask(size)
    rgb = BLUE * (1 - bars[..., None]) + WHITE * bars[..., None]
    return np.dstack([rgb, 255 * badge])


def logo(width: int, height: int) -> np.ndarray:
    """The icon at the left of a transparent banner (the add-on store shows it at 250x100)."""
    out = np.zeros((height, width, 4))
    mark = icon(height)
    out[:, :height] = mark
    return out


def main() -> None:
    files = {
        ROOT / "addon" / "icon.png": icon(128),
        ROOT / "addon" / "logo.png": logo(250, 100),
        ROOT / "custom_components" / "voiceclone" / "brand" / "icon.png": icon(256),
        ROOT / "custom_components" / "voiceclone" / "brand" / "icon@2x.png": icon(512),
    }
    for path, image in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_png(np.clip(np.round(image), 0, 255)))
        print(f"wrote {path.relative_to(ROOT)} ({image.shape[1]}x{image.shape[0]})")


if __name__ == "__main__":
    main()
