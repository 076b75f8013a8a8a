"""Config flow: a VoiceClone server by host/port, or discovered over zeroconf or from the add-on (Supervisor)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import voluptuous as vol
from homeassistant.config_entries import ConfigEntry, ConfigFlow, ConfigFlowResult, OptionsFlow
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .client import CannotConnect, ServerInfo, VoiceCloneClient
from .const import CONF_DEFAULT_LANGUAGE, CONF_DEFAULT_VOICE, CONF_WEB_PORT, DEFAULT_PORT, DEFAULT_WEB_PORT, DOMAIN


class VoiceCloneConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add a VoiceClone server."""

    VERSION = 1

    def __init__(self) -> None:
        self._discovered: dict[str, Any] = {}

    def _client(self, host: str, port: int, web_port: int) -> VoiceCloneClient:
        return VoiceCloneClient(host, port, web_port, async_get_clientsession(self.hass))

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            host, port = user_input[CONF_HOST], user_input[CONF_PORT]
            await self.async_set_unique_id(f"{host}:{port}")
            self._abort_if_unique_id_configured()
            client = self._client(host, port, user_input[CONF_WEB_PORT])
            try:
                await client.describe()
            except CannotConnect:
                errors["base"] = "cannot_connect"
            else:
                try:
                    await client.check_api()
                except CannotConnect:
                    errors[CONF_WEB_PORT] = "api_unreachable"
            if not errors:
                return self.async_create_entry(title=f"VoiceClone ({host})", data=user_input)
        schema = vol.Schema(
            {
                vol.Required(CONF_HOST, default=(user_input or {}).get(CONF_HOST, "")): str,
                vol.Required(CONF_PORT, default=DEFAULT_PORT): int,
                vol.Required(CONF_WEB_PORT, default=DEFAULT_WEB_PORT): int,
            }
        )
        return self.async_show_form(step_id="user", data_schema=schema, errors=errors)

    async def async_step_zeroconf(self, discovery_info: Any) -> ConfigFlowResult:
        """A `_wyoming._tcp` service; ours carries ``web_port`` in its TXT record."""
        host, port = str(discovery_info.host), int(discovery_info.port or DEFAULT_PORT)
        return await self._discovered_server(host, port, discovery_info.properties.get("web_port"))

    async def async_step_hassio(self, discovery_info: Any) -> ConfigFlowResult:
        """The add-on announced itself through the Supervisor (``uri`` and ``web_port``)."""
        uri = urlparse(discovery_info.config.get("uri", ""))
        if not uri.hostname or not uri.port:
            return self.async_abort(reason="cannot_connect")
        return await self._discovered_server(uri.hostname, uri.port, discovery_info.config.get("web_port"))

    async def _discovered_server(self, host: str, port: int, web_port: Any) -> ConfigFlowResult:
        try:
            web = int(web_port) if web_port else DEFAULT_WEB_PORT
        except (TypeError, ValueError):
            web = DEFAULT_WEB_PORT
        await self.async_set_unique_id(f"{host}:{port}")
        self._abort_if_unique_id_configured(updates={CONF_HOST: host, CONF_PORT: port, CONF_WEB_PORT: web})
        try:
            await self._client(host, port, web).describe()
        except CannotConnect:
            return self.async_abort(reason="not_voiceclone")
        self._discovered = {CONF_HOST: host, CONF_PORT: port, CONF_WEB_PORT: web}
        self.context["title_placeholders"] = {"host": host}
        return await self.async_step_confirm()

    async def async_step_confirm(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        if user_input is not None:
            return self.async_create_entry(title=f"VoiceClone ({self._discovered[CONF_HOST]})", data=self._discovered)
        return self.async_show_form(step_id="confirm", description_placeholders={"host": self._discovered[CONF_HOST]})

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> OptionsFlow:
        return VoiceCloneOptionsFlow()


class VoiceCloneOptionsFlow(OptionsFlow):
    """Default voice and language."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        if user_input is not None:
            return self.async_create_entry(data=user_input)
        loaded = getattr(self.config_entry, "runtime_data", None)  # VoiceCloneData while the entry is set up
        info: ServerInfo | None = loaded.coordinator.data if loaded is not None else None
        voices = {v.voice_id: v.name for v in info.voices} if info else {}
        languages = info.languages if info else []
        current = self.config_entry.options
        schema = vol.Schema(
            {
                vol.Optional(CONF_DEFAULT_VOICE, default=current.get(CONF_DEFAULT_VOICE, "")): vol.In(
                    {"": "(server default)", **voices}
                ),
                vol.Optional(CONF_DEFAULT_LANGUAGE, default=current.get(CONF_DEFAULT_LANGUAGE, "")): vol.In(
                    {"": "(first available)", **{lang: lang for lang in languages}}
                ),
            }
        )
        return self.async_show_form(step_id="init", data_schema=schema)
