"""What Home Assistant's and HACS's validators check, run offline on our files with Home Assistant's own schemas
where it ships them (hassfest and the HACS action run only upstream; see the README's "Validation" notes)."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest
import yaml
from homeassistant.const import Platform
from homeassistant.helpers import service as ha_service

ROOT = Path(__file__).resolve().parents[1]
INTEGRATION = ROOT / "custom_components" / "voiceclone"
MANIFEST = json.loads((INTEGRATION / "manifest.json").read_text())
STRINGS = json.loads((INTEGRATION / "translations" / "en.json").read_text())
SOURCES = {p.name: p.read_text() for p in INTEGRATION.glob("*.py")}

# Integration Quality Scale rules (core's script/hassfest/quality_scale.py, 2025-era)
BRONZE = [
    "action-setup",
    "appropriate-polling",
    "brands",
    "common-modules",
    "config-flow-test-coverage",
    "config-flow",
    "dependency-transparency",
    "docs-actions",
    "docs-high-level-description",
    "docs-installation-instructions",
    "docs-removal-instructions",
    "entity-event-setup",
    "entity-unique-id",
    "has-entity-name",
    "runtime-data",
    "test-before-configure",
    "test-before-setup",
    "unique-config-entry",
    "docs-conditions",
    "docs-triggers",
]
SILVER = [
    "action-exceptions",
    "config-entry-unloading",
    "docs-configuration-parameters",
    "docs-installation-parameters",
    "entity-unavailable",
    "integration-owner",
    "log-when-unavailable",
    "parallel-updates",
    "reauthentication-flow",
    "test-coverage",
]
GOLD = [
    "devices",
    "diagnostics",
    "discovery-update-info",
    "discovery",
    "docs-data-update",
    "docs-examples",
    "docs-known-limitations",
    "docs-supported-devices",
    "docs-supported-functions",
    "docs-troubleshooting",
    "docs-use-cases",
    "dynamic-devices",
    "entity-category",
    "entity-device-class",
    "entity-disabled-by-default",
    "entity-translations",
    "exception-translations",
    "icon-translations",
    "reconfiguration-flow",
    "repair-issues",
    "stale-devices",
]


def test_manifest_has_what_hassfest_and_hacs_require_in_hassfest_order() -> None:
    keys = list(MANIFEST)
    assert keys[:2] == ["domain", "name"] and keys[2:] == sorted(keys[2:]), "domain, name, then alphabetical"
    assert MANIFEST["domain"] == INTEGRATION.name
    for key in ("documentation", "issue_tracker"):
        assert MANIFEST[key].startswith("https://") and "home-assistant.io" not in MANIFEST[key], key
    assert MANIFEST["codeowners"] and all(re.fullmatch(r"@[\w-]+(/[\w-]+)?", c) for c in MANIFEST["codeowners"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", MANIFEST["version"])
    assert MANIFEST["iot_class"] in {"local_polling", "local_push"} and MANIFEST["integration_type"] == "service"
    assert MANIFEST["config_flow"] is True
    assert all("torch" not in r for r in MANIFEST["requirements"])  # runs inside HA: tiny requirements only


def test_hacs_repository_rules() -> None:
    hacs = json.loads((ROOT / "hacs.json").read_text())
    allowed = {"name", "content_in_root", "country", "filename", "hacs", "hide_default_branch", "homeassistant",
               "persistent_directory", "render_readme", "zip_release"}  # fmt: skip
    assert hacs["name"] and set(hacs) <= allowed
    assert [p.name for p in (ROOT / "custom_components").iterdir() if p.is_dir() and p.name[0] not in "._"] == [
        "voiceclone"
    ]
    assert "Apache License" in (ROOT / "LICENSE").read_text()[:200]
    for name, size in (("icon.png", 256), ("icon@2x.png", 512)):
        head = (INTEGRATION / "brand" / name).read_bytes()[:24]
        assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) == (size, size), name


def test_services_yaml_passes_home_assistants_schema_and_every_service_is_translated_with_an_icon() -> None:
    services = yaml.safe_load((INTEGRATION / "services.yaml").read_text())
    ha_service._SERVICES_SCHEMA(services)  # raises if invalid
    icons = json.loads((INTEGRATION / "icons.json").read_text())
    for name, spec in services.items():
        text = STRINGS["services"][name]
        assert text["name"] and text["description"], name
        assert set(text.get("fields", {})) == set(spec.get("fields", {})), name
        assert all(f["name"] and f["description"] for f in text.get("fields", {}).values()), name
        assert icons["services"][name]["service"].startswith("mdi:"), name
        assert f'"{name}"' in SOURCES["__init__.py"], f"{name} is not registered"


def _strings(node: object, path: str = "") -> list[tuple[str, str]]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in _strings(v, f"{path}.{k}" if path else k)]
    return [(path, node)] if isinstance(node, str) else []


def test_translation_values_follow_hassfests_rules() -> None:
    for path, value in _strings(STRINGS):
        assert value == value.strip(), f"{path}: leading or trailing space"
        assert not re.search(r"<[a-z/][^>]*>", value), f"{path}: HTML"
        assert not re.search(r"'\{\w+\}'", value), f"{path}: a placeholder in single quotes"
        assert value.count("[%key:") <= 1 and (not value.startswith("[%key:") or value.endswith("%]")), path


def test_every_form_field_is_described() -> None:
    for section in ("config", "options"):
        for step, text in STRINGS[section]["step"].items():
            if section == "config" and "data" in text:
                assert set(text["data_description"]) == set(text["data"]), f"{section}.{step}: data_description"
            if "data_description" in text:
                assert set(text["data_description"]) <= set(text["data"]), f"{section}.{step}"


def test_every_translation_key_the_code_uses_exists() -> None:
    code = "\n".join(SOURCES.values())
    used_exceptions = set(re.findall(r'translation_key="(\w+)"', code)) - {"voices"}
    assert used_exceptions <= set(STRINGS["exceptions"]), used_exceptions - set(STRINGS["exceptions"])
    for reason in re.findall(r'async_abort\(reason="(\w+)"\)|reason="(\w+)"', SOURCES["config_flow.py"]):
        assert next(r for r in reason if r) in STRINGS["config"]["abort"]
    for error in re.findall(r'errors?\[?[^=\n]*\] = "(\w+)"|: "(\w+)"\}, ""', SOURCES["config_flow.py"]):
        assert next(r for r in error if r) in STRINGS["config"]["error"]
    for step in re.findall(r"async def async_step_(\w+)", SOURCES["config_flow.py"]):
        if step not in ("zeroconf", "hassio", "reauth"):  # these steps show no form of their own
            assert step in STRINGS["config"]["step"] or step in STRINGS["options"]["step"], step
    for constant, kind in re.findall(r'^(ISSUE_\w+) = "(\w+)"$', SOURCES["const.py"], re.M):
        issue = STRINGS["issues"][kind]
        assert issue["title"] and issue["description"], constant
    icons = json.loads((INTEGRATION / "icons.json").read_text())
    key = re.search(r'_attr_translation_key = "(\w+)"', SOURCES["tts.py"]).group(1)
    assert STRINGS["entity"]["tts"][key]["name"] and icons["entity"]["tts"][key]["default"].startswith("mdi:")


def test_quality_scale_silver_in_full_and_gold_where_it_applies() -> None:
    rules = yaml.safe_load((INTEGRATION / "quality_scale.yaml").read_text())["rules"]
    for tier in (BRONZE, SILVER, GOLD):
        for rule in tier:
            entry = rules[rule]
            status = entry if isinstance(entry, str) else entry["status"]
            assert status in ("done", "exempt"), f"{rule}: {status}"
            if status == "exempt":
                assert isinstance(entry, dict) and entry.get("comment"), f"{rule}: an exemption needs a reason"
    assert "PARALLEL_UPDATES = 0" in SOURCES["tts.py"]
    assert "async_get_config_entry_diagnostics" in SOURCES["diagnostics.py"]
    assert "async_step_reconfigure" in SOURCES["config_flow.py"]
    assert "_attr_has_entity_name = True" in SOURCES["tts.py"]
    assert "class VoiceCloneCoordinator(DataUpdateCoordinator" in SOURCES["coordinator.py"]


@pytest.mark.parametrize("doc", ["Removing", "Troubleshooting", "Known limitations"])
def test_readme_has_the_sections_the_quality_scale_asks_for(doc: str) -> None:
    assert re.search(rf"^#+ .*{doc}", (ROOT / "README.md").read_text(), re.M | re.I), doc


def test_platforms_are_tts_only() -> None:
    assert "PLATFORMS = [Platform.TTS]" in SOURCES["__init__.py"] and Platform.TTS == "tts"
