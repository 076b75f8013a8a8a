"""The TTS entity speaking through a real VoiceClone server: audio, voices, options, streaming, availability."""

from __future__ import annotations

import io
import wave
from collections.abc import AsyncGenerator

import pytest
from custom_components.voiceclone.const import DOMAIN, ISSUE_UNREACHABLE, UNREACHABLE_POLLS
from custom_components.voiceclone.tts import HAS_STREAMING
from homeassistant.components import tts
from homeassistant.components.tts.media_source import generate_media_source_id
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .conftest import Server, entry_data, free_port

ENTITY = "tts.voiceclone_127_0_0_1_voices"


def read_wav(data: bytes) -> tuple[int, int, bytes]:
    """Rate, frames and PCM of a 16-bit mono WAV, streamed (sizes unknown) or not."""
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        rate = w.getframerate()
    pcm = data[44:]
    return rate, len(pcm) // 2, pcm


async def speak(hass: HomeAssistant, message: str, **options) -> bytes:
    """Audio as Home Assistant's tts media source renders it (no cache; WAV asked for, so ffmpeg is not needed)."""
    options = {"preferred_format": "wav", **options}
    media_id = generate_media_source_id(hass, message, ENTITY, "en", options, cache=False)
    extension, data = await tts.async_get_media_source_audio(hass, media_id)
    assert extension == "wav"
    return data


@pytest.fixture(autouse=True)
async def tts_component(hass: HomeAssistant) -> None:
    assert await async_setup_component(hass, "tts", {})


async def test_entity_lists_languages_and_voices_from_the_server(hass: HomeAssistant, loaded_entry) -> None:
    entity = hass.data["tts"].get_entity(ENTITY)
    assert "en" in entity.supported_languages
    voices = entity.async_get_supported_voices("en")
    assert [(v.voice_id, v.name) for v in voices] == [("mum", "Mum")]
    assert entity.async_get_supported_voices("en-GB") == voices  # regional tags match the voice's language
    assert entity.async_get_supported_voices("zh") == []


async def test_tts_audio_from_the_real_server(hass: HomeAssistant, loaded_entry) -> None:
    data = await speak(hass, "The washing machine is done.", voice="mum")
    rate, frames, pcm = read_wav(data)
    assert rate in (16000, 22050, 24000) and 0.8 < frames / rate < 5  # six words: about two seconds
    assert max(abs(int.from_bytes(pcm[i : i + 2], "little", signed=True)) for i in range(0, len(pcm), 2)) > 1000


async def test_speed_changes_tempo_not_rate_and_volume_changes_level(hass: HomeAssistant, loaded_entry) -> None:
    text = "Please remember to water the plants this evening."
    normal = read_wav(await speak(hass, text, voice="mum"))
    fast = read_wav(await speak(hass, text, voice="mum", speed=1.5))
    quiet = read_wav(await speak(hass, text, voice="mum", volume=0.25))
    assert fast[0] == normal[0]  # same sample rate: the server spoke faster, nothing was resampled
    assert fast[1] < 0.85 * normal[1]

    def peak(pcm: bytes) -> int:
        return max(abs(int.from_bytes(pcm[i : i + 2], "little", signed=True)) for i in range(0, len(pcm), 2))

    assert peak(quiet[2]) < 0.5 * peak(normal[2])


async def test_unknown_voice_and_bad_option_are_clear_errors(hass: HomeAssistant, loaded_entry) -> None:
    entity = hass.data["tts"].get_entity(ENTITY)
    with pytest.raises(HomeAssistantError) as err:
        await entity.async_get_tts_audio("Hello.", "en", {"voice": "nobody"})
    assert err.value.translation_key == "unknown_voice" and "nobody" in str(err.value.translation_placeholders)
    with pytest.raises(HomeAssistantError) as err:
        await entity.async_get_tts_audio("Hello.", "en", {"voice": "mum", "speed": "fast"})
    assert err.value.translation_key == "bad_option"
    with pytest.raises(HomeAssistantError) as err:
        await entity.async_get_tts_audio("Hello.", "en", {"voice": "mum", "speed": 10})
    assert err.value.translation_key == "server_error" and "speed" in err.value.translation_placeholders["error"]


@pytest.mark.skipif(not HAS_STREAMING, reason="HA < 2025.4 has no streaming TTS entity API")
async def test_streaming_sends_text_as_it_arrives_and_audio_starts_before_the_text_ends(
    hass: HomeAssistant, loaded_entry
) -> None:
    import asyncio

    entity = hass.data["tts"].get_entity(ENTITY)
    more_text = asyncio.Event()
    got_audio = asyncio.Event()

    async def text() -> AsyncGenerator[str]:
        for piece in ("The washing ", "machine is done. ", "Please hang "):
            yield piece
        await asyncio.wait_for(more_text.wait(), 30)  # the rest only after the first audio arrived
        yield "the clothes outside."

    response = await entity.async_stream_tts_audio(tts.TTSAudioRequest("en", {"voice": "mum"}, text()))
    assert response.extension == "wav"
    pieces: list[bytes] = []
    async for data in response.data_gen:
        pieces.append(data)
        if len(pieces) == 2:  # header, then audio of the first sentence while the second is still unfinished
            got_audio.set()
            more_text.set()
    assert got_audio.is_set()
    header, pcm = pieces[0], b"".join(pieces[1:])
    assert header[:4] == b"RIFF" and header[8:16] == b"WAVEfmt " and len(header) == 44
    rate = int.from_bytes(header[24:28], "little")
    assert 2.0 < len(pcm) / 2 / rate < 10  # both sentences, each once


async def test_voice_list_follows_enrollment_without_a_restart(
    hass: HomeAssistant, loaded_entry, sample_wav, tmp_path
) -> None:
    hass.config.media_dirs = {"local": str(tmp_path)}
    (tmp_path / "dad.wav").write_bytes(sample_wav.read_bytes())
    entity = hass.data["tts"].get_entity(ENTITY)
    result = await hass.services.async_call(
        DOMAIN,
        "enroll_voice",
        {
            "name": "Dad",
            "consent": "Dad (test)",
            "audio": "media-source://media_source/local/dad.wav",
            "language": "en",
        },
        blocking=True,
        return_response=True,
    )
    try:
        assert result["voice_id"] == "dad"
        assert {v.voice_id for v in entity.async_get_supported_voices("en")} == {"mum", "dad"}
        audio = await speak(hass, "Dinner is ready.", voice="dad")
        assert read_wav(audio)[1] > 0
    finally:
        await hass.services.async_call(DOMAIN, "delete_voice", {"voice": "dad"}, blocking=True)
    assert {v.voice_id for v in entity.async_get_supported_voices("en")} == {"mum"}


async def test_unavailable_while_the_server_is_down_and_back_by_itself(hass: HomeAssistant, tmp_path, freezer) -> None:
    """Its own server: stopped, the entity goes unavailable at the next poll; restarted, it comes back."""
    from datetime import timedelta

    from pytest_homeassistant_custom_component.common import async_fire_time_changed

    server = Server("127.0.0.1", free_port(), free_port(), tmp_path)
    server.start()
    try:
        entry = MockConfigEntry(
            domain=DOMAIN, title="VoiceClone (down)", data=entry_data(server), unique_id="down-test"
        )
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        entity_id = "tts.voiceclone_down_voices"
        assert hass.states.get(entity_id).state != "unavailable"
        issues = ir.async_get(hass)
        issue_id = f"{ISSUE_UNREACHABLE}_{entry.entry_id}"
        server.stop()

        async def poll() -> None:
            freezer.tick(timedelta(seconds=31))
            async_fire_time_changed(hass)
            await hass.async_block_till_done(wait_background_tasks=True)  # the poll runs as a background task

        await poll()
        assert hass.states.get(entity_id).state == "unavailable"
        with pytest.raises(HomeAssistantError) as err:
            await hass.data["tts"].get_entity(entity_id).async_get_tts_audio("Hello.", "en", {})
        assert err.value.translation_key == "cannot_connect"
        assert issues.async_get_issue(DOMAIN, issue_id) is None  # one missed poll (a restart) is not a repair
        for _ in range(UNREACHABLE_POLLS - 1):
            await poll()
        issue = issues.async_get_issue(DOMAIN, issue_id)
        assert issue is not None and issue.translation_key == ISSUE_UNREACHABLE
        assert issue.translation_placeholders["port"] == str(server.port)
        server.start()
        await poll()
        assert hass.states.get(entity_id).state != "unavailable"
        assert issues.async_get_issue(DOMAIN, issue_id) is None  # back: the repair goes by itself
    finally:
        server.stop()


async def test_setup_retries_when_the_server_is_down(hass: HomeAssistant) -> None:
    entry = MockConfigEntry(domain=DOMAIN, data={"host": "127.0.0.1", "port": free_port(), "web_port": free_port()})
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY


async def test_unload_and_reload(hass: HomeAssistant, loaded_entry) -> None:
    assert loaded_entry.state is ConfigEntryState.LOADED
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    assert loaded_entry.state is ConfigEntryState.NOT_LOADED
    assert hass.states.get(ENTITY).state == "unavailable"  # the entity is gone; its registry entry stays
    assert hass.services.has_service(DOMAIN, "speak")  # services belong to the integration, not the entry
    assert await hass.config_entries.async_setup(loaded_entry.entry_id)
    await hass.async_block_till_done()
    assert loaded_entry.state is ConfigEntryState.LOADED and hass.states.get(ENTITY).state != "unavailable"
    await hass.config_entries.async_reload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    assert loaded_entry.state is ConfigEntryState.LOADED
    assert read_wav(await speak(hass, "Hello again.", voice="mum"))[1] > 0  # the reloaded entity speaks
