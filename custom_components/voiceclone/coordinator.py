"""Polls a VoiceClone server (voices over Wyoming, health over the API) and raises repairs for what the user can fix."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from .client import CannotConnect, InvalidAuth, ServerHealth, ServerInfo, VoiceCloneClient
from .const import (
    DOMAIN,
    ISSUE_ENGINE_UNAVAILABLE,
    ISSUE_MODEL_MISSING,
    ISSUE_UNREACHABLE,
    UNREACHABLE_POLLS,
    UPDATE_INTERVAL_S,
)

_LOGGER = logging.getLogger(__name__)


class VoiceCloneCoordinator(DataUpdateCoordinator[ServerInfo]):
    """The server's voices and health, every 30 s and at once after a change made through the integration."""

    config_entry: ConfigEntry

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry, client: VoiceCloneClient) -> None:
        super().__init__(
            hass,
            _LOGGER,
            name=DOMAIN,
            update_interval=timedelta(seconds=UPDATE_INTERVAL_S),
            config_entry=entry,
        )
        self.client = client
        self.failures = 0

    async def _async_update_data(self) -> ServerInfo:
        try:
            info = await self.client.describe()
        except CannotConnect as exc:
            self.failures += 1
            if self.failures >= UNREACHABLE_POLLS:
                self._raise_issue(ISSUE_UNREACHABLE, {"host": self.client.host, "port": str(self.client.port)})
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="update_failed",
                translation_placeholders={"error": str(exc)},
            ) from exc
        self.failures = 0
        self._clear_issue(ISSUE_UNREACHABLE)
        try:
            health: ServerHealth | None = await self.client.health()
            await self.client.check_auth()
        except InvalidAuth as exc:  # the token was rotated on the server: ask the user for the new one
            raise ConfigEntryAuthFailed(translation_domain=DOMAIN, translation_key="invalid_auth") from exc
        except CannotConnect as exc:  # speech still works; voice management and repairs wait for the API
            _LOGGER.debug("VoiceClone API at %s not answering: %s", self.client.api, exc)
            health = None
        self._engine_issues(health)
        return dataclasses.replace(info, health=health)

    def _engine_issues(self, health: ServerHealth | None) -> None:
        if health is None:
            return
        missing = health.missing_models if not health.ok else ()
        if missing:
            self._raise_issue(ISSUE_MODEL_MISSING, {"models": ", ".join(missing), "error": health.error})
        else:
            self._clear_issue(ISSUE_MODEL_MISSING)
        if not health.ok and not missing:
            self._raise_issue(ISSUE_ENGINE_UNAVAILABLE, {"error": health.error or health.status})
        else:
            self._clear_issue(ISSUE_ENGINE_UNAVAILABLE)

    def _issue_id(self, kind: str) -> str:
        return f"{kind}_{self.config_entry.entry_id}"

    def _raise_issue(self, kind: str, placeholders: dict[str, str]) -> None:
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            self._issue_id(kind),
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key=kind,
            translation_placeholders={"title": self.config_entry.title, **placeholders},
        )

    def _clear_issue(self, kind: str) -> None:
        ir.async_delete_issue(self.hass, DOMAIN, self._issue_id(kind))

    def clear_issues(self) -> None:
        """Remove this entry's repairs (on unload: a server no one uses is not a problem to report)."""
        for kind in (ISSUE_UNREACHABLE, ISSUE_MODEL_MISSING, ISSUE_ENGINE_UNAVAILABLE):
            self._clear_issue(kind)
