"""Home Assistant add-on glue: options → settings file, voice-list reconciliation, Supervisor services.

On every start the add-on's run script calls ``voiceclone addon-prepare``: the options Supervisor wrote to
``/data/options.json`` become ``/data/voiceclone.yaml`` (settings for ``voiceclone serve``), the voice library is
reconciled with the ``voices`` option (new or changed samples enrolled, voices removed from the list deleted, each
rejection logged with its reasons while the others go ahead), and MQTT credentials come from the Supervisor's MQTT
service when the user gave none. Once the server answers, ``voiceclone addon-discovery`` announces it to Home
Assistant through the Supervisor (``voiceclone`` for our integration; ``wyoming`` too if the user asks).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info

from voiceclone_core.homeassistant import HomeAssistantClient, HomeAssistantError
from voiceclone_core.service import (
    InvalidRequest,
    RecordingRejected,
    ServiceError,
    SpeechService,
    recording_digest,
    voice_id_for,
)

log = logging.getLogger(__name__)

SUPERVISOR = "http://supervisor"
ORIGIN = "addon-options"
SAMPLE_ROOTS = (Path("/media"), Path("/share"))
WYOMING_PORT = 10200
INGRESS_PROXY = "172.30.32.2"  # the Supervisor's ingress proxy: requests from it were authenticated by Home Assistant
WEB_PORT = 8099  # the Supervisor's default ingress port (addon/config.yaml does not repeat it)


class AddonError(ValueError):
    """The add-on options are invalid."""


def settings_from_options(options: dict[str, Any], mqtt_service: dict[str, Any] | None = None) -> dict[str, Any]:
    """The settings tree (as written to the YAML file) for the add-on's options."""
    tree: dict[str, Any] = {
        "data_dir": "/data",
        "models_dir": "/data/models",
        "log_level": str(options.get("log_level", "info")).upper(),
        "engine": {"name": options.get("engine", "classic")},
        "models": {
            "download": [
                *(options.get("download_models") or []),
                *(f"piper:{voice}" for voice in options.get("piper_voices") or []),
            ],
            "hf_token": options.get("hf_token") or "",
        },
        "speech": {"default_voice": options.get("default_voice") or ""},
        **({"omnivoice": {"steps": int(options["omnivoice_steps"])}} if options.get("omnivoice_steps") else {}),
        "cache": {"max_mb": int(options.get("cache_mb", 256))},
        "watermark": {"enabled": bool(options.get("watermark", True))},
        "wyoming": {"uri": f"tcp://0.0.0.0:{WYOMING_PORT}", "zeroconf": False},
        "web": {"enabled": True, "host": "0.0.0.0", "port": WEB_PORT, "ingress_proxy": INGRESS_PROXY},
        "homeassistant": {
            "media_dir": "/media/voiceclone",
            "media_source": "media-source://media_source/local/voiceclone",
        },
    }
    mqtt: dict[str, Any] = {
        "base_topic": options.get("mqtt_topic") or "voiceclone",
        "default_target": ",".join(options.get("default_media_players") or []),
    }
    if options.get("mqtt_host"):
        mqtt.update(
            host=options["mqtt_host"],
            port=int(options.get("mqtt_port") or 1883),
            username=options.get("mqtt_username") or "",
            password=options.get("mqtt_password") or "",
        )
    elif mqtt_service:
        mqtt.update(
            host=mqtt_service.get("host", ""),
            port=int(mqtt_service.get("port", 1883)),
            username=mqtt_service.get("username", ""),
            password=mqtt_service.get("password", ""),
            tls=bool(mqtt_service.get("ssl", False)),
        )
    tree["mqtt"] = mqtt
    return tree


def write_settings(tree: dict[str, Any], path: Path) -> None:
    """Write the settings YAML privately (it may hold the MQTT password)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        yaml.safe_dump(tree, f, sort_keys=False, allow_unicode=True)
    os.replace(tmp, path)


@dataclass
class VoiceOption:
    """One entry of the ``voices`` option."""

    id: str
    name: str
    sample: Path
    consent: str
    transcript: str | None = None
    language: str | None = None


def parse_voices(
    entries: list[dict[str, Any]], roots: tuple[Path, ...] = SAMPLE_ROOTS
) -> tuple[list[VoiceOption], dict[str, str]]:
    """Validate the ``voices`` option entry by entry: valid voices, and the problem of each invalid entry
    (keyed by its voice id, so that an existing voice with a broken entry is kept rather than deleted)."""
    out: list[VoiceOption] = []
    errors: dict[str, str] = {}
    for i, entry in enumerate(entries or []):
        name = str(entry.get("name") or "").strip()
        key = f"voices[{i}]"
        try:
            if not name:
                raise AddonError("'name' is required")
            key = voice_id_for(name, str(entry.get("id") or "") or None)
            if key in {v.id for v in out}:
                raise AddonError(f"the id '{key}' is used twice")
            sample = resolve_sample(str(entry.get("sample") or ""), roots)
            if sample is None:
                raise AddonError("'sample' must be a file path under /media or /share")
            out.append(
                VoiceOption(
                    key,
                    name,
                    sample,
                    str(entry.get("consent") or "").strip(),
                    (entry.get("transcript") or "").strip() or None,
                    entry.get("language") or None,
                )
            )
        except (AddonError, InvalidRequest) as exc:
            errors[key] = str(exc)
            log.error("voice option %s (%s) ignored: %s", key, name or "?", exc)
    return out, errors


def resolve_sample(value: str, roots: tuple[Path, ...]) -> Path | None:
    """An absolute path inside one of ``roots`` (relative paths are taken under the first), else None."""
    if not value:
        return None
    candidate = Path(value) if value.startswith("/") else roots[0] / value
    resolved = candidate.resolve()
    for root in roots:
        if resolved.is_relative_to(root.resolve()):
            return resolved
    return None


@dataclass
class ReconcileReport:
    enrolled: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def reconcile(service: SpeechService, wanted: list[VoiceOption], keep: set[str] = frozenset()) -> ReconcileReport:
    """Make the library match the ``voices`` option; one bad voice never stops the others.

    Only voices this option created are deleted when they leave the list: voices enrolled on the web page or
    with the CLI are left alone, and so are voices in ``keep`` (entries that are listed but invalid).
    """
    report = ReconcileReport()
    existing = {p.id: p for p in service.voices()}
    for voice in wanted:
        try:
            if not voice.sample.is_file():
                raise AddonError(f"sample file {voice.sample} does not exist")
            digest = recording_digest(voice.sample)
            current = existing.get(voice.id)
            if (
                current is not None
                and current.source_sha256 == digest
                and current.transcript == voice.transcript
                and (voice.language is None or current.language == voice.language)
            ):
                if current.name != voice.name:
                    service.rename(voice.id, voice.name)
                    report.renamed.append(voice.id)
                report.unchanged.append(voice.id)
                continue
            enrollment = service.enroll(
                voice.name,
                voice.sample,
                consent=voice.consent,
                transcript=voice.transcript,
                language=voice.language,
                voice_id=voice.id,
                origin=ORIGIN,
            )
            report.enrolled.append(voice.id)
            quality = enrollment.report
            log.info("voice %s enrolled (%s)%s", voice.id, quality.verdict, "".join(f"; {r}" for r in quality.reasons))
        except RecordingRejected as exc:
            report.failed[voice.id] = "; ".join(exc.report.reasons) if exc.report is not None else str(exc)
            log.error("voice %s not enrolled, the recording was rejected: %s", voice.id, report.failed[voice.id])
        except (AddonError, ServiceError, OSError) as exc:
            report.failed[voice.id] = str(exc)
            log.error("voice %s not enrolled: %s", voice.id, exc)
    listed = {v.id for v in wanted} | set(keep)
    for profile in existing.values():
        if profile.origin == ORIGIN and profile.id not in listed:
            service.delete(profile.id)
            report.deleted.append(profile.id)
            log.info("voice %s deleted (removed from the add-on's voices list)", profile.id)
    return report


def _supervisor(method: str, path: str, token: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    return HomeAssistantClient(SUPERVISOR, token).request(method, path, body) or {}


def supervisor_mqtt(token: str | None) -> dict[str, Any] | None:
    """The MQTT broker the Supervisor offers (``GET /services/mqtt``), or None when there is none."""
    if not token:
        return None
    try:
        reply = _supervisor("GET", "/services/mqtt", token)
    except HomeAssistantError as exc:
        log.info("no MQTT service from the Supervisor (%s): the MQTT bridge stays off", exc)
        return None
    data = reply.get("data") or {}
    return data if data.get("host") else None


def wait_until_serving(
    wyoming_port: int = WYOMING_PORT, web_port: int = WEB_PORT, timeout_s: float = 900.0, host: str = "127.0.0.1"
) -> dict[str, Any]:
    """Wait until the server answers a Wyoming ``describe`` and ``api/health`` (the engine may take minutes to
    load); its health JSON. :class:`AddonError` if it does not answer within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            asyncio.run(_describe(host, wyoming_port))
            return _health(host, web_port)
        except (OSError, TimeoutError, ValueError) as exc:
            last = str(exc) or type(exc).__name__
        time.sleep(1.0)
    raise AddonError(f"the server did not answer on ports {wyoming_port}/{web_port} within {timeout_s:.0f} s: {last}")


async def _describe(host: str, port: int) -> None:
    async with asyncio.timeout(5), AsyncTcpClient(host, port) as client:
        await client.write_event(Describe().event())
        while True:
            event = await client.read_event()
            if event is None:
                raise ConnectionError("closed before answering describe")
            if Info.is_type(event.type):
                return


def _health(host: str, port: int) -> dict[str, Any]:
    """``api/health`` as JSON (503 included: an engine that cannot start is still a server to announce)."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/api/health", timeout=5) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
    data = json.loads(body)
    if not isinstance(data, dict) or not data.get("server_id"):
        raise ValueError("api/health did not say who the server is")
    return data


def discovery_messages(
    health: dict[str, Any],
    hostname: str,
    also_wyoming: bool = False,
    wyoming_port: int = WYOMING_PORT,
    token: str = "",
) -> list[dict[str, Any]]:
    """What to post to the Supervisor: always ``voiceclone`` (our integration: Wyoming URI, web/API port, the
    server's id, the API token — the Supervisor hands discovery only to Home Assistant); ``wyoming`` too when the
    user wants core's Wyoming integration to be offered the server."""
    uri = f"tcp://{hostname}:{wyoming_port}"
    ours = {"uri": uri, "web_port": WEB_PORT, "server_id": health["server_id"], "version": health.get("version", "")}
    if token:
        ours["token"] = token
    messages = [{"service": "voiceclone", "config": ours}]
    if also_wyoming:
        messages.append({"service": "wyoming", "config": {"uri": uri}})
    return messages


def announce(token: str, messages: list[dict[str, Any]]) -> bool:
    """Post each discovery message to the Supervisor; False (logged) if any was refused."""
    ok = True
    for message in messages:
        try:
            _supervisor("POST", "/discovery", token, message)
        except HomeAssistantError as exc:
            log.error("discovery %r through the Supervisor failed: %s", message["service"], exc)
            ok = False
        else:
            log.info("announced %s at %s to Home Assistant", message["service"], message["config"]["uri"])
    return ok


def load_options(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AddonError(f"cannot read add-on options {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise AddonError(f"add-on options {path} must be a JSON object")
    return data
