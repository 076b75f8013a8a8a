"""Config flow (user, zeroconf, hassio) and options flow against a real VoiceClone server."""

from __future__ import annotations

from ipaddress import ip_address

from custom_components.voiceclone.const import CONF_DEFAULT_LANGUAGE, CONF_DEFAULT_VOICE, CONF_WEB_PORT, DOMAIN
from homeassistant import config_entries
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .conftest import Server, entry_data, free_port

ENTITY = "tts.voiceclone_127_0_0_1"


def _zeroconf(server: Server, port: int | None = None, properties: dict | None = None) -> ZeroconfServiceInfo:
    return ZeroconfServiceInfo(
        ip_address=ip_address(server.host),
        ip_addresses=[ip_address(server.host)],
        port=port or server.port,
        hostname="nuc.local.",
        type="_wyoming._tcp.local.",
        name="nuc._wyoming._tcp.local.",
        properties={"web_port": str(server.web_port)} if properties is None else properties,
    )


async def test_user_step_validates_with_describe_and_creates_entry(hass: HomeAssistant, server: Server) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": config_entries.SOURCE_USER})
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "user"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], entry_data(server))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == entry_data(server)
    assert result["result"].unique_id == f"{server.host}:{server.port}"
    await hass.async_block_till_done()
    assert hass.states.get(ENTITY) is not None


async def test_user_step_cannot_connect_then_corrected(hass: HomeAssistant, server: Server) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": config_entries.SOURCE_USER})
    wrong = {**entry_data(server), CONF_PORT: free_port()}  # nothing listens there
    result = await hass.config_entries.flow.async_configure(result["flow_id"], wrong)
    assert result["type"] is FlowResultType.FORM and result["errors"] == {"base": "cannot_connect"}
    no_api = {**entry_data(server), CONF_WEB_PORT: free_port()}  # Wyoming answers, the voice API does not
    result = await hass.config_entries.flow.async_configure(result["flow_id"], no_api)
    assert result["type"] is FlowResultType.FORM and result["errors"] == {CONF_WEB_PORT: "api_unreachable"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], entry_data(server))
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_user_step_rejects_a_wyoming_server_that_is_not_voiceclone(hass: HomeAssistant, tmp_path) -> None:
    """A Wyoming service without our program (e.g. Piper) is refused."""
    from wyoming.info import Attribution, Info, TtsProgram, TtsVoice
    from wyoming.server import AsyncEventHandler, AsyncServer

    class PiperLike(AsyncEventHandler):
        async def handle_event(self, event) -> bool:
            attribution = Attribution(name="x", url="http://x")
            voice = TtsVoice(
                name="joe", attribution=attribution, installed=True, languages=["en"], version=None, description=None
            )
            program = TtsProgram(
                name="piper", attribution=attribution, installed=True, voices=[voice], description=None, version=None
            )
            await self.write_event(Info(tts=[program]).event())
            return False

    port = free_port()
    server = AsyncServer.from_uri(f"tcp://127.0.0.1:{port}")
    await server.start(PiperLike)
    try:
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": config_entries.SOURCE_USER})
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: port, CONF_WEB_PORT: free_port()}
        )
    finally:
        await server.stop()
    assert result["errors"] == {"base": "cannot_connect"}


async def test_already_configured_server_is_not_added_twice(hass: HomeAssistant, server: Server) -> None:
    MockConfigEntry(domain=DOMAIN, data=entry_data(server), unique_id=f"{server.host}:{server.port}").add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": config_entries.SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], entry_data(server))
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "already_configured"
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_ZEROCONF}, data=_zeroconf(server)
    )
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "already_configured"


async def test_zeroconf_discovery_confirms_and_takes_the_web_port_from_txt(hass: HomeAssistant, server: Server) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_ZEROCONF}, data=_zeroconf(server)
    )
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "confirm"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == entry_data(server)


async def test_zeroconf_of_something_else_aborts(hass: HomeAssistant, server: Server) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_ZEROCONF}, data=_zeroconf(server, port=free_port())
    )
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "not_voiceclone"


async def test_hassio_discovery_from_the_addon(hass: HomeAssistant, server: Server) -> None:
    info = HassioServiceInfo(
        config={"uri": f"tcp://{server.host}:{server.port}", "web_port": server.web_port},
        name="VoiceClone",
        slug="voiceclone",
        uuid="1234",
    )
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_HASSIO}, data=info
    )
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "confirm"
    assert result["description_placeholders"] == {"host": server.host}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY and result["data"] == entry_data(server)
    bad = HassioServiceInfo(config={"uri": "not a uri"}, name="VoiceClone", slug="voiceclone", uuid="1234")
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_HASSIO}, data=bad
    )
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "cannot_connect"


async def test_options_flow_sets_default_voice_and_language(hass: HomeAssistant, loaded_entry) -> None:
    result = await hass.config_entries.options.async_init(loaded_entry.entry_id)
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "init"
    schema = result["data_schema"].schema
    voice_choices = next(v for k, v in schema.items() if k == CONF_DEFAULT_VOICE).container
    assert "mum" in voice_choices  # offered from the server's voice list
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_DEFAULT_VOICE: "mum", CONF_DEFAULT_LANGUAGE: "en"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert loaded_entry.options == {CONF_DEFAULT_VOICE: "mum", CONF_DEFAULT_LANGUAGE: "en"}
    entity = hass.data["tts"].get_entity(ENTITY)
    assert entity.default_options == {"voice": "mum"} and entity.default_language == "en"
    assert hass.states.get(ENTITY).state != "unavailable"  # reloaded with the new options
    assert CONF_HOST in loaded_entry.data
