"""The VoiceClone TTS entity: one voice per enrolled household member."""

from __future__ import annotations

import re
import struct
from collections.abc import AsyncGenerator
from typing import Any

from homeassistant.components import tts
from homeassistant.components.tts import TextToSpeechEntity, Voice
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from . import VoiceCloneConfigEntry
from .client import CannotConnect, ServerError, wav_bytes
from .const import CONF_DEFAULT_LANGUAGE, CONF_DEFAULT_VOICE, DOMAIN

SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])")
# HA >= 2025.4 has the streaming entity API; older versions only call async_get_tts_audio.
HAS_STREAMING = hasattr(tts, "TTSAudioRequest") and hasattr(tts, "TTSAudioResponse")


async def async_setup_entry(hass: HomeAssistant, entry: VoiceCloneConfigEntry,
                            async_add_entities: AddEntitiesCallback) -> None:
    async_add_entities([VoiceCloneTTSEntity(entry)])


def _languages_match(wanted: str, offered: str) -> bool:
    a, b = wanted.replace("-", "_").lower(), offered.replace("-", "_").lower()
    return a == b or a.split("_")[0] == b.split("_")[0]


class VoiceCloneTTSEntity(CoordinatorEntity, TextToSpeechEntity):
    """Speaks in household voices; the voice list follows the server (polled, refreshed after changes)."""

    _attr_has_entity_name = True
    _attr_name = None
    _attr_supported_options = ["voice", "speed", "volume"]

    def __init__(self, entry: VoiceCloneConfigEntry) -> None:
        super().__init__(entry.runtime_data.coordinator)
        self._entry = entry
        self._client = entry.runtime_data.client
        self._attr_unique_id = entry.entry_id
        self._attr_device_info = {"identifiers": {(DOMAIN, entry.entry_id)}, "name": entry.title,
                                  "manufacturer": "VoiceClone", "model": "Voice cloning TTS server"}

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
        return [Voice(v.voice_id, v.name) for v in info.voices
                if any(_languages_match(language, lang) for lang in v.languages)]

    async def _speak(self, message: str, options: dict[str, Any]) -> tuple[bytes, int]:
        voice = options.get("voice") or self._entry.options.get(CONF_DEFAULT_VOICE) or None
        try:
            return await self._client.synthesize(message, voice)
        except ServerError as exc:
            key = "unknown_voice" if exc.code == "VoiceNotFoundError" else "server_error"
            raise HomeAssistantError(translation_domain=DOMAIN, translation_key=key,
                                     translation_placeholders={"error": str(exc)}) from exc
        except CannotConnect as exc:
            raise HomeAssistantError(translation_domain=DOMAIN, translation_key="cannot_connect") from exc

    async def async_get_tts_audio(self, message: str, language: str, options: dict[str, Any]) -> tts.TtsAudioType:
        pcm, rate = await self._speak(message, options)
        rate = int(rate * float(options.get("speed", 1.0)))  # speed: played faster (and higher) by resampling
        return "wav", wav_bytes(pcm, rate, float(options.get("volume", 1.0)))

    if HAS_STREAMING:

        async def async_stream_tts_audio(self, request: tts.TTSAudioRequest) -> tts.TTSAudioResponse:
            """Speak each sentence as soon as its text has arrived (first audio before the text ends)."""
            options = request.options

            async def audio() -> AsyncGenerator[bytes]:
                pending = ""
                header_sent = False
                volume = float(options.get("volume", 1.0))

                async def sentence_audio(text: str) -> bytes:
                    nonlocal header_sent
                    pcm, rate = await self._speak(text, options)
                    data = wav_bytes(pcm, int(rate * float(options.get("speed", 1.0))), volume)
                    if header_sent:
                        return data[44:]
                    header_sent = True
                    return _streaming_header(data[:44])

                async for piece in request.message_gen:
                    pending += piece
                    parts = SENTENCE_END.split(pending)
                    for sentence in parts[:-1]:
                        if sentence.strip():
                            yield await sentence_audio(sentence)
                    pending = parts[-1]
                if pending.strip():
                    yield await sentence_audio(pending)

            return tts.TTSAudioResponse("wav", audio())


def _streaming_header(header: bytes) -> bytes:
    """A WAV header with unknown length (as streamed WAV does): data and RIFF sizes set to the maximum."""
    return header[:4] + struct.pack("<I", 0xFFFFFFFF) + header[8:40] + struct.pack("<I", 0xFFFFFFFF)
