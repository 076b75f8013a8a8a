"""The model manager: named checkpoints, fetched explicitly into the models dir, verified, installed atomically.

Nothing here runs implicitly: engines only ever read an installed folder (``local_files_only``). Downloads come
from a Hugging Face-style hub (``{hub}/{repo}/resolve/{revision}/{path}``), resume from a ``.part`` file with an
HTTP range request, are checked against the SHA-256 pinned in the catalogue (or, where none is pinned yet, the
hub's own LFS SHA-256, recorded at install and checked by ``verify`` from then on), and land in
``<models_dir>/<name>/`` by one rename of a fully verified staging folder, so a failed or interrupted download
never leaves a half model behind nor damages the installed one.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import json
import logging
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

MANIFEST = ".voiceclone-model.json"
STAGING = ".staging"
CHUNK = 1 << 20

Progress = Callable[[str, int, int | None], None]  # file, bytes done, total bytes (None: unknown)


class ModelError(RuntimeError):
    """A model cannot be fetched, verified or found; the message says what to do."""


@dataclass(frozen=True)
class ModelFile:
    """One file of a model: its path in the repository (and in the installed folder) and its pinned checksum.

    ``repo``/``revision`` default to the model's own (a model may take a file from a sibling repository).
    """

    path: str
    sha256: str | None = None
    size: int | None = None
    repo: str = ""
    revision: str = ""
    md5: str | None = None  # what the Piper voice catalogue publishes (checked with the size; SHA-256 recorded)


@dataclass(frozen=True)
class ModelSpec:
    """A downloadable model: where it comes from (repository at a fixed revision) and which files it needs."""

    name: str
    engine: str
    repo: str
    revision: str
    files: tuple[ModelFile, ...]
    licence: str
    description: str
    gated: bool = False
    terms_url: str = ""


@dataclass
class ModelStatus:
    """What ``list`` reports for one catalogue entry."""

    spec: ModelSpec
    installed: bool
    size_bytes: int = 0
    problems: list[str] = field(default_factory=list)


# Files shared by both Qwen3-TTS Base sizes (same bytes at the pinned commits).
_QWEN3_SHARED = (
    ModelFile("generation_config.json", "f1b90b4513f3b34c62851049e2492d7b4c5940daf1276f89c82b8ef04127f3aa", 245),
    ModelFile("merges.txt", "599bab54075088774b1733fde865d5bd747cbcc7a547c5bc12610e874e26f5e3", 1_671_839),
    ModelFile("preprocessor_config.json", "efdde1022ea9d76928bf7a9cd53139138f5ba2e466e837f08f6105ab1af1c119", 127),
    ModelFile("tokenizer_config.json", "dc3c31c3bdaedd5016382bb3cbe07323026775ad51f5a4fb564505992ae4a670", 7_344),
    ModelFile("vocab.json", "ca10d7e9fb3ed18575dd1e277a2579c16d108e32f27439684afa0e10b1440910", 2_776_833),
    ModelFile(
        "speech_tokenizer/config.json", "ee65bb901c876664ab8707c487157aa1a6ee57c65969b28fb5ec9dc211e68167", 2_336
    ),
    ModelFile(
        "speech_tokenizer/configuration.json", "6bc26d64eb5024b4d1dab5a52371958b429256d6c9d59787f1f5294a54e0cebd", 76
    ),
    ModelFile(
        "speech_tokenizer/model.safetensors",
        "836b7b357f5ea43e889936a3709af68dfe3751881acefe4ecf0dbd30ba571258",
        682_293_092,
    ),
    ModelFile(
        "speech_tokenizer/preprocessor_config.json",
        "fcb3805e597e786d4067706e602f6688524640f8d3396790e2e09b5942fcbdfb",
        234,
    ),
)


def _qwen3(size: str, revision: str, config: ModelFile, weights: ModelFile) -> ModelSpec:
    return ModelSpec(
        name=f"qwen3-tts-{size.lower()}",
        engine="qwen3",
        repo=f"Qwen/Qwen3-TTS-12Hz-{size}-Base",
        revision=revision,
        files=(config, weights, *_QWEN3_SHARED),
        licence="Apache-2.0",
        description=f"Qwen3-TTS 12 Hz {size} Base: zero-shot cloning from 3 s, 10 languages (NVIDIA GPU)",
    )


def _pocket(
    language: str, weights_revision: str, tokenizer_revision: str, tokenizer_sha256: str, tokenizer_size: int
) -> ModelSpec:
    return ModelSpec(
        name=f"pocket-tts-{language}",
        engine="pocket",
        repo="kyutai/pocket-tts",
        revision=weights_revision,
        files=(
            ModelFile(f"languages/{language}/model.safetensors"),
            ModelFile(
                f"languages/{language}/tokenizer.json",
                tokenizer_sha256,
                tokenizer_size,
                repo="kyutai/pocket-tts-without-voice-cloning",
                revision=tokenizer_revision,
            ),
        ),
        licence="CC-BY-4.0 (weights), MIT (code)",
        description=f"Kyutai Pocket TTS ({language}) with voice cloning: CPU, streams 80 ms frames",
        gated=True,
        terms_url="https://huggingface.co/kyutai/pocket-tts",
    )


def _omnivoice(revision: str) -> ModelSpec:
    """OmniVoice with its Higgs audio v2 tokenizer, which the checkpoint's repository holds in ``audio_tokenizer/``
    at the same commit (so one entry fetches both, and they can never be mismatched)."""
    return ModelSpec(
        name="omnivoice",
        engine="omnivoice",
        repo="k2-fsa/OmniVoice",
        revision=revision,
        files=(
            ModelFile("config.json", size=2_238),
            ModelFile("tokenizer.json", size=11_423_986),
            ModelFile("tokenizer_config.json", size=533),
            ModelFile("model.safetensors", size=2_450_344_112),
            ModelFile("audio_tokenizer/config.json", size=2_531),
            ModelFile("audio_tokenizer/preprocessor_config.json", size=206),
            ModelFile("audio_tokenizer/model.safetensors", size=805_665_628),
        ),
        licence="Apache-2.0",
        description="OmniVoice: zero-shot cloning in 646 languages; CPU (int4 ONNX graph built after the download) "
        "or NVIDIA GPU",
    )


# Sums and sizes as published for these commits (Qwen3-TTS) and revisions (Pocket TTS: the ones pocket-tts 4.0.1's
# english.yaml pins). The Pocket weights' SHA-256 at that revision could not be found from this workplace: it is
# checked against the hub's LFS SHA-256 at download and recorded for `verify`. OmniVoice: the commit and file sizes
# of a published pinned manifest of that repository; its SHA-256 sums are likewise taken from the hub at download.
CATALOGUE: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        _qwen3(
            "0.6B",
            "5d83992436eae1d760afd27aff78a71d676296fc",
            ModelFile("config.json", "2e714c787c8edb98b05432685cddb634add2de4d4e645f653d68251ef72ba011", 4_494),
            ModelFile(
                "model.safetensors",
                "180b3b10eb1c9f1b4db7806d5475bae3071c0243c299d49926bab1da3b6946f6",
                1_829_344_272,
            ),
        ),
        _qwen3(
            "1.7B",
            "fd4b254389122332181a7c3db7f27e918eec64e3",
            ModelFile("config.json", "b4f01752d15a488abde3e1ab44723ae4f4b9e68a4037257b098b3737893cc1f9", 4_494),
            ModelFile(
                "model.safetensors",
                "38fc7fc51c5e776e840414b6fd443962e9411b9654888fd7913e4da643cb857c",
                3_857_413_744,
            ),
        ),
        _omnivoice("c5fdb5ccb189668d56333f77ba2629f4cd7535f4"),
        _pocket(
            "english",
            "db04f0e653473e5c7333c69686ac92b7460b0c1d",
            "00eac05ed3d16bdc3f6b5d598874019c34a89214",
            "f498428e1eafee50492f7be13dc9bfafcfc12e508cd0eb1b01c92ecd5d8c6687",
            245_020,
        ),
    )
}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


class ModelManager:
    """Lists, downloads and verifies the models of ``catalogue`` under ``models_dir``."""

    def __init__(
        self,
        models_dir: Path,
        hub_url: str = "https://huggingface.co",
        token: str = "",
        catalogue: dict[str, ModelSpec] | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.models_dir = Path(models_dir)
        self.hub_url = hub_url.rstrip("/")
        self.token = token or os.environ.get("HF_TOKEN", "")
        self.catalogue = {**CATALOGUE, **piper_catalogue()} if catalogue is None else catalogue
        self.timeout_s = timeout_s

    # -- queries ------------------------------------------------------------------------------------------
    def spec(self, name: str) -> ModelSpec:
        """The catalogue entry ``name`` (a Piper voice as ``piper:<voice>`` or ``piper-<voice>``)."""
        if name.startswith(PIPER_PREFIX):
            name = "piper-" + name[len(PIPER_PREFIX) :]
        try:
            return self.catalogue[name]
        except KeyError:
            raise ModelError(f"unknown model {name!r}; known: {', '.join(sorted(self.catalogue))}") from None

    def known(self, name: str) -> bool:
        """Whether ``name`` is in the catalogue (in either spelling of a Piper voice)."""
        try:
            self.spec(name)
        except ModelError:
            return False
        return True

    def path(self, name: str) -> Path:
        """The installed folder of ``name`` (may not exist)."""
        return self.models_dir / self.spec(name).name

    def installed(self, name: str) -> bool:
        return (self.path(name) / MANIFEST).is_file()

    def list(self) -> list[ModelStatus]:
        """Every catalogue entry with whether it is installed and its size on disk (no checksumming)."""
        out = []
        for name, spec in sorted(self.catalogue.items()):
            folder = self.path(name)
            size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0
            out.append(ModelStatus(spec, self.installed(name), size))
        return out

    def verify(self, name: str) -> list[str]:
        """Problems with the installed files of ``name`` (empty: intact). Re-hashes every file."""
        folder = self.path(name)
        if not self.installed(name):
            return [f"{name} is not installed (run: voiceclone models download {name})"]
        recorded = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["files"]
        problems = []
        for item in self.spec(name).files:
            target = folder / item.path
            expected = item.sha256 or recorded.get(item.path, {}).get("sha256")
            if not target.is_file():
                problems.append(f"{item.path}: missing")
            elif item.size is not None and target.stat().st_size != item.size:
                problems.append(f"{item.path}: size {target.stat().st_size}, expected {item.size}")
            elif expected and sha256_of(target) != expected:
                problems.append(f"{item.path}: SHA-256 does not match {expected[:12]}…")
        return problems

    # -- download -----------------------------------------------------------------------------------------
    def download(self, name: str, progress: Progress | None = None) -> Path:
        """Fetch, verify and install ``name``; returns its folder. Resumes an interrupted download."""
        spec = self.spec(name)
        if spec.gated and not self.token:
            raise ModelError(
                f"{name} is gated: accept its terms at {spec.terms_url or self.hub_url + '/' + spec.repo} and set "
                "models.hf_token (or HF_TOKEN) to a Hugging Face access token"
            )
        staging = self.models_dir / STAGING / spec.name
        staging.mkdir(parents=True, exist_ok=True)
        record: dict[str, dict[str, object]] = {}
        for item in spec.files:
            record[item.path] = self._fetch(spec, item, staging, progress)
        (staging / MANIFEST).write_text(
            json.dumps(
                {
                    "name": spec.name,
                    "repo": spec.repo,
                    "revision": spec.revision,
                    "files": record,
                    "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                },
                indent=2,
            ),
            encoding="utf-8",
        )
        return self._install(spec, staging)

    def _install(self, spec: ModelSpec, staging: Path) -> Path:
        target = self.models_dir / spec.name
        old = self.models_dir / STAGING / f"{spec.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
        log.info("model %s installed in %s", spec.name, target)
        return target

    def _url(self, spec: ModelSpec, item: ModelFile) -> str:
        return f"{self.hub_url}/{item.repo or spec.repo}/resolve/{item.revision or spec.revision}/{item.path}"

    def _fetch(self, spec: ModelSpec, item: ModelFile, staging: Path, progress: Progress | None) -> dict[str, object]:
        """One file into ``staging`` (resuming its ``.part``), checked; returns its manifest record."""
        final = staging / item.path
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.is_file() and item.sha256 and sha256_of(final) == item.sha256:
            return {"sha256": item.sha256, "size": final.stat().st_size, "pinned": True}
        part = final.with_name(final.name + ".part")
        have = part.stat().st_size if part.is_file() else 0
        request = urllib.request.Request(self._url(spec, item))
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        if have:
            request.add_header("Range", f"bytes={have}-")
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout_s)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have:  # the part is already complete
                response = None
            elif exc.code in (401, 403):
                hint = f" (accept the terms at {spec.terms_url})" if spec.terms_url else ""
                raise ModelError(
                    f"{spec.repo}: access refused (HTTP {exc.code}); set models.hf_token / HF_TOKEN to a token "
                    f"that may read it{hint}"
                ) from None
            else:
                raise ModelError(f"{item.repo or spec.repo}/{item.path}: HTTP {exc.code} from {self.hub_url}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ModelError(
                f"cannot reach {self.hub_url} ({reason}); offline? (models.hub_url may point to a mirror)"
            ) from None
        hub_sha = None
        if response is not None:
            with response:
                hub_sha = _lfs_sha256(response.headers)
                resumed = response.status == 206
                total = _total_size(response.headers, have if resumed else 0)
                mode = "ab" if resumed else "wb"
                done = have if resumed else 0
                with part.open(mode) as out:
                    try:
                        while block := response.read(CHUNK):
                            out.write(block)
                            done += len(block)
                            if progress is not None:
                                progress(item.path, done, total)
                    except (OSError, http.client.HTTPException) as exc:
                        log.debug("transfer broke off: %r", exc)
                if total is not None and done < total:
                    raise ModelError(
                        f"{item.path}: download interrupted at {done} of {total} bytes; run it again to resume"
                    )
        actual = sha256_of(part)
        expected = item.sha256 or hub_sha
        if expected and actual != expected:
            part.unlink()
            raise ModelError(
                f"{spec.repo}/{item.path}: SHA-256 {actual[:12]}… does not match the expected {expected[:12]}…; "
                "the file was discarded (run the download again)"
            )
        if item.size is not None and part.stat().st_size != item.size:
            part.unlink()
            raise ModelError(f"{spec.repo}/{item.path}: {part.stat().st_size} bytes, expected {item.size}")
        if item.md5 and _md5_of(part) != item.md5:
            part.unlink()
            raise ModelError(
                f"{spec.repo}/{item.path}: MD5 does not match the catalogue's {item.md5[:12]}…; the file was discarded "
                "(run the download again)"
            )
        if not item.sha256 and not item.md5:
            log.warning(
                "%s/%s has no pinned SHA-256; recorded %s (%s)",
                spec.repo,
                item.path,
                actual[:12],
                "the hub's" if hub_sha else "as downloaded",
            )
        part.replace(final)
        return {"sha256": actual, "size": final.stat().st_size, "pinned": bool(item.sha256)}


def _md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


PIPER_PREFIX = "piper:"
PIPER_REPO = "rhasspy/piper-voices"


def piper_spec(entry: dict[str, object], revision: str = "main") -> ModelSpec:
    """A catalogue entry for one voice of Piper's ``voices.json`` (its model and config; size and MD5 pinned)."""
    key = str(entry["key"])
    files = entry["files"]
    assert isinstance(files, dict)
    language = entry.get("language") or {}
    assert isinstance(language, dict)
    return ModelSpec(
        name=f"piper-{key}",
        engine="classic",
        repo=PIPER_REPO,
        revision=revision,
        files=tuple(
            ModelFile(path, size=int(info["size_bytes"]), md5=str(info["md5_digest"]))
            for path, info in sorted(files.items())
            if path.endswith((".onnx", ".onnx.json"))
        ),
        licence="see the voice's MODEL_CARD",
        description=f"Piper base voice: {language.get('name_english', '?')} ({language.get('code', '?')}), "
        f"{entry.get('quality', '?')} quality",
    )


@functools.cache
def piper_catalogue() -> dict[str, ModelSpec]:
    """Every voice of the Piper voice catalogue that ships in the ``wyoming-piper`` package, as ``piper-<name>``
    (``piper:<name>`` is accepted too)."""
    try:
        from importlib import resources

        data = json.loads(resources.files("wyoming_piper").joinpath("voices.json").read_text(encoding="utf-8"))
    except (ImportError, FileNotFoundError, ValueError) as exc:  # pragma: no cover - a core dependency
        log.warning("the Piper voice catalogue is not available (wyoming-piper): %s", exc)
        return {}
    return {f"piper-{key}": piper_spec(entry) for key, entry in sorted(data.items())}


def _lfs_sha256(headers) -> str | None:
    """The hub's SHA-256 of an LFS file (``X-Linked-Etag``), if it sent one."""
    value = (headers.get("X-Linked-Etag") or "").strip('"').removeprefix("W/").strip('"')
    return value if len(value) == 64 and all(c in "0123456789abcdef" for c in value) else None


def _total_size(headers, offset: int) -> int | None:
    content_range = headers.get("Content-Range", "")
    if "/" in content_range and content_range.rsplit("/", 1)[1].isdigit():
        return int(content_range.rsplit("/", 1)[1])
    length = headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def progress_printer(name: str, stream) -> Progress:
    """A progress callback that prints ``file  42 %  120/286 MB`` lines (every 5 %, or on a TTY in place)."""
    last: dict[str, int] = {}
    tty = hasattr(stream, "isatty") and stream.isatty()

    def report(path: str, done: int, total: int | None) -> None:
        step = int(done * 20 / total) if total else done // (50 * CHUNK)
        if last.get(path) == step and not (tty and total and done == total):
            return
        last[path] = step
        size = f"{done / 1e6:.0f}/{total / 1e6:.0f} MB" if total else f"{done / 1e6:.0f} MB"
        pct = f"{100 * done / total:5.1f} %" if total else ""
        line = f"{name} {path} {pct} {size}"
        stream.write("\r" + line if tty else line + "\n")
        if tty and total and done >= total:
            stream.write("\n")
        stream.flush()

    return report
