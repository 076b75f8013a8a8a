"""VoiceClone: household voice-cloning TTS in Home Assistant (speech over Wyoming, voices over the HTTP API)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import voluptuous as vol
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN, Platform
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.typing import ConfigType

from .client import CannotConnect, InvalidAuth, ServerError, ServerInfo, VoiceCloneClient
from .const import CONF_WEB_PORT, DEFAULT_WEB_PORT, DOMAIN
from .coordinator import VoiceCloneCoordinator
from .errors import translated_error

PLATFORMS = [Platform.TTS]
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)
MEDIA_SOURCE_LOCAL = "media-source://media_source/local/"


@dataclass
class VoiceCloneData:
    client: VoiceCloneClient
    coordinator: VoiceCloneCoordinator


type VoiceCloneConfigEntry = ConfigEntry[VoiceCloneData]


async def async_setup_entry(hass: HomeAssistant, entry: VoiceCloneConfigEntry) -> bool:
    client = VoiceCloneClient(
        entry.data[CONF_HOST],
        entry.data[CONF_PORT],
        entry.data.get(CONF_WEB_PORT, DEFAULT_WEB_PORT),
        async_get_clientsession(hass),
        entry.data.get(CONF_TOKEN, ""),
    )
    coordinator = VoiceCloneCoordinator(hass, entry, client)
    await coordinator.async_config_entry_first_refresh()
    _adopt_server_id(hass, entry, coordinator.data)
    entry.runtime_data = VoiceCloneData(client, coordinator)
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    entry.async_on_unload(entry.add_update_listener(_options_updated))
    return True


def _adopt_server_id(hass: HomeAssistant, entry: VoiceCloneConfigEntry, info: ServerInfo) -> None:
    """Entries made before servers had ids (keyed ``host:port``) move to the server's id, so discovery of the same
    server at a new address updates them."""
    server_id = info.health.server_id if info.health else ""
    if not server_id or entry.unique_id == server_id:
        return
    if any(e.unique_id == server_id for e in hass.config_entries.async_entries(DOMAIN) if e is not entry):
        return  # another entry already is this server: leave both as they are (the user removes one)
    hass.config_entries.async_update_entry(entry, unique_id=server_id)


async def _options_updated(hass: HomeAssistant, entry: VoiceCloneConfigEntry) -> None:
    await hass.config_entries.async_reload(entry.entry_id)


async def async_unload_entry(hass: HomeAssistant, entry: VoiceCloneConfigEntry) -> bool:
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        entry.runtime_data.coordinator.clear_issues()
    return unloaded


def _loaded_entry(hass: HomeAssistant) -> VoiceCloneConfigEntry:
    entries = [e for e in hass.config_entries.async_entries(DOMAIN) if getattr(e, "runtime_data", None)]
    if not entries:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="not_loaded")
    return entries[0]


def _audio_path(hass: HomeAssistant, audio: str) -> Path:
    """A media-source id of a local file or a path, which must lie inside one of HA's media folders."""
    relative = audio[len(MEDIA_SOURCE_LOCAL) :] if audio.startswith(MEDIA_SOURCE_LOCAL) else None
    roots = [Path(p).resolve() for p in hass.config.media_dirs.values()] or [Path("/media")]
    candidate = (roots[0] / relative) if relative is not None else Path(audio)
    resolved = candidate.resolve()
    if not any(resolved.is_relative_to(root) for root in roots) or not resolved.is_file():
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="bad_audio", translation_placeholders={"audio": audio}
        )
    return resolved


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the voice services (once, so automations validate even before an entry loads)."""

    async def enroll_voice(call: ServiceCall) -> ServiceResponse:
        entry = _loaded_entry(hass)
        path = _audio_path(hass, call.data["audio"])
        data = await hass.async_add_executor_job(path.read_bytes)
        try:
            result = await entry.runtime_data.client.enroll(
                call.data["name"],
                call.data["consent"],
                data,
                path.name,
                call.data.get("transcript"),
                call.data.get("language"),
            )
        except InvalidAuth as exc:
            entry.async_start_reauth(hass)
            raise translated_error(exc) from exc
        except (CannotConnect, ServerError) as exc:
            raise translated_error(exc) from exc
        await entry.runtime_data.coordinator.async_refresh()  # now, not debounced: the list changed
        voice = result["voice"]
        return {"voice_id": voice["id"], "name": voice["name"], "quality": result.get("quality", {})}

    async def delete_voice(call: ServiceCall) -> None:
        entry = _loaded_entry(hass)
        try:
            await entry.runtime_data.client.delete(call.data["voice"])
        except InvalidAuth as exc:
            entry.async_start_reauth(hass)
            raise translated_error(exc) from exc
        except (CannotConnect, ServerError) as exc:
            raise translated_error(exc) from exc
        await entry.runtime_data.coordinator.async_refresh()  # now, not debounced: the list changed

    async def speak(call: ServiceCall) -> None:
        entry = _loaded_entry(hass)
        voice = call.data["voice"]
        info = entry.runtime_data.coordinator.data
        if info is not None and voice not in {v.voice_id for v in info.voices}:
            raise ServiceValidationError(
                translation_domain=DOMAIN, translation_key="unknown_voice", translation_placeholders={"error": voice}
            )
        entity_id = er.async_get(hass).async_get_entity_id("tts", DOMAIN, entry.entry_id)
        await hass.services.async_call(
            "tts",
            "speak",
            {
                "entity_id": entity_id,
                "message": call.data["text"],
                "media_player_entity_id": call.data["media_player_entity_id"],
                "options": {"voice": voice},
            },
            blocking=True,
            context=call.context,
        )

    hass.services.async_register(
        DOMAIN,
        "enroll_voice",
        enroll_voice,
        schema=vol.Schema(
            {
                vol.Required("name"): cv.string,
                vol.Required("consent"): cv.string,
                vol.Required("audio"): cv.string,
                vol.Optional("transcript"): cv.string,
                vol.Optional("language"): cv.string,
            }
        ),
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN, "delete_voice", delete_voice, schema=vol.Schema({vol.Required("voice"): cv.string})
    )
    hass.services.async_register(
        DOMAIN,
        "speak",
        speak,
        schema=vol.Schema(
            {
                vol.Required("text"): cv.string,
                vol.Required("voice"): cv.string,
                vol.Required("media_player_entity_id"): cv.entity_ids,
            }
        ),
    )
    return True
