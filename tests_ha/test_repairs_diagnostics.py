"""Repairs for what the user can fix on the server, and diagnostics that leave the household's names out."""

from __future__ import annotations

import json

from custom_components.voiceclone.const import DOMAIN, ISSUE_ENGINE_UNAVAILABLE, ISSUE_MODEL_MISSING
from custom_components.voiceclone.diagnostics import async_get_config_entry_diagnostics
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .conftest import Server, enroll_mum, entry_data, free_port


async def test_a_model_that_is_not_installed_is_a_repair(hass: HomeAssistant, tmp_path, sample_wav) -> None:
    """The server is configured for Pocket TTS without its model: it keeps answering, says why, and HA shows a
    repair naming the model; the voices stay listed (in their own language)."""
    enroll_mum(tmp_path, sample_wav)
    server = Server("127.0.0.1", free_port(), free_port(), tmp_path, settings=("engine.name=pocket",))
    server.start()
    try:
        entry = MockConfigEntry(domain=DOMAIN, title="VoiceClone (nomodel)", data=entry_data(server))
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        issues = ir.async_get(hass)
        issue = issues.async_get_issue(DOMAIN, f"{ISSUE_MODEL_MISSING}_{entry.entry_id}")
        assert issue is not None and issue.severity is ir.IssueSeverity.ERROR
        assert issue.translation_placeholders["models"] == "pocket-tts-english"
        assert "voiceclone models download pocket-tts-english" in issue.translation_placeholders["error"]
        assert issues.async_get_issue(DOMAIN, f"{ISSUE_ENGINE_UNAVAILABLE}_{entry.entry_id}") is None
        info = entry.runtime_data.coordinator.data
        assert [v.voice_id for v in info.voices] == ["mum"] and info.languages == ["en"]
        assert entry.unique_id == server.server_id  # the id came from api/health, which answered with 503
        assert await hass.config_entries.async_unload(entry.entry_id)
        assert issues.async_get_issue(DOMAIN, f"{ISSUE_MODEL_MISSING}_{entry.entry_id}") is None
    finally:
        server.stop()


async def test_diagnostics_redact_addresses_and_names(hass: HomeAssistant, loaded_entry, server: Server) -> None:
    diagnostics = await async_get_config_entry_diagnostics(hass, loaded_entry)
    dumped = json.dumps(diagnostics)
    assert diagnostics["entry"]["data"]["host"] == "**REDACTED**"
    assert diagnostics["entry"]["data"]["port"] == server.port
    assert diagnostics["server"]["voices"] == 1 and diagnostics["server"]["languages"] == ["en"]
    assert diagnostics["server"]["health"]["status"] == "ok"
    assert diagnostics["last_update_success"] is True
    for secret in ("Mum", "mum", server.server_id, server.host):
        assert secret not in dumped, secret
