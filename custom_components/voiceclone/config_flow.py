"""Config flow: a VoiceClone server by host/port, discovered over zeroconf or from the add-on (Supervisor), and
reconfigured when it moves. Entries are keyed on the id the server announces, not on its address."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

import voluptuous as vol
from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlow,
)
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN
from homeassistant.core import callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import TextSelector, TextSelectorConfig, TextSelectorType

from .client import CannotConnect, InvalidAuth, ServerHealth, ServerInfo, VoiceCloneClient
from .const import CONF_DEFAULT_LANGUAGE, CONF_DEFAULT_VOICE, CONF_WEB_PORT, DEFAULT_PORT, DEFAULT_WEB_PORT, DOMAIN

CORE_WYOMING = "wyoming"
TOKEN_SELECTOR = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))


class ApiUnreachable(Exception):
    """The Wyoming port answers as VoiceClone, the web/API port does not."""


class VoiceCloneConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add a VoiceClone server."""

    VERSION = 1

    def __init__(self) -> None:
        self._discovered: dict[str, Any] = {}
        self._zeroconf_name: str | None = None

    async def _probe(self, host: str, port: int, web_port: int, token: str = "") -> tuple[ServerInfo, ServerHealth]:
        """Describe over Wyoming (CannotConnect if it is not VoiceClone), the API's health (ApiUnreachable) and the
        token (InvalidAuth)."""
        client = VoiceCloneClient(host, port, web_port, async_get_clientsession(self.hass), token)
        info = await client.describe()
        try:
            health = await client.health()
            await client.check_auth()
        except CannotConnect as exc:
            raise ApiUnreachable(str(exc)) from exc
        return info, health

    async def _form_input(self, user_input: dict[str, Any]) -> tuple[dict[str, str], str]:
        """Errors for the form, and the server's id when there are none."""
        try:
            _, health = await self._probe(
                user_input[CONF_HOST], user_input[CONF_PORT], user_input[CONF_WEB_PORT], user_input.get(CONF_TOKEN, "")
            )
        except CannotConnect:
            return {"base": "cannot_connect"}, ""
        except ApiUnreachable:
            return {CONF_WEB_PORT: "api_unreachable"}, ""
        except InvalidAuth:
            return {CONF_TOKEN: "invalid_auth"}, ""
        return {}, health.server_id or f"{user_input[CONF_HOST]}:{user_input[CONF_PORT]}"

    @staticmethod
    def _schema(defaults: dict[str, Any]) -> vol.Schema:
        return vol.Schema(
            {
                vol.Required(CONF_HOST, default=defaults.get(CONF_HOST, "")): str,
                vol.Required(CONF_PORT, default=defaults.get(CONF_PORT, DEFAULT_PORT)): int,
                vol.Required(CONF_WEB_PORT, default=defaults.get(CONF_WEB_PORT, DEFAULT_WEB_PORT)): int,
                vol.Optional(CONF_TOKEN, default=defaults.get(CONF_TOKEN, "")): TOKEN_SELECTOR,
            }
        )

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            errors, server_id = await self._form_input(user_input)
            if not errors:
                await self.async_set_unique_id(server_id)
                self._abort_if_unique_id_configured(updates=user_input)
                return self.async_create_entry(title=f"VoiceClone ({user_input[CONF_HOST]})", data=user_input)
        return self.async_show_form(step_id="user", data_schema=self._schema(user_input or {}), errors=errors)

    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """A new address for the same server (checked by its id) — or a fix of a wrong port."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            errors, server_id = await self._form_input(user_input)
            if not errors:
                await self.async_set_unique_id(server_id)
                self._abort_if_unique_id_mismatch(reason="wrong_server")
                return self.async_update_reload_and_abort(entry, data_updates=user_input)
        return self.async_show_form(
            step_id="reconfigure", data_schema=self._schema(user_input or dict(entry.data)), errors=errors
        )

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """The server refused the token (rotated with `voiceclone token --rotate`): ask for the new one."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            errors, _ = await self._form_input({**entry.data, CONF_TOKEN: user_input[CONF_TOKEN]})
            if not errors:
                return self.async_update_reload_and_abort(entry, data_updates={CONF_TOKEN: user_input[CONF_TOKEN]})
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=vol.Schema({vol.Required(CONF_TOKEN): TOKEN_SELECTOR}),
            errors=errors,
            description_placeholders={"host": entry.data[CONF_HOST]},
        )

    async def async_step_zeroconf(self, discovery_info: Any) -> ConfigFlowResult:
        """A `_wyoming._tcp` service; ours carries ``server_id`` and ``web_port`` in its TXT record (never the token:
        the user gives it when confirming)."""
        properties = discovery_info.properties or {}
        self._zeroconf_name = discovery_info.name
        return await self._discovered_server(
            str(discovery_info.host),
            int(discovery_info.port or DEFAULT_PORT),
            properties.get("web_port"),
            properties.get("server_id"),
        )

    async def async_step_hassio(self, discovery_info: Any) -> ConfigFlowResult:
        """The add-on announced itself through the Supervisor (``uri``, ``web_port``, ``server_id``, ``token``)."""
        config = discovery_info.config or {}
        uri = urlparse(str(config.get("uri", "")))
        if not uri.hostname or not uri.port:
            return self.async_abort(reason="cannot_connect")
        return await self._discovered_server(
            uri.hostname, uri.port, config.get("web_port"), config.get("server_id"), str(config.get("token") or "")
        )

    async def _discovered_server(
        self, host: str, port: int, web_port: Any, server_id: Any, token: str = ""
    ) -> ConfigFlowResult:
        try:
            web = int(web_port) if web_port else DEFAULT_WEB_PORT
        except (TypeError, ValueError):
            web = DEFAULT_WEB_PORT
        address = {CONF_HOST: host, CONF_PORT: port, CONF_WEB_PORT: web}
        updates = {**address, CONF_TOKEN: token} if token else address
        if server_id:  # known before connecting: a server that moved updates its entry, nothing else happens
            await self.async_set_unique_id(str(server_id))
            self._abort_if_unique_id_configured(updates=updates)
        client = VoiceCloneClient(host, port, web, async_get_clientsession(self.hass), token)
        try:
            await client.describe()
            health = await client.health()
        except CannotConnect:
            return self.async_abort(reason="not_voiceclone")
        if not server_id:
            await self.async_set_unique_id(health.server_id or f"{host}:{port}")
            self._abort_if_unique_id_configured(updates=updates)
        self._discovered = {**address, CONF_TOKEN: token}
        self.context["title_placeholders"] = {"host": host}
        return await self.async_step_confirm()

    async def async_step_confirm(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Confirm a discovered server; the token is asked for when discovery did not bring a working one."""
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {**self._discovered, **user_input}
            errors, _ = await self._form_input(data)
            if not errors:
                self._abort_core_wyoming_offer()
                return self.async_create_entry(title=f"VoiceClone ({data[CONF_HOST]})", data=data)
        schema = vol.Schema({})
        if not self._discovered.get(CONF_TOKEN):
            schema = vol.Schema({vol.Optional(CONF_TOKEN, default=""): TOKEN_SELECTOR})
        return self.async_show_form(
            step_id="confirm",
            data_schema=schema,
            errors=errors,
            description_placeholders={"host": self._discovered[CONF_HOST]},
        )

    def _abort_core_wyoming_offer(self) -> None:
        """Our server also announces itself as plain Wyoming over zeroconf: once VoiceClone has it, core Wyoming's
        offer of the same service is withdrawn, so the user is not invited to add one server twice."""
        if self._zeroconf_name is None or self.source == SOURCE_RECONFIGURE:
            return
        flows = self.hass.config_entries.flow.async_progress_by_handler(
            CORE_WYOMING, match_context={"unique_id": self._zeroconf_name}
        )
        for flow in flows:
            self.hass.config_entries.flow.async_abort(flow["flow_id"])

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
