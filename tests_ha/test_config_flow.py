"""Config flow (user, zeroconf, hassio) and options flow against a real VoiceClone server."""

from __future__ import annotations

from ipaddress import ip_address

import pytest
from custom_components.voiceclone.const import CONF_DEFAULT_LANGUAGE, CONF_DEFAULT_VOICE, CONF_WEB_PORT, DOMAIN
from homeassistant import config_entries, data_entry_flow
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockModule,
    mock_config_flow,
    mock_integration,
    mock_platform,
)

from .conftest import Server, entry_data, free_port

ENTITY = "tts.voiceclone_127_0_0_1_voices"


def _zeroconf(server: Server, port: int | None = None, properties: dict | None = None) -> ZeroconfServiceInfo:
    ours = {"web_port": str(server.web_port), "server_id": server.server_id}  # the TXT record our server announces
    return ZeroconfServiceInfo(
        ip_address=ip_address(server.host),
        ip_addresses=[ip_address(server.host)],
        port=port or server.port,
        hostname="nuc.local.",
        type="_wyoming._tcp.local.",
        name="nuc._wyoming._tcp.local.",
        properties=ours if properties is None else properties,
    )


async def test_user_step_validates_with_describe_and_creates_entry(hass: HomeAssistant, server: Server) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": config_entries.SOURCE_USER})
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "user"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], entry_data(server))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == entry_data(server)
    assert result["result"].unique_id == server.server_id  # the server's own id, not its address
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
    MockConfigEntry(domain=DOMAIN, data=entry_data(server), unique_id=server.server_id).add_to_hass(hass)
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
    assert CONF_TOKEN in result["data_schema"].schema  # zeroconf never carries the token: the user gives it
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_TOKEN: "wrong"})
    assert result["type"] is FlowResultType.FORM and result["errors"] == {CONF_TOKEN: "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_TOKEN: server.token})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == entry_data(server)


async def test_zeroconf_of_something_else_aborts(hass: HomeAssistant, server: Server) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_ZEROCONF}, data=_zeroconf(server, port=free_port())
    )
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "not_voiceclone"


async def test_supervisor_discovery_as_home_assistant_delivers_it(hass: HomeAssistant, server: Server) -> None:
    """The add-on posts ``voiceclone`` discovery; the Supervisor pushes its uuid to HA's hassio discovery view, which
    reads the message and the add-on's name back from the Supervisor and starts our flow: it ends in an entry."""
    import inspect
    from unittest.mock import AsyncMock, MagicMock, patch
    from uuid import uuid4

    from aiohasupervisor.models import Discovery
    from homeassistant.components.hassio import discovery as hassio_discovery

    uuid = uuid4()
    message = Discovery(
        addon="a0d7b954_voiceclone",
        service=DOMAIN,
        uuid=uuid,
        config={
            "uri": f"tcp://{server.host}:{server.port}",
            "web_port": server.web_port,
            "server_id": server.server_id,
            "token": server.token,
            "version": "0.2.0",
        },
    )
    supervisor = MagicMock()
    supervisor.discovery.get = AsyncMock(return_value=message)
    supervisor.addons.addon_info = AsyncMock(return_value=MagicMock(name="info"))
    supervisor.addons.addon_info.return_value.name = "VoiceClone"
    with patch.object(hassio_discovery, "get_supervisor_client", return_value=supervisor):
        # HA 2025.4 builds the view from (hass, hassio); 2026 from hass alone
        takes_hassio = len(inspect.signature(hassio_discovery.HassIODiscovery).parameters) > 1
        view = hassio_discovery.HassIODiscovery(*((hass, MagicMock()) if takes_hassio else (hass,)))
        response = await view.post(MagicMock(), uuid.hex)
    assert response.status == 200
    supervisor.discovery.get.assert_awaited_once_with(uuid)
    await hass.async_block_till_done(wait_background_tasks=True)  # HA starts discovery flows as background tasks
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert len(flows) == 1 and flows[0]["context"]["source"] == config_entries.SOURCE_HASSIO
    assert flows[0]["step_id"] == "confirm" and flows[0]["context"]["unique_id"] == server.server_id
    form = await hass.config_entries.flow.async_configure(flows[0]["flow_id"])  # the confirm form as shown
    assert CONF_TOKEN not in form["data_schema"].schema  # the add-on sent the token: nothing to type
    result = await hass.config_entries.flow.async_configure(flows[0]["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY and result["data"] == entry_data(server)
    assert result["result"].unique_id == server.server_id
    await hass.async_block_till_done()
    assert hass.states.get(ENTITY) is not None
    bad = HassioServiceInfo(config={"uri": "not a uri"}, name="VoiceClone", slug="voiceclone", uuid="1234")
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_HASSIO}, data=bad
    )
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "cannot_connect"


async def test_a_server_that_moved_updates_its_entry(hass: HomeAssistant, server: Server) -> None:
    """Discovery of a known server id at a new address (zeroconf or the add-on) updates the entry, no new one."""
    old = {**entry_data(server), CONF_HOST: "192.0.2.7", CONF_PORT: 10200}
    entry = MockConfigEntry(domain=DOMAIN, data=old, unique_id=server.server_id)
    entry.add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_ZEROCONF}, data=_zeroconf(server)
    )
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "already_configured"
    assert entry.data == entry_data(server)
    entry2 = MockConfigEntry(domain=DOMAIN, data=old, unique_id="another-server")
    entry2.add_to_hass(hass)
    info = HassioServiceInfo(
        config={"uri": "tcp://192.0.2.8:10200", "web_port": 8099, "server_id": "another-server"},
        name="VoiceClone",
        slug="voiceclone",
        uuid="5678",
    )
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_HASSIO}, data=info
    )
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "already_configured"
    assert (entry2.data[CONF_HOST], entry2.data[CONF_PORT]) == ("192.0.2.8", 10200)
    assert len(hass.config_entries.async_entries(DOMAIN)) == 2


async def test_reconfigure_moves_the_entry_but_not_to_another_server(hass: HomeAssistant, server: Server) -> None:
    old = {**entry_data(server), CONF_PORT: free_port()}
    entry = MockConfigEntry(domain=DOMAIN, data=old, unique_id=server.server_id)
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "reconfigure"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], old)
    assert result["errors"] == {"base": "cannot_connect"}  # checked, as in the user step
    result = await hass.config_entries.flow.async_configure(result["flow_id"], entry_data(server))
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "reconfigure_successful"
    assert entry.data == entry_data(server)
    other = MockConfigEntry(domain=DOMAIN, data=old, unique_id="a-different-server")
    other.add_to_hass(hass)
    result = await other.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], entry_data(server))
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "wrong_server"
    assert other.data == old
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(entry.entry_id)  # reloaded by the reconfigure: stop its polling


async def test_entries_keyed_by_address_adopt_the_server_id(hass: HomeAssistant, server: Server) -> None:
    entry = MockConfigEntry(domain=DOMAIN, data=entry_data(server), unique_id=f"{server.host}:{server.port}")
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.unique_id == server.server_id
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_adding_voiceclone_withdraws_core_wyomings_offer_of_the_same_service(
    hass: HomeAssistant, server: Server
) -> None:
    """Our server is also a plain `_wyoming._tcp` service: once VoiceClone has it, the Wyoming card goes away."""

    class WyomingOffer(config_entries.ConfigFlow):  # core Wyoming's zeroconf step: keyed on the service name
        async def async_step_zeroconf(self, discovery_info):
            await self.async_set_unique_id(discovery_info.name)
            return self.async_show_form(step_id="zeroconf_confirm")

        async def async_step_zeroconf_confirm(self, user_input=None):
            return self.async_create_entry(title="Wyoming", data={})  # pragma: no cover - never confirmed here

    mock_integration(hass, MockModule("wyoming"))
    mock_platform(hass, "wyoming.config_flow", None)
    with mock_config_flow("wyoming", WyomingOffer):
        offer = await hass.config_entries.flow.async_init(
            "wyoming", context={"source": config_entries.SOURCE_ZEROCONF}, data=_zeroconf(server)
        )
        assert offer["type"] is FlowResultType.FORM
        result = await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": config_entries.SOURCE_ZEROCONF}, data=_zeroconf(server)
        )
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_TOKEN: server.token})
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert hass.config_entries.flow.async_progress_by_handler("wyoming") == []
        with pytest.raises(data_entry_flow.UnknownFlow):
            hass.config_entries.flow.async_get(offer["flow_id"])


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


async def test_user_step_refuses_a_wrong_token(hass: HomeAssistant, server: Server) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": config_entries.SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**entry_data(server), CONF_TOKEN: "not-the-token"}
    )
    assert result["type"] is FlowResultType.FORM and result["errors"] == {CONF_TOKEN: "invalid_auth"}


async def test_a_rotated_token_starts_reauth_which_takes_the_new_one(hass: HomeAssistant, tmp_path, sample_wav) -> None:
    """Its own server, since the token changes: `voiceclone token --rotate` → the next poll fails auth → reauth."""
    from datetime import timedelta

    from pytest_homeassistant_custom_component.common import async_fire_time_changed

    from .conftest import voiceclone

    server = Server("127.0.0.1", free_port(), free_port(), tmp_path)
    server.start()
    try:
        entry = MockConfigEntry(domain=DOMAIN, data=entry_data(server), unique_id="rotating")
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        new = voiceclone("token", "--rotate", "--data-dir", str(tmp_path)).stdout.strip()
        assert new == server.token != entry.data[CONF_TOKEN]
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=31))
        await hass.async_block_till_done(wait_background_tasks=True)
        flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        assert [f["context"]["source"] for f in flows] == [config_entries.SOURCE_REAUTH]
        result = await hass.config_entries.flow.async_configure(flows[0]["flow_id"], {CONF_TOKEN: "stale"})
        assert result["errors"] == {CONF_TOKEN: "invalid_auth"}
        result = await hass.config_entries.flow.async_configure(flows[0]["flow_id"], {CONF_TOKEN: new})
        assert result["type"] is FlowResultType.ABORT and result["reason"] == "reauth_successful"
        assert entry.data[CONF_TOKEN] == new
        await hass.async_block_till_done()
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        server.stop()
