"""Diagnostics for a VoiceClone entry: what the server reports, with addresses and household names redacted."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_HOST
from homeassistant.core import HomeAssistant

from . import VoiceCloneConfigEntry
from .const import CONF_DEFAULT_VOICE

# Voice ids and names are family members' names; the host is an address on the home network.
TO_REDACT = {CONF_HOST, CONF_DEFAULT_VOICE, "token", "server_id", "unique_id"}


async def async_get_config_entry_diagnostics(hass: HomeAssistant, entry: VoiceCloneConfigEntry) -> dict[str, Any]:
    """Entry settings, the server's version, health and languages, and how many voices it has (not who)."""
    coordinator = entry.runtime_data.coordinator
    info = coordinator.data
    server: dict[str, Any] | None = None
    if info is not None:
        server = {
            "version": info.version,
            "voices": len(info.voices),
            "languages": info.languages,
            "voice_languages": sorted({lang for v in info.voices for lang in v.languages}),
            "health": asdict(info.health) if info.health else None,
        }
    return {
        "entry": async_redact_data({"data": dict(entry.data), "options": dict(entry.options)}, TO_REDACT),
        "last_update_success": coordinator.last_update_success,
        "consecutive_failures": coordinator.failures,
        "server": async_redact_data(server, TO_REDACT) if server is not None else None,
    }
