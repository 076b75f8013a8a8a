"""Czech and Dutch real speakers for the quality benchmark, from Debian's Fish Fillets NG packages.

``fillets-ng-data-cs`` and ``-nl`` hold the game's acted dialogue (the big fish: a man; the small fish: a woman),
and ``fillets-ng-data`` the script files with each line's text in every language. This writes them in the layout of
``../shared/data/get_real_speech.sh`` (``metadata.tsv``, ``speakers.tsv``, ``wavs/``: 16 kHz mono WAV), so that
``python -m benchmarks.quality --real OUT`` evaluates them like the other real speakers::

    python -m benchmarks.fillets_speech var/fillets_speech   # apt-get download of the three packages, ~140 MB

Only lines of one fish each are kept (``<level>-m-…`` small, ``<level>-v-…`` big); a line counts as a sentence
when it lasts at least 1.5 s and has at least four words.
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from voiceclone_core import audio

PACKAGES = ("fillets-ng-data", "fillets-ng-data-cs", "fillets-ng-data-nl")
FISH = {"v": ("m", "bigfish"), "m": ("f", "smallfish")}  # id letter -> (sex, name)
LANGUAGES = {"cs": "cs-CZ", "nl": "nl-NL"}
_LINE = re.compile(r'dialogId\("([^"]+)"[^\n]*\)\s*\ndialogStr\("((?:[^"\\]|\\.)*)"\)')
_FISH_ID = re.compile(r"^[a-z0-9]+-([mv])-")


def texts(game: Path, lang: str) -> dict[str, str]:
    """Every dialogue line's text in ``lang``, by line id, from the levels' ``dialogs_<lang>.lua``."""
    out = {}
    for script in sorted(game.glob(f"script/*/dialogs_{lang}.lua")):
        for line_id, text in _LINE.findall(script.read_text(encoding="utf-8", errors="replace")):
            out[line_id] = text.replace('\\"', '"').strip()
    return out


def unpack(debs: Path, into: Path) -> Path:
    """The game's data folder from the packages in ``debs`` (fetched with ``apt-get download`` when missing)."""
    if not all(any(debs.glob(f"{p}_*.deb")) for p in PACKAGES):
        debs.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", *PACKAGES], cwd=debs, check=True)
    for p in PACKAGES:
        subprocess.run(["dpkg-deb", "-x", str(next(debs.glob(f"{p}_*.deb"))), str(into)], check=True)
    return into / "usr/share/games/fillets-ng"


def write(game: Path, out: Path) -> list[dict[str, str]]:
    """Convert the fishes' lines to ``out`` (see the module docstring); returns the speakers' summary rows."""
    rows, summary = [], []
    for lang, locale in LANGUAGES.items():
        lines = texts(game, lang)
        by_speaker: dict[str, list[dict[str, str]]] = {}
        for ogg in sorted(game.glob(f"sound/*/{lang}/*.ogg")):
            match = _FISH_ID.match(ogg.stem)
            text = lines.get(ogg.stem, "")
            if not match or not text:
                continue
            sex, fish = FISH[match.group(1)]
            speaker = f"fillets_{lang}_{sex.lower()}_{fish}"
            try:
                x, sr = audio.decode(ogg)
            except audio.AudioError:  # a few of the files are empty
                continue
            x = audio.resample(x, sr, 16000)
            wav = Path("wavs") / speaker / f"{ogg.parent.parent.name}-{ogg.stem}.wav"
            (out / wav).parent.mkdir(parents=True, exist_ok=True)
            (out / wav).write_bytes(audio.encode_wav(np.asarray(x, np.float32), 16000))
            seconds = len(x) / 16000
            kind = "sentence" if seconds >= 1.5 and len(text.split()) >= 4 else "short"
            row = {"speaker": speaker, "lang": locale, "sex": sex.upper(), "wav": str(wav)}
            by_speaker.setdefault(speaker, []).append({**row, "seconds": f"{seconds:.3f}", "kind": kind, "text": text})
        for speaker, utts in sorted(by_speaker.items()):
            rows += utts
            sent = [u for u in utts if u["kind"] == "sentence"]
            summary.append(
                {
                    "speaker": speaker,
                    "lang": utts[0]["lang"],
                    "sex": utts[0]["sex"],
                    "utts": str(len(utts)),
                    "seconds": f"{sum(float(u['seconds']) for u in utts):.1f}",
                    "sentence_utts": str(len(sent)),
                    "sentence_seconds": f"{sum(float(u['seconds']) for u in sent):.1f}",
                }
            )
    for name, table in (("metadata.tsv", rows), ("speakers.tsv", summary)):
        with (out / name).open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(table[0]), delimiter="\t", lineterminator="\n")
            writer.writeheader()
            writer.writerows(table)
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--debs", type=Path, help="folder with the three .deb files (default: OUT/debs)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for row in write(unpack(args.debs or args.out / "debs", Path(tmp)), args.out):
            print("\t".join(row.values()))


if __name__ == "__main__":
    main()
