"""Client failures as Home Assistant errors with translated messages."""

from __future__ import annotations

from homeassistant.exceptions import HomeAssistantError, ServiceValidationError

from .client import CannotConnect, InvalidAuth, ServerError
from .const import DOMAIN


def translated_error(exc: CannotConnect | InvalidAuth | ServerError) -> HomeAssistantError:
    """The error to raise for ``exc``: unreachable server, refused token, unknown voice, rejected sample or other
    server error."""
    if isinstance(exc, InvalidAuth):
        return HomeAssistantError(translation_domain=DOMAIN, translation_key="invalid_auth")
    if isinstance(exc, CannotConnect):
        return HomeAssistantError(translation_domain=DOMAIN, translation_key="cannot_connect")
    if exc.code == "VoiceNotFoundError":
        return ServiceValidationError(
            translation_domain=DOMAIN, translation_key="unknown_voice", translation_placeholders={"error": str(exc)}
        )
    if exc.code == "rejected":
        reasons = "; ".join((exc.details.get("quality") or {}).get("reasons", [])) or str(exc)
        return HomeAssistantError(
            translation_domain=DOMAIN, translation_key="sample_rejected", translation_placeholders={"reasons": reasons}
        )
    return HomeAssistantError(
        translation_domain=DOMAIN, translation_key="server_error", translation_placeholders={"error": str(exc)}
    )
