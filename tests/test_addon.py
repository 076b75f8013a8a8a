"""The Home Assistant add-on: packaging consistency, options → settings, voice reconciliation, run script."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from voiceclone_core import addon
from voiceclone_core.config import Settings, load_settings
from voiceclone_core.service import SpeechService, build_service

from .conftest import PARAGRAPH, espeak
from .test_mqtt import HomeAssistantStub

ROOT = Path(__file__).resolve().parent.parent
ADDON = ROOT / "addon"
# Supervisor's option types (contracts.md §2.2); a trailing ? marks an optional field.
TYPE_RE = re.compile(
    r"^(str|bool|email|url|password|port|(str|int|float)(\(-?[0-9.]*,-?[0-9.]*\))?|match\(.+\)|list\([^|()]+(\|[^|()]+)*\)"
    r"|device(\(.+\))?)\??$"
)


def config() -> dict[str, Any]:
    return yaml.safe_load((ADDON / "config.yaml").read_text())


def test_config_yaml_has_what_supervisor_and_the_issue_require() -> None:
    c = config()
    assert {"name", "version", "slug", "description", "arch"} <= c.keys()
    assert c["slug"] == "voiceclone" and set(c["arch"]) == {"amd64", "aarch64"}
    assert c["init"] is False
    assert "10200/tcp" in c["ports"] and "8099/tcp" in c["ports"]
    assert c["ingress"] is True and c.get("ingress_port", 8099) == addon.WEB_PORT  # 8099: Supervisor's default
    assert c["discovery"] == ["voiceclone", "wyoming"] and c["services"] == ["mqtt:want"]
    assert c["homeassistant_api"] is True and c["video"] is True
    assert {"media:rw", "share:ro", "addon_config:rw"} <= set(c["map"])
    assert list(ROOT.rglob("config.yaml")) == [ADDON / "config.yaml"]  # Supervisor searches recursively
    assert (ROOT / "repository.yaml").is_file()


def _schema_types(schema: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(schema, dict):
        return [t for k, v in schema.items() for t in _schema_types(v, f"{path}.{k}" if path else k)]
    if isinstance(schema, list):
        return [t for item in schema for t in _schema_types(item, f"{path}[]")]
    return [(path, str(schema))]


def test_schema_types_are_valid_and_options_match_schema() -> None:
    c = config()
    for key, kind in _schema_types(c["schema"]):
        assert TYPE_RE.match(kind), f"{key}: invalid schema type {kind!r}"
    for key in c["options"]:
        assert key in c["schema"], f"option {key} has no schema"
    for key, kind in c["schema"].items():
        if isinstance(kind, str) and kind.endswith("?"):
            assert key not in c["options"], f"{key} is optional but has a default (that makes it required)"


def test_every_option_is_translated_and_documented() -> None:
    c = config()
    tr = yaml.safe_load((ADDON / "translations" / "en.yaml").read_text())
    docs = (ADDON / "DOCS.md").read_text()
    for key, kind in c["schema"].items():
        entry = tr["configuration"][key]
        assert entry["name"] and entry["description"], key
        assert f"`{key}`" in docs, f"DOCS.md does not document {key}"
        if isinstance(kind, list) and isinstance(kind[0], dict):
            assert set(entry["fields"]) == set(kind[0]), f"{key}: fields not all translated"
            assert all(f["name"] and f["description"] for f in entry["fields"].values())
    assert set(tr["configuration"]) == set(c["schema"])
    assert set(tr["network"]) == set(c["ports"])


def test_build_files() -> None:
    build = yaml.safe_load((ADDON / "build.yaml").read_text())
    assert set(build["build_from"]) == {"amd64", "aarch64"}
    assert all("debian" in image for image in build["build_from"].values())
    dockerfile = (ADDON / "Dockerfile").read_text()
    assert re.search(r"^ARG BUILD_FROM=\S+debian", dockerfile, re.M) and "FROM ${BUILD_FROM}" in dockerfile


def test_every_option_becomes_a_setting(tmp_path: Path) -> None:
    options = {
        "voices": [],
        "default_voice": "mum",
        "default_media_players": ["media_player.kitchen", "media_player.hall"],
        "engine": "auto",
        "log_level": "debug",
        "cache_mb": 100,
        "watermark": False,
        "mqtt_host": "broker.lan",
        "mqtt_port": 8883,
        "mqtt_username": "vc",
        "mqtt_password": "pw",
        "mqtt_topic": "family_tts",
        "download_models": ["pocket-tts-english", "omnivoice"],
        "omnivoice_steps": 12,
        "piper_voices": ["it_IT-paola-medium"],
        "hf_token": "hf_x",
        "wyoming_discovery": True,  # read by addon-discovery (tests/test_addon_store.py), not a server setting
    }
    assert set(options) == set(config()["schema"])  # the test covers every option
    path = tmp_path / "voiceclone.yaml"
    addon.write_settings(addon.settings_from_options(options), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # holds the MQTT password
    s = load_settings(path, env={})
    assert s.data_dir == Path("/data") and s.models_dir == Path("/data/models")
    assert s.speech.default_voice == "mum" and s.engine.name == "auto" and s.log_level == "DEBUG"
    assert s.cache.max_mb == 100 and s.watermark.enabled is False
    assert addon.settings_from_options({"voices": []})["watermark"] == {"enabled": True}  # on unless turned off
    assert s.models.download == ["pocket-tts-english", "omnivoice", "piper:it_IT-paola-medium"]
    assert s.models.hf_token == "hf_x" and s.omnivoice.steps == 12
    assert (s.mqtt.host, s.mqtt.port, s.mqtt.username, s.mqtt.password) == ("broker.lan", 8883, "vc", "pw")
    assert s.mqtt.base_topic == "family_tts"
    assert s.mqtt.default_target == "media_player.kitchen,media_player.hall"
    assert s.wyoming.uri == "tcp://0.0.0.0:10200" and s.wyoming.zeroconf is False
    assert s.web.enabled and s.web.port == 8099
    assert s.homeassistant.media_dir == Path("/media/voiceclone")


def test_supervisor_mqtt_service_is_used_when_no_broker_is_set(tmp_path: Path) -> None:
    service = {"host": "core-mosquitto", "port": 1883, "username": "addons", "password": "x", "ssl": False}
    s_tree = addon.settings_from_options({"voices": []}, service)
    assert s_tree["mqtt"]["host"] == "core-mosquitto" and s_tree["mqtt"]["username"] == "addons"
    own = addon.settings_from_options({"mqtt_host": "mine"}, service)
    assert own["mqtt"]["host"] == "mine"
    assert "host" not in addon.settings_from_options({}, None)["mqtt"]  # no broker: bridge stays off


def test_supervisor_mqtt_refusal_keeps_the_bridge_off(monkeypatch: pytest.MonkeyPatch) -> None:
    stub = HomeAssistantStub()
    try:
        monkeypatch.setattr(addon, "SUPERVISOR", stub.url)
        stub.status = 403
        assert addon.supervisor_mqtt("tok") is None  # refused: the bridge stays off, nothing crashes
        assert addon.supervisor_mqtt(None) is None
    finally:
        stub.close()


@pytest.mark.parametrize("value", ["../etc/passwd", "/media/../etc/passwd", "/etc/passwd", "/data/voices/x.wav", ""])
def test_samples_outside_media_and_share_are_refused(tmp_path: Path, value: str) -> None:
    roots = (tmp_path / "media", tmp_path / "share")
    value = value.replace("/media", str(roots[0]))
    assert addon.resolve_sample(value, roots) is None


@pytest.fixture
def media(tmp_path: Path, speech_wav: Path, other_speech_wav: Path) -> Path:
    root = tmp_path / "media"
    (root / "voices").mkdir(parents=True)
    for name, src in (("mum.wav", speech_wav), ("dad.wav", other_speech_wav)):
        (root / "voices" / name).write_bytes(src.read_bytes())
    espeak("Hello there.", root / "voices" / "short.wav")
    return root


@pytest.fixture
def service(settings: Settings, fake_engine):
    svc = build_service(settings, engine=fake_engine)
    yield svc
    svc.close()


def test_reconcile_adds_skips_changes_and_removes(
    service: SpeechService, media: Path, fake_engine, speech_wav: Path, other_speech_wav: Path
) -> None:
    service.enroll("Cli Voice", speech_wav, consent="someone")  # enrolled another way: never touched
    roots = (media,)
    entries = [
        {"name": "Mum", "id": "mum", "sample": "voices/mum.wav", "consent": "Mum", "transcript": PARAGRAPH},
        {"name": "Dad", "sample": str(media / "voices" / "dad.wav"), "consent": "Dad", "language": "en"},
        {"name": "Kid", "sample": "voices/short.wav", "consent": "Kid"},  # too short: rejected
        {"name": "Ghost", "sample": "../../etc/passwd", "consent": "?"},  # outside the media folder
    ]
    wanted, invalid = addon.parse_voices(entries, roots)
    assert [v.id for v in wanted] == ["mum", "dad", "kid"] and set(invalid) == {"ghost"}
    report = addon.reconcile(service, wanted, keep=set(invalid))
    assert report.enrolled == ["mum", "dad"] and "speech" in report.failed["kid"]
    assert {p.id for p in service.voices()} == {"cli_voice", "mum", "dad"}
    prepared = fake_engine.prepared
    # same options again: nothing is re-enrolled
    report = addon.reconcile(service, addon.parse_voices(entries, roots)[0])
    assert report.enrolled == [] and set(report.unchanged) == {"mum", "dad"} and fake_engine.prepared == prepared
    # Dad's recording changes, Mum (explicit id) is renamed, Kid's entry is dropped
    (media / "voices" / "dad.wav").write_bytes(speech_wav.read_bytes())
    entries[0]["name"] = "Mother"
    report = addon.reconcile(service, addon.parse_voices(entries[:2], roots)[0])
    assert report.enrolled == ["dad"] and report.renamed == ["mum"] and service.voice("mum").name == "Mother"
    assert service.voice("dad").revision == 2
    # Dad leaves the list: his voice is deleted; the CLI voice stays
    report = addon.reconcile(service, addon.parse_voices(entries[:1], roots)[0])
    assert report.deleted == ["dad"] and {p.id for p in service.voices()} == {"cli_voice", "mum"}


def test_reconcile_keeps_a_voice_whose_entry_became_invalid(service: SpeechService, media: Path) -> None:
    roots = (media,)
    addon.reconcile(
        service, addon.parse_voices([{"name": "Mum", "sample": "voices/mum.wav", "consent": "M"}], roots)[0]
    )
    wanted, invalid = addon.parse_voices([{"name": "Mum", "sample": "/etc/passwd", "consent": "M"}], roots)
    report = addon.reconcile(service, wanted, keep=set(invalid))
    assert report.deleted == [] and [v.id for v in service.voices()] == ["mum"]


@pytest.mark.slow
def test_addon_prepare_command_end_to_end(tmp_path: Path, media: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from voiceclone_core.cli import main

    options = {
        "voices": [
            {"name": "Mum", "sample": "voices/mum.wav", "consent": "Mum", "transcript": PARAGRAPH},
            {"name": "Kid", "sample": "voices/short.wav", "consent": "Kid"},
        ],
        "log_level": "info",
        "engine": "classic",
    }
    (tmp_path / "options.json").write_text(json.dumps(options))
    data = tmp_path / "data"
    args = [
        "addon-prepare",
        "--options",
        str(tmp_path / "options.json"),
        "--output",
        str(tmp_path / "vc.yaml"),
        "--data-dir",
        str(data),
        "--sample-root",
        str(media),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "1 enrolled" in out and "1 failed" in out and "voice kid not available" in out
    assert (data / "voices" / "mum" / "profile.json").is_file()
    assert load_settings(tmp_path / "vc.yaml", env={}).data_dir == data
    assert main(args) == 0
    assert "0 enrolled, 1 unchanged" in capsys.readouterr().out


def test_compose_file_serves_wyoming_with_an_nvidia_gpu_and_volumes(tmp_path: Path) -> None:
    compose = yaml.safe_load((ROOT / "config" / "docker-compose.yml").read_text())
    svc = compose["services"]["voiceclone"]
    assert svc["build"]["dockerfile"] == "config/Dockerfile" and (ROOT / "config" / "Dockerfile").is_file()
    devices = svc["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert {"voiceclone-data", "voiceclone-models"} <= set(compose["volumes"])
    env = svc["environment"]
    assert env["VOICECLONE_WYOMING__URI"].endswith(":10200") and env["VOICECLONE_ENGINE__NAME"] == "auto"
    # the environment it sets is valid for our settings loader, with the example file mounted as config
    s = load_settings(ROOT / "config" / "voiceclone.yaml", env={k: str(v) for k, v in env.items()})
    assert s.engine.device == "cuda" and s.models_dir == Path("/models")
    mounted = [v.split(":")[0] for v in svc["volumes"]]
    assert "./voiceclone.yaml" in mounted and (ROOT / "config" / "voiceclone.yaml").is_file()
