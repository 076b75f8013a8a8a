"""Web door: the enrollment page and the JSON API behind it (served on a port, or through add-on ingress).

Every URL in the page is relative, so it works unchanged under Home Assistant's ingress prefix. API:

* ``GET  api/health`` · ``GET api/metrics`` · ``GET api/passage?language=xx`` (text to read aloud)
* ``GET  api/voices`` · ``POST api/voices`` (multipart: ``audio`` file, ``name``, ``consent``, ``transcript``?,
  ``language``?, ``id``?) · ``DELETE api/voices/{id}``
* ``POST api/check`` (multipart ``audio``): the QualityReport only, nothing saved
* ``POST api/voices/{id}/preview`` (JSON ``{"text"?}``): a WAV in that voice
"""

from __future__ import annotations

import asyncio
import json
import logging
from importlib import resources
from typing import Any

from aiohttp import web

from voiceclone_core import audio
from voiceclone_core.engines.base import EngineError
from voiceclone_core.speech import (
    NothingToSay,
    Priority,
    ServiceBusy,
    SpeechError,
    SpeechRequest,
    SpeechService,
    UnknownVoice,
)
from voiceclone_core.voices import VoiceError, VoiceNotFound, check_voice_id

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 25 * 1024 * 1024
AUDIO_TYPES = ("audio/", "application/octet-stream")
PASSAGES = {
    "en": (
        "The kitchen lights are on, and the washing machine has finished its cycle. Please remember to take the "
        "laundry out before dinner. Tomorrow morning it will be cold and windy, so wear a warm coat when you walk "
        "the dog. The front door is locked and the garage is closed. Your package arrived this afternoon and is "
        "waiting on the porch. Good night, sleep well, and see you at breakfast."
    ),
    "zh": "厨房的灯开着，洗衣机已经洗完了。晚饭前请记得把衣服拿出来晾干。明天早上又冷又有风，遛狗的时候要穿暖和一点。"
    "前门已经锁好了，车库也关上了。你的包裹今天下午到了，放在门廊上。晚安，明天早餐见。",
}
PREVIEW = {
    "en": "Hello! This is how I sound now. The washing machine is done.",
    "zh": "你好！这是我现在的声音。洗衣机洗好了。",
}
SERVICE_KEY: web.AppKey[SpeechService] = web.AppKey("service", SpeechService)


def _json_error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def _profile_json(p: Any) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "language": p.language,
        "created": p.created,
        "updated": p.updated,
        "revision": p.revision,
        "consent": {"given_by": p.consent.given_by, "given_at": p.consent.given_at},
        "quality": p.quality,
        "origin": p.origin,
    }


async def _read_form(request: web.Request) -> tuple[dict[str, str], bytes]:
    """Fields and the ``audio`` part of a multipart upload; clear errors for anything else."""
    if not request.content_type.startswith("multipart/form-data"):
        raise web.HTTPUnsupportedMediaType(
            text=json.dumps({"error": "send multipart/form-data with an 'audio' file"}), content_type="application/json"
        )
    fields: dict[str, str] = {}
    data = b""
    reader = await request.multipart()
    async for part in reader:
        if part.name == "audio":
            ctype = part.headers.get("Content-Type", "application/octet-stream")
            if not ctype.startswith(AUDIO_TYPES):
                raise web.HTTPUnsupportedMediaType(
                    text=json.dumps({"error": f"'audio' must be an audio file, not {ctype}"}),
                    content_type="application/json",
                )
            data = bytes(await part.read(decode=False))
        elif part.name:
            fields[part.name] = (await part.text())[:2000]
    if not data:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "no 'audio' file in the upload"}), content_type="application/json"
        )
    return fields, data


async def index(request: web.Request) -> web.Response:
    page = resources.files("voiceclone_core.web").joinpath("static/index.html").read_text(encoding="utf-8")
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})


async def health(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    voices = await asyncio.to_thread(service.library.list)
    return web.json_response(
        {
            "status": "ok",
            "engine": service.engine.name,
            "engine_version": service.engine.version,
            "languages": list(service.engine.languages),
            "voices": len(voices),
        }
    )


async def metrics(request: web.Request) -> web.Response:
    return web.json_response(request.app[SERVICE_KEY].metrics_snapshot())


async def passage(request: web.Request) -> web.Response:
    lang = request.query.get("language", "en")[:2]
    return web.json_response(
        {"language": lang if lang in PASSAGES else "en", "text": PASSAGES.get(lang, PASSAGES["en"])}
    )


async def list_voices(request: web.Request) -> web.Response:
    profiles = await asyncio.to_thread(request.app[SERVICE_KEY].library.list)
    return web.json_response({"voices": [_profile_json(p) for p in profiles]})


async def check(request: web.Request) -> web.Response:
    _, data = await _read_form(request)
    try:
        x, sr = await asyncio.to_thread(audio.decode, data)
    except audio.AudioError as exc:
        return _json_error(422, str(exc))
    report = await asyncio.to_thread(audio.assess, x, sr)
    return web.json_response({"quality": report.to_dict()})


async def enroll(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    fields, data = await _read_form(request)
    try:
        profile, report = await asyncio.to_thread(
            service.library.enroll,
            fields.get("name", ""),
            data,
            consent=fields.get("consent"),
            transcript=fields.get("transcript"),
            language=fields.get("language") or None,
            voice_id=fields.get("id") or None,
            origin="web",
        )
    except audio.SampleRejected as exc:
        return _json_error(422, f"recording rejected: {exc}", quality=exc.report.to_dict())
    except (VoiceError, audio.AudioError) as exc:
        return _json_error(400, str(exc))
    except EngineError as exc:
        return _json_error(422, str(exc))
    return web.json_response({"voice": _profile_json(profile), "quality": report.to_dict()}, status=201)


def _voice_id(request: web.Request) -> str:
    try:
        return check_voice_id(request.match_info["voice_id"])
    except VoiceError as exc:
        raise web.HTTPBadRequest(text=json.dumps({"error": str(exc)}), content_type="application/json") from None


async def delete_voice(request: web.Request) -> web.Response:
    voice_id = _voice_id(request)
    try:
        await asyncio.to_thread(request.app[SERVICE_KEY].library.delete, voice_id)
    except VoiceNotFound as exc:
        return _json_error(404, str(exc))
    return web.Response(status=204)


async def preview(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    voice_id = _voice_id(request)
    body: dict[str, Any] = {}
    if request.can_read_body and request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            return _json_error(400, "the body must be JSON")
    try:
        profile = await asyncio.to_thread(service.library.get, voice_id)
        lang = profile.language[:2]
        text = str(body.get("text") or PREVIEW.get(lang, PREVIEW["en"]))[:500]
        clip, sr = await service.synthesize(SpeechRequest(text, voice=voice_id, priority=Priority.INTERACTIVE))
    except (VoiceNotFound, UnknownVoice) as exc:
        return _json_error(404, str(exc))
    except ServiceBusy as exc:
        return _json_error(503, str(exc))
    except (NothingToSay, SpeechError) as exc:
        return _json_error(422, str(exc))
    return web.Response(body=audio.encode_wav(clip, sr), content_type="audio/wav")


def create_app(service: SpeechService, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> web.Application:
    """The aiohttp application (uploads above ``max_upload_bytes`` are refused with 413)."""
    app = web.Application(client_max_size=max_upload_bytes)
    app[SERVICE_KEY] = service
    app.add_routes(
        [
            web.get("/", index),
            web.get("/api/health", health),
            web.get("/api/metrics", metrics),
            web.get("/api/passage", passage),
            web.get("/api/voices", list_voices),
            web.post("/api/voices", enroll),
            web.post("/api/check", check),
            web.delete("/api/voices/{voice_id}", delete_voice),
            web.post("/api/voices/{voice_id}/preview", preview),
        ]
    )
    return app


async def start_web(service: SpeechService, host: str, port: int) -> web.AppRunner:
    """Serve the app on host:port (returns the runner; ``await runner.cleanup()`` stops it)."""
    max_bytes = service.settings.web.max_upload_mb * 1024 * 1024
    runner = web.AppRunner(create_app(service, max_bytes), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("web page on http://%s:%d/", host, port)
    return runner
