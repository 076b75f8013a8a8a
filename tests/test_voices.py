"""Voice library: enrollment, rejection, atomicity, rename, deletion, privacy."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from voiceclone_core import audio
from voiceclone_core.engines.base import EngineError, VoicePrompt
from voiceclone_core.voices import (
    VoiceError,
    VoiceLibrary,
    VoiceNotFound,
    check_voice_id,
    slugify,
)

from .conftest import PARAGRAPH, espeak


@pytest.fixture
def library(tmp_path: Path) -> VoiceLibrary:
    return VoiceLibrary(tmp_path / "voices")


@pytest.fixture
def enroll(library: VoiceLibrary, fake_engine):
    """``library.enroll`` with the fake engine and English unless told otherwise."""

    def run(name: str, sample, **kw):
        kw.setdefault("language", "en")
        return library.enroll(name, sample, engine=fake_engine, **kw)

    return run


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_enroll_writes_profile_reference_and_prompt(
    library: VoiceLibrary, enroll, fake_engine, speech_wav: Path
) -> None:
    profile, report = enroll("Mum", speech_wav, consent="Mum herself", transcript=PARAGRAPH, language="en")
    assert profile.id == "mum" and report.accepted
    vdir = library.root / "mum"
    assert {p.name for p in vdir.iterdir()} == {"profile.json", "reference.wav", "prompts"}
    saved = json.loads((vdir / "profile.json").read_text())
    assert saved["consent"]["given_by"] == "Mum herself" and saved["consent"]["given_at"]
    assert saved["transcript"] == PARAGRAPH and saved["language"] == "en"
    assert saved["prompts"]["fake"]["version"] == "1" and saved["prompts"]["fake"]["digest"]
    assert saved["quality"]["verdict"] in ("ok", "warn")
    ref, sr = audio.decode(vdir / "reference.wav")
    assert sr == fake_engine.sample_rate and len(ref) / sr > 5
    assert [p.id for p in library.list()] == ["mum"]
    assert library.get("mum").name == "Mum"
    assert library.prompt("mum", fake_engine).arrays["pitch"].shape == (1,)


def test_files_are_private(library: VoiceLibrary, speech_wav: Path, enroll) -> None:
    enroll("Dad", speech_wav, consent="Dad")
    for p in [library.root, *library.root.rglob("*")]:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode & 0o077 == 0, f"{p} is readable by others ({oct(mode)})"


def test_enroll_without_consent_is_refused(library: VoiceLibrary, speech_wav: Path, enroll) -> None:
    for consent in (None, "", "   "):
        with pytest.raises(VoiceError, match="consent") as info:
            enroll("Mum", speech_wav, consent=consent)
        assert "--" not in str(info.value)  # worded for every door, not for the command line
    assert library.list() == []
    assert list(library.root.iterdir()) == []


@pytest.mark.parametrize("bad", ["../etc", "a/b", "Mum", "", "x" * 60, ".hidden", "_x", "mum\n"])
def test_voice_ids_are_slugs_never_paths(bad: str) -> None:
    with pytest.raises(VoiceError):
        check_voice_id(bad)


def test_slugify() -> None:
    assert slugify("Mum's Voice") == "mum_s_voice"
    assert slugify("  Éloïse  ") == "eloise"
    zh = slugify("妈妈")
    assert check_voice_id(zh) == zh and zh.startswith("voice_") and zh == slugify("妈妈")
    assert slugify("爸爸") != zh


def test_rejected_sample_saves_nothing_and_keeps_old_voice(
    library: VoiceLibrary, speech_wav: Path, tmp_path: Path, enroll
) -> None:
    enroll("Mum", speech_wav, consent="Mum")
    before = tree(library.root)
    short = espeak("Hello there.", tmp_path / "short.wav")
    with pytest.raises(audio.SampleRejected) as info:
        enroll("Mum", short, consent="Mum")
    assert any("speech" in r for r in info.value.report.reasons)
    with pytest.raises(audio.AudioError):
        enroll("Mum", b"not audio at all", consent="Mum")
    assert tree(library.root) == before


def test_failure_mid_enrollment_leaves_previous_version_intact(
    library: VoiceLibrary,
    speech_wav: Path,
    other_speech_wav: Path,
    fake_engine,
    monkeypatch: pytest.MonkeyPatch,
    enroll,
) -> None:
    enroll("Mum", speech_wav, consent="Mum")
    before = tree(library.root)
    # 1. the engine fails while learning the new sample
    fake_engine.fail_prepare = EngineError("boom")
    with pytest.raises(EngineError):
        enroll("Mum", other_speech_wav, consent="Mum")
    fake_engine.fail_prepare = None
    assert tree(library.root) == before
    # 2. the disk write fails half-way through the new version's files
    import voiceclone_core.voices as voices_mod

    real_write = voices_mod._write_private
    calls = {"n": 0}

    def failing_write(path: Path, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(voices_mod, "_write_private", failing_write)
    with pytest.raises(OSError):
        enroll("Mum", other_speech_wav, consent="Mum")
    assert tree(library.root) == before
    # 3. the swap itself is interrupted after the old version was moved aside (crash between renames)
    monkeypatch.setattr(voices_mod, "_write_private", real_write)
    real_rename = Path.rename

    def crash_on_staging_rename(self: Path, target: Path):
        if self.name.startswith(".staging-"):
            raise KeyboardInterrupt("power cut")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", crash_on_staging_rename)
    with pytest.raises(KeyboardInterrupt):
        enroll("Mum", other_speech_wav, consent="Mum")
    monkeypatch.setattr(Path, "rename", real_rename)
    reopened = VoiceLibrary(library.root)
    assert tree(reopened.root) == before
    assert reopened.get("mum").revision == 1


def test_crash_recovery_restores_trash_copy(library: VoiceLibrary, speech_wav: Path, fake_engine, enroll) -> None:
    enroll("Mum", speech_wav, consent="Mum")
    before = tree(library.root)
    (library.root / "mum").rename(library.root / ".trash-mum-abcd1234")  # state after a crash mid-swap
    (library.root / ".staging-mum-ffff0000").mkdir()
    reopened = VoiceLibrary(library.root)
    assert tree(reopened.root) == before
    assert [p.name for p in reopened.root.iterdir()] == ["mum"]


def test_reenrollment_bumps_revision_and_replaces_prompt(
    library: VoiceLibrary, speech_wav: Path, other_speech_wav: Path, enroll
) -> None:
    p1, _ = enroll("Mum", speech_wav, consent="Mum")
    d1 = library.get("mum").prompts["fake"]["digest"]
    p2, _ = enroll("Mum", other_speech_wav, consent="Mum again")
    assert p2.revision == 2 and p2.created == p1.created
    assert library.get("mum").prompts["fake"]["digest"] != d1
    assert library.get("mum").consent.given_by == "Mum again"


def test_rename_and_delete_remove_every_file(library: VoiceLibrary, speech_wav: Path, enroll) -> None:
    events: list[tuple[str, str]] = []
    library.subscribe(lambda event, vid: events.append((event, vid)))
    enroll("Mum", speech_wav, consent="Mum")
    enroll("Dad", speech_wav, consent="Dad")
    assert library.rename("mum", "Mother").name == "Mother"
    assert library.get("mum").name == "Mother"
    with pytest.raises(VoiceError):
        library.rename("mum", "")
    library.delete("mum")
    assert events == [("enrolled", "mum"), ("enrolled", "dad"), ("renamed", "mum"), ("deleted", "mum")]
    assert not (library.root / "mum").exists()
    assert not any("mum" in p.name for p in library.root.iterdir())
    assert [p.id for p in library.list()] == ["dad"]
    with pytest.raises(VoiceNotFound):
        library.get("mum")
    with pytest.raises(VoiceNotFound):
        library.delete("mum")


def test_prompt_is_prepared_again_when_engine_version_changes(
    library: VoiceLibrary, enroll, speech_wav: Path, fake_engine
) -> None:
    enroll("Mum", speech_wav, consent="Mum")
    assert fake_engine.prepared == 1
    library.prompt("mum", fake_engine)
    assert fake_engine.prepared == 1  # persisted prompt reused, no re-analysis
    profile_before = (library.root / "mum" / "profile.json").read_bytes()
    fake_engine.version = "2"
    library.prompt("mum", fake_engine)
    assert fake_engine.prepared == 2
    saved = VoicePrompt.from_bytes((library.root / "mum" / "prompts" / "fake.npz").read_bytes())
    assert saved.engine_version == "2"
    # preparing inside a request writes the prompt file only, never the voice's record
    assert (library.root / "mum" / "profile.json").read_bytes() == profile_before
    library.prompt("mum", fake_engine)
    assert fake_engine.prepared == 2


def test_prepare_missing_prepares_voices_of_another_engine(
    library: VoiceLibrary, enroll, speech_wav: Path, fake_engine
) -> None:
    enroll("Mum", speech_wav, consent="Mum")
    enroll("Dad", speech_wav, consent="Dad")
    assert library.prepare_missing(fake_engine) == []
    fake_engine.version = "2"
    assert sorted(library.prepare_missing(fake_engine)) == ["dad", "mum"]
    assert library.prepare_missing(fake_engine) == [] and fake_engine.prepared == 4


def test_failing_listener_does_not_undo_a_deletion(library: VoiceLibrary, speech_wav: Path, enroll) -> None:
    enroll("Mum", speech_wav, consent="Mum")

    def broken(event: str, voice_id: str) -> None:
        raise RuntimeError("listener bug")

    library.subscribe(broken)
    library.delete("mum")
    assert library.list() == [] and not (library.root / "mum").exists()
