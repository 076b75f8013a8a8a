"""The voice library: enroll, list, get, rename and delete household voices on disk.

Layout: ``<voices_dir>/<voice_id>/`` holds ``profile.json``, ``reference.wav`` (the cleaned enrollment audio)
and ``prompts/<engine>.npz`` (what each engine's ``prepare`` learned, tagged with the engine's name and version).
Voice samples are biometric data: the folders are private to the service (0700/0600), enrollment requires a consent
record, and deletion removes every file of the voice, including its cached renderings.

The library holds no engine: the calls that need one (``enroll``, ``prompt``, ``prepare_missing``) take it, so
listing, renaming and deleting never load a model.

A voice is written whole or not at all: enrollment builds a staging folder, then swaps it in with renames;
an interrupted swap is repaired when the library is opened, so the previous version survives any failure.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from voiceclone_core import audio
from voiceclone_core.engines.base import Engine, EngineError, EnrollmentSample, VoicePrompt

log = logging.getLogger(__name__)

VOICE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,47}$")
PROFILE = "profile.json"
REFERENCE = "reference.wav"
PROMPTS = "prompts"
_STAGING = ".staging-"
_TRASH = ".trash-"
_DELETING = ".deleting-"


class VoiceError(ValueError):
    """A voice request is invalid (bad id or name, no consent)."""


class VoiceNotFound(VoiceError, LookupError):
    """No voice with that id."""


@dataclass(frozen=True)
class Consent:
    """Who agreed to their voice being cloned, and when."""

    given_by: str
    given_at: str
    statement: str = "I agree that this household service may store my voice sample and speak in my voice."


@dataclass
class VoiceProfile:
    """Everything known about one enrolled voice (stored as ``profile.json``)."""

    id: str
    name: str
    language: str
    consent: Consent
    transcript: str | None = None
    created: str = ""
    updated: str = ""
    revision: int = 1
    sample_sha256: str = ""
    source_sha256: str = ""
    origin: str = "cli"
    quality: dict[str, Any] = field(default_factory=dict)
    prompts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False)

    @classmethod
    def from_json(cls, data: str) -> VoiceProfile:
        raw = json.loads(data)
        raw["consent"] = Consent(**raw["consent"])
        return cls(**raw)


def slugify(name: str) -> str:
    """Voice id from a display name: ``"Mum's voice"`` -> ``mum_s_voice``; non-Latin names get a short code."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")[:40].strip("_")
    return slug or "voice_" + hashlib.sha256(name.strip().encode("utf-8")).hexdigest()[:6]


def source_digest(sample: bytes | str | os.PathLike[str]) -> str:
    """SHA-256 of a recording as submitted (bytes or file), to tell whether a sample changed."""
    if isinstance(sample, bytes | bytearray | memoryview):
        return hashlib.sha256(bytes(sample)).hexdigest()
    digest = hashlib.sha256()
    with open(sample, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_voice_id(voice_id: str) -> str:
    """Return ``voice_id`` if it is a valid slug (never a path), else raise :class:`VoiceError`."""
    if not isinstance(voice_id, str) or not VOICE_ID_RE.fullmatch(voice_id):
        raise VoiceError(f"invalid voice id {voice_id!r}: use lowercase letters, digits and _ (max 48)")
    return voice_id


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_private(path: Path, data: bytes) -> None:
    """Write a file atomically (temp file, fsync, rename) with owner-only permissions."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def make_private_dir(path: Path) -> None:
    """Create ``path`` and every missing folder above it owner-only (0700), whatever the umask; folders that already
    exist keep their mode (the data folder may be one the user chose, such as a home folder)."""
    missing = []
    here = Path(path)
    while not here.exists() and here.parent != here:
        missing.append(here)
        here = here.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:  # made meanwhile by another process: its mode is its own
            continue
        os.chmod(folder, 0o700)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class VoiceLibrary:
    """Household voices on disk."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._listeners: list[Callable[[str, str], None]] = []
        self._lock = threading.RLock()
        make_private_dir(self.root)  # the data folder above it too, when this creates it
        os.chmod(self.root, 0o700)
        self._recover()

    # -- housekeeping ---------------------------------------------------------------------------------------
    def _recover(self) -> None:
        """Finish or roll back swaps interrupted by a crash; drop abandoned staging folders."""
        for entry in self.root.iterdir():
            if entry.name.startswith(_TRASH):
                voice_id = entry.name[len(_TRASH) :].rsplit("-", 1)[0]
                final = self.root / voice_id
                if final.exists():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.rename(final)
                    log.warning("restored voice %s after an interrupted enrollment", voice_id)
        for entry in self.root.iterdir():
            if entry.name.startswith((_STAGING, _DELETING)):
                shutil.rmtree(entry, ignore_errors=True)

    def subscribe(self, listener: Callable[[str, str], None]) -> None:
        """Call ``listener(event, voice_id)`` after each change: ``enrolled``, ``renamed`` or ``deleted``."""
        self._listeners.append(listener)

    def _notify(self, event: str, voice_id: str) -> None:
        for listener in self._listeners:
            try:
                listener(event, voice_id)
            except Exception:  # a listener's failure must not undo or hide the change itself
                log.exception("voice listener failed on %s %s", event, voice_id)

    def _dir(self, voice_id: str) -> Path:
        return self.root / check_voice_id(voice_id)

    # -- queries -------------------------------------------------------------------------------------------
    def list(self) -> list[VoiceProfile]:
        """All voices, sorted by display name."""
        out = []
        for entry in sorted(self.root.iterdir()):
            if entry.is_dir() and VOICE_ID_RE.fullmatch(entry.name) and (entry / PROFILE).is_file():
                try:
                    out.append(VoiceProfile.from_json((entry / PROFILE).read_text(encoding="utf-8")))
                except (ValueError, KeyError, TypeError) as exc:
                    log.error("skipping voice %s: unreadable profile (%s)", entry.name, exc)
        return sorted(out, key=lambda p: p.name.lower())

    def get(self, voice_id: str) -> VoiceProfile:
        """The profile of one voice, or :class:`VoiceNotFound`."""
        path = self._dir(voice_id) / PROFILE
        try:
            return VoiceProfile.from_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise VoiceNotFound(f"unknown voice {voice_id!r}") from None

    def exists(self, voice_id: str) -> bool:
        return VOICE_ID_RE.fullmatch(voice_id or "") is not None and (self.root / voice_id / PROFILE).is_file()

    def reference_audio(self, voice_id: str) -> tuple[np.ndarray, int]:
        return audio.decode(self._dir(voice_id) / REFERENCE)

    def prompt(self, voice_id: str, engine: Engine) -> VoicePrompt:
        """``engine``'s prompt for a voice; prepared from the reference audio (and saved) when there is none yet.

        Only the prompt file is written, never the profile, so a synthesis request never rewrites a voice's record.
        """
        saved = self._saved_prompt(voice_id, engine)
        if saved is not None:
            return saved
        with self._lock:
            saved = self._saved_prompt(voice_id, engine)  # another thread may have prepared it meanwhile
            if saved is not None:
                return saved
            profile = self.get(voice_id)
            x, sr = self.reference_audio(voice_id)
            prompt = engine.prepare(EnrollmentSample(x, sr, profile.language, profile.transcript))
            prompts = self._dir(voice_id) / PROMPTS
            prompts.mkdir(exist_ok=True, mode=0o700)
            _write_private(prompts / f"{engine.name}.npz", prompt.to_bytes())
            log.info("prepared voice %s for engine %s %s", voice_id, prompt.engine, prompt.engine_version)
            return prompt

    def _saved_prompt(self, voice_id: str, engine: Engine) -> VoicePrompt | None:
        path = self._dir(voice_id) / PROMPTS / f"{engine.name}.npz"
        try:
            prompt = VoicePrompt.from_bytes(path.read_bytes())
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, OSError) as exc:
            log.warning("voice %s: unreadable %s prompt (%s); preparing it again", voice_id, engine.name, exc)
            return None
        return prompt if (prompt.engine, prompt.engine_version) == (engine.name, engine.version) else None

    def prepare_missing(self, engine: Engine) -> list[str]:
        """Prepare every voice that has no prompt for ``engine`` yet (after an engine switch); the ids prepared."""
        done = []
        for profile in self.list():
            if self._saved_prompt(profile.id, engine) is None:
                try:
                    self.prompt(profile.id, engine)
                    done.append(profile.id)
                except (VoiceNotFound, EngineError, audio.AudioError) as exc:
                    log.error("voice %s cannot be prepared for engine %s: %s", profile.id, engine.name, exc)
        return done

    @staticmethod
    def _prompt_info(prompt: VoicePrompt) -> dict[str, Any]:
        return {"version": prompt.engine_version, "digest": prompt.digest(), "created": _now(), **prompt.meta}

    # -- changes -------------------------------------------------------------------------------------------
    @staticmethod
    def check_enrollment(name: str, consent: str | None, voice_id: str | None) -> tuple[str, str, str]:
        """The cleaned display name, consent and voice id of an enrollment, or :class:`VoiceError` saying what is wrong.

        Cheap (no audio, no engine): callers check before loading anything.
        """
        name = (name or "").strip() if isinstance(name, str) else ""
        if not name or len(name) > 64:
            raise VoiceError("a voice needs a display name of 1 to 64 characters")
        consent = str(consent or "").strip()
        if not consent:
            raise VoiceError("enrollment needs recorded consent: say who agreed to this voice being cloned")
        return name, consent, check_voice_id(voice_id or slugify(name))

    def enroll(
        self,
        name: str,
        sample: bytes | str | os.PathLike[str],
        *,
        engine: Engine,
        consent: str | None,
        language: str,
        transcript: str | None = None,
        voice_id: str | None = None,
        origin: str = "cli",
    ) -> tuple[VoiceProfile, audio.QualityReport]:
        """Enroll (or re-enroll) a voice from a recording, prepared for ``engine``. Nothing changes unless every step
        succeeds.

        Raises :class:`VoiceError` (no consent, bad name/id), :class:`audio.SampleRejected` (quality),
        :class:`audio.AudioError` (unreadable) or :class:`EngineError` (analysis failed); in every case the previous
        version of the voice is untouched.
        """
        name, consent, voice_id = self.check_enrollment(name, consent, voice_id)
        transcript = (transcript or "").strip() or None
        clean, sr, report = audio.clean_for_enrollment(sample, target_sr=engine.sample_rate)
        try:
            prompt = engine.prepare(EnrollmentSample(clean, sr, language, transcript))
        except (ValueError, np.linalg.LinAlgError) as exc:
            raise EngineError(f"could not learn this voice: {exc}") from exc
        wav = audio.encode_wav(clean, sr)
        with self._lock:
            previous = self.get(voice_id) if self.exists(voice_id) else None
            now = _now()
            profile = VoiceProfile(
                id=voice_id,
                name=name,
                language=language,
                consent=Consent(given_by=consent, given_at=now),
                transcript=transcript,
                created=previous.created if previous else now,
                updated=now,
                revision=previous.revision + 1 if previous else 1,
                sample_sha256=hashlib.sha256(wav).hexdigest(),
                source_sha256=source_digest(sample),
                origin=origin,
                quality=report.to_dict(),
                prompts={engine.name: self._prompt_info(prompt)},
            )
            self._commit(voice_id, profile, wav, prompt)
        self._notify("enrolled", voice_id)
        log.info("enrolled voice %s (%s), revision %d", voice_id, name, profile.revision)
        return profile, report

    def _commit(self, voice_id: str, profile: VoiceProfile, wav: bytes, prompt: VoicePrompt) -> None:
        staging = self.root / f"{_STAGING}{voice_id}-{secrets.token_hex(4)}"
        staging.mkdir(mode=0o700)
        try:
            (staging / PROMPTS).mkdir(mode=0o700)
            _write_private(staging / REFERENCE, wav)
            _write_private(staging / PROMPTS / f"{prompt.engine}.npz", prompt.to_bytes())
            _write_private(staging / PROFILE, profile.to_json().encode("utf-8"))
            self._swap_in(voice_id, staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _swap_in(self, voice_id: str, staging: Path) -> None:
        final = self.root / voice_id
        trash = self.root / f"{_TRASH}{voice_id}-{secrets.token_hex(4)}"
        if final.exists():
            final.rename(trash)
        try:
            staging.rename(final)
        except BaseException:
            if trash.exists() and not final.exists():
                trash.rename(final)
            raise
        _fsync_dir(self.root)
        shutil.rmtree(trash, ignore_errors=True)

    def rename(self, voice_id: str, new_name: str) -> VoiceProfile:
        """Change a voice's display name (its id stays)."""
        new_name = (new_name or "").strip()
        if not new_name or len(new_name) > 64:
            raise VoiceError("a voice needs a display name of 1 to 64 characters")
        with self._lock:
            profile = self.get(voice_id)
            profile.name = new_name
            profile.updated = _now()
            _write_private(self._dir(voice_id) / PROFILE, profile.to_json().encode("utf-8"))
        self._notify("renamed", voice_id)
        return profile

    def delete(self, voice_id: str) -> None:
        """Remove every file of a voice (listeners remove what they hold of it, e.g. cached audio)."""
        with self._lock:
            vdir = self._dir(voice_id)
            if not (vdir / PROFILE).is_file():
                raise VoiceNotFound(f"unknown voice {voice_id!r}")
            trash = self.root / f"{_DELETING}{voice_id}-{secrets.token_hex(4)}"
            vdir.rename(trash)
            shutil.rmtree(trash)
        self._notify("deleted", voice_id)
        log.info("deleted voice %s", voice_id)
