"""The VoiceClone TTS entity: one voice per enrolled household member."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from homeassistant.components import tts
from homeassistant.components.tts import TextToSpeechEntity, Voice
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity_platform import AddEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from . import VoiceCloneConfigEntry
from .client import CannotConnect, ServerError, wav_bytes, wav_header
from .const import CONF_DEFAULT_LANGUAGE, CONF_DEFAULT_VOICE, DOMAIN
from .errors import translated_error

# HA >= 2025.4 has the streaming entity API (2025.4 exports only the request type from the package, so look in the
# entity module); older versions only ever call async_get_tts_audio.
try:
    from homeassistant.components.tts.entity import TTSAudioRequest, TTSAudioResponse
except ImportError:  # pragma: no cover - HA < 2025.4
    TTSAudioRequest = TTSAudioResponse = None
HAS_STREAMING = TTSAudioResponse is not None
# Requests go straight to the server, which queues and prioritises them itself: no limit here.
PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant, entry: VoiceCloneConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    async_add_entities([VoiceCloneTTSEntity(entry)])


def _languages_match(wanted: str, offered: str) -> bool:
    a, b = wanted.replace("-", "_").lower(), offered.replace("-", "_").lower()
    return a == b or a.split("_")[0] == b.split("_")[0]


def _number(options: dict[str, Any], key: str) -> float:
    try:
        return float(options.get(key, 1.0))
    except (TypeError, ValueError) as exc:
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="bad_option", translation_placeholders={"option": key}
        ) from exc


class VoiceCloneTTSEntity(CoordinatorEntity, TextToSpeechEntity):
    """Speaks in household voices; the voice list follows the server (polled, refreshed after changes)."""

    # "VoiceClone (nuc) Voices": HA's TTS manager needs the entity to have a name of its own (not just the device's)
    _attr_has_entity_name = True
    _attr_translation_key = "voices"

    def __init__(self, entry: VoiceCloneConfigEntry) -> None:
        super().__init__(entry.runtime_data.coordinator)
        self._attr_supported_options = ["voice", "speed", "volume"]
        self._entry = entry
        self._client = entry.runtime_data.client
        self._attr_unique_id = entry.entry_id
        info = entry.runtime_data.coordinator.data
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, entry.entry_id)},
            name=entry.title,
            manufacturer="VoiceClone",
            model="Voice cloning TTS server",
            sw_version=(info.health.version if info and info.health else "") or (info.version if info else None),
            configuration_url=f"http://{self._client.host}:{self._client.web_port}/",
            entry_type=DeviceEntryType.SERVICE,
        )

    @property
    def supported_languages(self) -> list[str]:
        info = self.coordinator.data
        return info.languages if info and info.languages else ["en"]

    @property
    def default_language(self) -> str:
        wanted = self._entry.options.get(CONF_DEFAULT_LANGUAGE)
        return wanted if wanted in self.supported_languages else self.supported_languages[0]

    @property
    def default_options(self) -> dict[str, Any]:
        voice = self._entry.options.get(CONF_DEFAULT_VOICE)
        return {"voice": voice} if voice else {}

    @callback
    def async_get_supported_voices(self, language: str) -> list[Voice] | None:
        info = self.coordinator.data
        if info is None:
            return None
        return [
            Voice(v.voice_id, v.name)
            for v in info.voices
            if any(_languages_match(language, lang) for lang in v.languages)
        ]

    def _manner(self, options: dict[str, Any]) -> tuple[str | None, float, float]:
        voice = options.get("voice") or self._entry.options.get(CONF_DEFAULT_VOICE) or None
        return voice, _number(options, "speed"), _number(options, "volume")

    async def async_get_tts_audio(self, message: str, language: str, options: dict[str, Any]) -> tts.TtsAudioType:
        voice, speed, volume = self._manner(options)
        try:
            pcm, rate = await self._client.synthesize(message, voice, speed, volume)
        except (CannotConnect, ServerError) as exc:
            raise translated_error(exc) from exc
        return "wav", wav_bytes(pcm, rate)

    if HAS_STREAMING:

        async def async_stream_tts_audio(self, request: TTSAudioRequest) -> TTSAudioResponse:
            """Stream text to the server as it arrives; audio flows back sentence by sentence (streamed WAV)."""
            voice, speed, volume = self._manner(request.options)

            async def audio(text: AsyncIterator[str]) -> AsyncGenerator[bytes]:
                header_sent = False
                try:
                    async for chunk in self._client.stream(text, voice, speed, volume):
                        if not header_sent:
                            yield wav_header(chunk.rate)
                            header_sent = True
                        yield chunk.audio
                except (CannotConnect, ServerError) as exc:
                    raise translated_error(exc) from exc

            return TTSAudioResponse("wav", audio(request.message_gen))
