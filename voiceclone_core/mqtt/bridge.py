"""MQTT bridge: Home Assistant device discovery, speech commands, results, availability.

Topics (``~`` = the base topic, ``voiceclone`` by default):

* ``~/availability`` — ``online`` / ``offline`` (retained; ``offline`` is our last will).
* ``~/speak`` — JSON ``{"text", "voice"?, "language"?, "target"?, "volume"?, "id"?}``; the answer goes to
  ``~/speak/result`` (not retained): ``{"id", "status": "done"|"error", "error"?, "code"?, "first_audio_s"?,
  "duration_s"?, "languages"?}``. The service checks the text, voice, language and volume, with the same words
  (and ``code``) as every other door.
* ``~/notify/<voice_id>`` — plain text, spoken in that voice on the default target (the "Speak as …" entities).
* ``~/reload`` — the "Reload voices" button: re-publish discovery and state.
* ``~/state`` — JSON with the service state, queue depth and the last first-audio latency (the sensors).
* ``<discovery_prefix>/device/voiceclone/config`` — one retained device-based discovery message.

paho-mqtt runs its network loop in its own thread and reconnects by itself (1-10 s backoff); every (re)connect
and every ``online`` from Home Assistant re-publishes discovery, availability and state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import secrets
import ssl
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from voiceclone_core.homeassistant import HomeAssistantClient, HomeAssistantError, MediaStore
from voiceclone_core.service import InvalidRequest, Priority, ServiceError, SpeechRequest, SpeechService, outcome

log = logging.getLogger(__name__)
INVALID = outcome(InvalidRequest("")).code  # a malformed command: the code every door gives an invalid request

DEVICE_ID = "voiceclone"


class CommandError(ValueError):
    """A speak command is malformed or cannot be carried out."""


class MqttBridge:
    """Connects the speech service to an MQTT broker and Home Assistant."""

    def __init__(
        self,
        service: SpeechService,
        ha: HomeAssistantClient | None = None,
        media: MediaStore | None = None,
    ) -> None:
        self.service = service
        self.settings = service.settings.mqtt
        self.ha = ha
        self.media = media or MediaStore.from_settings(service.settings)
        self.base = self.settings.base_topic
        self.discovery_topic = f"{self.settings.discovery_prefix}/device/{DEVICE_ID}/config"
        self._published_path = service.settings.data_dir / "mqtt-discovered-voices.json"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.connected = asyncio.Event()
        client_id = self.settings.client_id or f"voiceclone-{secrets.token_hex(3)}"
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if self.settings.username:
            self.client.username_pw_set(self.settings.username, self.settings.password or None)
        if self.settings.tls:
            self.client.tls_set(ca_certs=self.settings.ca_certs or None, cert_reqs=ssl.CERT_REQUIRED)
        self.client.will_set(self.topic("availability"), "offline", qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        service.subscribe(self._voice_changed)

    def topic(self, suffix: str) -> str:
        return f"{self.base}/{suffix}"

    # -- life cycle ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect in the background (retrying until the broker answers)."""
        self._loop = asyncio.get_running_loop()
        self.client.connect_async(self.settings.host, self.settings.port, keepalive=30)
        self.client.loop_start()

    async def stop(self) -> None:
        """Say ``offline``, disconnect and wait for running commands."""
        if self.client.is_connected():
            info = self.client.publish(self.topic("availability"), "offline", qos=1, retain=True)
            await asyncio.to_thread(info.wait_for_publish, 2)
        self.client.disconnect()
        self.client.loop_stop()
        for task in list(self._tasks):
            task.cancel()

    # -- paho callbacks (network thread) -------------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            log.error("MQTT broker refused the connection: %s", reason_code)
            return
        log.info("connected to MQTT broker %s:%d", self.settings.host, self.settings.port)
        client.subscribe(
            [
                (self.topic("speak"), 1),
                (self.topic("notify/+"), 1),
                (self.topic("reload"), 1),
                (self.settings.ha_status_topic, 1),
            ]
        )
        self.publish_all()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.connected.set)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            log.warning("MQTT connection lost (%s); reconnecting", reason_code)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.connected.clear)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        topic = message.topic
        if topic == self.settings.ha_status_topic:
            if message.payload.decode("utf-8", "replace").strip() == "online":
                delay = random.uniform(0.2, 1.5)  # Home Assistant restarted: let it settle, then re-announce
                self._submit(self._republish_after(delay))
        elif topic == self.topic("speak"):
            self._submit(self.handle_speak(message.payload))
        elif topic.startswith(self.topic("notify/")):
            voice_id = topic.rsplit("/", 1)[1]
            self._submit(self.handle_notify(voice_id, message.payload))
        elif topic == self.topic("reload"):
            self.publish_all()

    def _submit(self, coro: Any) -> None:
        if self._loop is None:
            coro.close()
            return

        def schedule() -> None:
            task = asyncio.ensure_future(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        self._loop.call_soon_threadsafe(schedule)

    async def _republish_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self.publish_all()

    def _voice_changed(self, event: str, voice_id: str) -> None:
        self.publish_all()

    # -- publishing ----------------------------------------------------------------------------------------
    def publish_all(self) -> None:
        """Availability, discovery and state (safe from any thread)."""
        if not self.client.is_connected():
            return
        self.client.publish(self.topic("availability"), "online", qos=1, retain=True)
        self.client.publish(self.discovery_topic, json.dumps(self.discovery_payload()), qos=1, retain=True)
        self.publish_state()

    def publish_state(self) -> None:
        metrics = self.service.metrics_snapshot()
        last = metrics["first_audio_s_last"]
        state = {
            "state": "ready",
            "queue_depth": metrics["queue_depth"],
            "first_audio_s": round(last, 3) if last is not None else None,
        }
        self.client.publish(self.topic("state"), json.dumps(state), qos=0, retain=True)

    def discovery_payload(self) -> dict[str, Any]:
        """One device-based discovery message: a notify entity per voice, three sensors and a button."""
        from importlib.metadata import version

        voices = self.service.voices()
        current = {v.id for v in voices}
        previous = self._load_published()
        components: dict[str, dict[str, Any]] = {}
        for profile in voices:
            components[f"notify_{profile.id}"] = {
                "p": "notify",
                "name": f"Speak as {profile.name}",
                "unique_id": f"{DEVICE_ID}_notify_{profile.id}",
                "command_topic": self.topic(f"notify/{profile.id}"),
                "icon": "mdi:account-voice",
            }
        for gone in sorted(previous - current):  # removes that voice's entity from Home Assistant
            components[f"notify_{gone}"] = {"p": "notify"}
        state_topic = self.topic("state")
        components["service_state"] = {
            "p": "sensor",
            "name": "Service state",
            "unique_id": f"{DEVICE_ID}_state",
            "state_topic": state_topic,
            "value_template": "{{ value_json.state }}",
            "icon": "mdi:account-voice",
        }
        components["first_audio_latency"] = {
            "p": "sensor",
            "name": "First audio latency",
            "unique_id": f"{DEVICE_ID}_first_audio_latency",
            "state_topic": state_topic,
            "value_template": "{{ value_json.first_audio_s }}",
            "unit_of_measurement": "s",
            "device_class": "duration",
            "state_class": "measurement",
            "entity_category": "diagnostic",
        }
        components["queue_depth"] = {
            "p": "sensor",
            "name": "Queue depth",
            "unique_id": f"{DEVICE_ID}_queue_depth",
            "state_topic": state_topic,
            "value_template": "{{ value_json.queue_depth }}",
            "state_class": "measurement",
            "entity_category": "diagnostic",
        }
        components["reload_voices"] = {
            "p": "button",
            "name": "Reload voices",
            "unique_id": f"{DEVICE_ID}_reload_voices",
            "command_topic": self.topic("reload"),
            "entity_category": "config",
        }
        self._save_published(current)
        sw = version("voiceclone")
        return {
            "dev": {"ids": [DEVICE_ID], "name": "VoiceClone", "mf": "VoiceClone", "mdl": "Voice cloning TTS", "sw": sw},
            "o": {"name": "voiceclone", "sw": sw},
            "avty_t": self.topic("availability"),
            "cmps": components,
        }

    def _load_published(self) -> set[str]:
        try:
            return set(json.loads(self._published_path.read_text()))
        except (FileNotFoundError, ValueError):
            return set()

    def _save_published(self, ids: set[str]) -> None:
        """Keep the ids announced (family members' names): owner-only (0600), replaced whole."""
        path = self._published_path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(sorted(ids)))
            os.replace(tmp, path)  # an older, world-readable file is replaced, not rewritten in place
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise

    # -- commands ------------------------------------------------------------------------------------------
    async def handle_notify(self, voice_id: str, payload: bytes) -> dict[str, Any]:
        """A notify entity's message: speak it in that voice on the default target."""
        return await self._run({"text": payload.decode("utf-8", "replace"), "voice": voice_id})

    async def handle_speak(self, payload: bytes) -> dict[str, Any]:
        """A ``~/speak`` command; every outcome is published on ``~/speak/result``."""
        try:
            command = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            return self._result({"status": "error", "error": f"invalid JSON: {exc}", "code": INVALID})
        if not isinstance(command, dict):
            return self._result({"status": "error", "error": "the command must be a JSON object", "code": INVALID})
        return await self._run(command)

    async def _run(self, command: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {"id": command.get("id")}
        try:
            request, targets = self._parse(command)
            speech = await self.service.synthesize(request)
            result.update(
                first_audio_s=round(speech.first_audio_s or 0.0, 3),
                duration_s=round(speech.duration_s, 3),
                languages=list(speech.languages),
            )
            stem = request.voice if isinstance(request.voice, str) and request.voice else "voice"
            _, media_id = await asyncio.to_thread(
                self.media.save, speech.audio, speech.sample_rate, stem, speech.file_info()
            )
            await self.ha.play_media(targets, media_id)
            result.update(status="done", targets=targets, media_content_id=media_id)
        except ServiceError as exc:
            result.update(status="error", error=str(exc), code=outcome(exc).code)
        except CommandError as exc:
            result.update(status="error", error=str(exc), code=INVALID)
        except HomeAssistantError as exc:
            result.update(status="error", error=str(exc), code="home_assistant")
        except Exception as exc:  # never let one command take the bridge down
            log.exception("speak command failed")
            result.update(status="error", error=f"internal error: {exc}", code="internal")
        self.publish_state()
        return self._result(result)

    def _parse(self, command: dict[str, Any]) -> tuple[SpeechRequest, list[str]]:
        """The speech request and where to play it; the service checks the request's values itself."""
        targets = _targets(command.get("target"), self.settings.default_target)
        if self.ha is None:
            raise CommandError("Home Assistant is not configured: set homeassistant.url and homeassistant.token")
        request = SpeechRequest(
            command.get("text", ""),
            voice=command.get("voice") or None,
            language=command.get("language") or None,
            volume=command.get("volume", 1.0),
            priority=Priority.ANNOUNCEMENT,
        )
        return request, targets

    def _result(self, result: dict[str, Any]) -> dict[str, Any]:
        self.client.publish(self.topic("speak/result"), json.dumps(result), qos=1, retain=False)
        return result


def _targets(target: Any, default: str) -> list[str]:
    if target is None or target == "" or target == []:
        targets = [t.strip() for t in default.split(",") if t.strip()]
        if not targets:
            raise CommandError("no target media player: give 'target' or set mqtt.default_target")
        return targets
    items = [target] if isinstance(target, str) else target
    if not isinstance(items, list) or not all(isinstance(t, str) and t.startswith("media_player.") for t in items):
        raise CommandError("'target' must be a media_player entity id or a list of them")
    return items
