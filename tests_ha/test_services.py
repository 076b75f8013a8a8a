"""voiceclone.enroll_voice / delete_voice / speak against a real VoiceClone server: success and error paths."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from custom_components.voiceclone.const import DOMAIN
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_mock_service

from .conftest import espeak, free_port

ENTITY = "tts.voiceclone_127_0_0_1_voices"


@pytest.fixture
def media(hass: HomeAssistant, tmp_path: Path) -> Path:
    """Home Assistant's local media folder."""
    folder = tmp_path / "media"
    folder.mkdir()
    hass.config.media_dirs = {"local": str(folder)}
    return folder


async def enroll(hass: HomeAssistant, **data) -> dict:
    return await hass.services.async_call(DOMAIN, "enroll_voice", data, blocking=True, return_response=True)


async def test_enroll_from_a_path_and_delete(hass: HomeAssistant, loaded_entry, media: Path, sample_wav: Path) -> None:
    (media / "voices").mkdir()
    (media / "voices" / "gran.wav").write_bytes(sample_wav.read_bytes())
    result = await enroll(
        hass,
        name="Gran",
        consent="Gran (test)",
        audio=str(media / "voices" / "gran.wav"),
        transcript="The quick brown fox jumps over the lazy dog.",
        language="en",
    )
    assert result["voice_id"] == "gran" and result["name"] == "Gran"
    assert result["quality"]["speech_s"] > 5
    entity = hass.data["tts"].get_entity(ENTITY)
    assert "gran" in {v.voice_id for v in entity.async_get_supported_voices("en")}
    await hass.services.async_call(DOMAIN, "delete_voice", {"voice": "gran"}, blocking=True)
    assert "gran" not in {v.voice_id for v in entity.async_get_supported_voices("en")}


async def test_rejected_sample_reports_the_reasons(hass: HomeAssistant, loaded_entry, media: Path) -> None:
    espeak("Hello.", media / "short.wav")  # under a second of speech
    with pytest.raises(HomeAssistantError) as err:
        await enroll(hass, name="Shorty", consent="Shorty", audio="media-source://media_source/local/short.wav")
    assert err.value.translation_key == "sample_rejected"
    assert "speech" in err.value.translation_placeholders["reasons"]
    entity = hass.data["tts"].get_entity(ENTITY)
    assert "shorty" not in {v.voice_id for v in entity.async_get_supported_voices("en")}


async def test_audio_outside_the_media_folder_or_missing_is_refused(
    hass: HomeAssistant, loaded_entry, media: Path, sample_wav: Path
) -> None:
    for audio in (
        str(sample_wav),
        "media-source://media_source/local/../../etc/passwd",
        "media-source://media_source/local/missing.wav",
    ):
        with pytest.raises(ServiceValidationError) as err:
            await enroll(hass, name="X", consent="X", audio=audio)
        assert err.value.translation_key == "bad_audio"


async def test_delete_unknown_voice(hass: HomeAssistant, loaded_entry) -> None:
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(DOMAIN, "delete_voice", {"voice": "nobody"}, blocking=True)
    assert err.value.translation_key == "unknown_voice"


async def test_speak_plays_tts_on_the_media_players(hass: HomeAssistant, loaded_entry) -> None:
    assert await async_setup_component(hass, "tts", {})
    calls = async_mock_service(hass, "media_player", "play_media")
    await hass.services.async_call(
        DOMAIN,
        "speak",
        {
            "text": "The washing machine is done.",
            "voice": "mum",
            "media_player_entity_id": ["media_player.kitchen", "media_player.hall"],
        },
        blocking=True,
    )
    assert len(calls) == 1
    data = calls[0].data
    assert data["entity_id"] == ["media_player.kitchen", "media_player.hall"]
    assert data["media_content_id"].startswith("media-source://tts/")
    assert "voice" in data["media_content_id"] and "mum" in data["media_content_id"]
    assert ENTITY in data["media_content_id"]


async def test_speak_with_unknown_voice(hass: HomeAssistant, loaded_entry) -> None:
    assert await async_setup_component(hass, "tts", {})
    calls = async_mock_service(hass, "media_player", "play_media")
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            "speak",
            {"text": "Hello.", "voice": "nobody", "media_player_entity_id": "media_player.kitchen"},
            blocking=True,
        )
    assert err.value.translation_key == "unknown_voice" and not calls


async def test_server_unreachable_and_no_server_set_up(hass: HomeAssistant, tmp_path: Path) -> None:
    assert await async_setup_component(hass, DOMAIN, {})
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(DOMAIN, "delete_voice", {"voice": "mum"}, blocking=True)
    assert err.value.translation_key == "not_loaded"
    # An entry whose server answers Wyoming but whose voice API has gone away.
    from .conftest import Server

    server = Server("127.0.0.1", free_port(), free_port(), tmp_path)
    server.start()
    try:
        entry = MockConfigEntry(
            domain=DOMAIN,
            title="VoiceClone (gone)",
            data={"host": "127.0.0.1", "port": server.port, "web_port": free_port()},
        )
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        with pytest.raises(HomeAssistantError) as err:
            await hass.services.async_call(DOMAIN, "delete_voice", {"voice": "mum"}, blocking=True)
        assert err.value.translation_key == "cannot_connect"
    finally:
        server.stop()


def test_every_service_and_error_key_is_translated() -> None:
    import json

    import yaml

    folder = Path(__file__).resolve().parents[1] / "custom_components" / "voiceclone"
    services = yaml.safe_load((folder / "services.yaml").read_text())
    strings = json.loads((folder / "translations" / "en.json").read_text())
    assert set(services) == set(strings["services"])
    for name, spec in services.items():
        assert set(spec["fields"]) == set(strings["services"][name]["fields"])
    used = subprocess.run(
        ["grep", "-rhoE", r"translation_key=\"[a-z_]+\"", str(folder)], capture_output=True, text=True, check=True
    ).stdout
    keys = {line.split('"')[1] for line in used.split()}
    assert keys and keys <= set(strings["exceptions"])
