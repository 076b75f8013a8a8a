"""Everything the server writes about a family's voices is private to it: folders 0700, files 0600.

The reliability probe found three exceptions: the data folder itself (0755, made through ``mkdir(parents=True)``
with the umask), ``mqtt-discovered-voices.json`` (0644; it lists the voice ids, i.e. family members' names) and the
announcement WAVs in ``homeassistant.media_dir`` (0644; speech in a cloned voice). Each is checked here under a
permissive umask (0000), so a mode that only held thanks to the usual 022 would show.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from voiceclone_core.config import Settings, load_settings
from voiceclone_core.homeassistant import MediaStore
from voiceclone_core.mqtt.bridge import MqttBridge
from voiceclone_core.service import build_service
from voiceclone_core.service.cache import AudioCache
from voiceclone_core.voices import VoiceLibrary, make_private_dir


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_the_data_folder_is_made_private_with_the_folders_above_it(tmp_path: Path, fake_engine) -> None:
    settings = load_settings(env={}, overrides={"data_dir": str(tmp_path / "new" / "home" / "data")})
    service = build_service(settings, engine=fake_engine)
    try:
        for folder in (tmp_path / "new", tmp_path / "new" / "home", settings.data_dir, settings.voices_dir):
            assert mode(folder) == 0o700, folder
        assert mode(settings.cache_dir) == 0o700
    finally:
        service.close()


def test_a_data_folder_that_exists_keeps_its_mode(tmp_path: Path) -> None:
    """The data folder may be one the user chose (a home folder): it is not changed, only what is made in it."""
    data = tmp_path / "mine"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    VoiceLibrary(data / "voices")
    AudioCache(data / "cache", 1 << 20)
    assert mode(data) == 0o755
    assert mode(data / "voices") == 0o700 and mode(data / "cache") == 0o700


def test_the_cache_alone_makes_a_private_data_folder(tmp_path: Path) -> None:
    AudioCache(tmp_path / "data" / "cache", 1 << 20)
    assert mode(tmp_path / "data") == 0o700 and mode(tmp_path / "data" / "cache") == 0o700


def test_make_private_dir_is_idempotent(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    make_private_dir(target)
    make_private_dir(target)  # exists: nothing to do, no error
    assert mode(tmp_path / "a") == mode(target) == 0o700


def test_the_discovered_voices_file_is_private(settings: Settings, fake_engine, speech_wav: Path) -> None:
    service = build_service(settings, engine=fake_engine)
    try:
        service.enroll("Mum", speech_wav, consent="Mum")
        path = settings.data_dir / "mqtt-discovered-voices.json"
        path.write_text("[]")  # as an older version left it: world-readable
        os.chmod(path, 0o644)
        bridge = MqttBridge(service)
        bridge.discovery_payload()
        assert json.loads(path.read_text()) == ["mum"]
        assert mode(path) == 0o600
        assert mode(settings.data_dir) == 0o700
        assert not [p.name for p in settings.data_dir.iterdir() if p.name.endswith(".tmp")]
    finally:
        service.close()


def test_announcements_are_private(tmp_path: Path) -> None:
    store = MediaStore(tmp_path / "media" / "voiceclone", "media-source://media_source/local/voiceclone", 60)
    clip = np.zeros(1600, np.float32)
    path, media_id = store.save(clip, 16000, "mum")
    assert path.is_file() and media_id.endswith(path.name)
    assert mode(path) == 0o600
    assert mode(tmp_path / "media" / "voiceclone") == 0o700
    again, _ = store.save(clip, 16000, "mum")  # the folder exists now: files are still private
    assert mode(again) == 0o600
