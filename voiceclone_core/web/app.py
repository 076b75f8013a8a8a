"""Web door: the enrollment page and the JSON API behind it (served on a port, or through add-on ingress).

Every URL in the page is relative, so it works unchanged under Home Assistant's ingress prefix. API:

* ``GET  api/health`` · ``GET api/metrics`` · ``GET api/passage?language=xx`` (text to read aloud)
* ``GET  api/voices`` · ``POST api/voices`` (multipart: ``audio`` file, ``name``, ``consent``, ``transcript``?,
  ``language``?, ``id``?) · ``DELETE api/voices/{id}``
* ``POST api/check`` (multipart ``audio``): the QualityReport only, nothing saved
* ``POST api/detect`` (multipart ``audio``): whether the recording carries the AI-generated watermark
* ``POST api/voices/{id}/preview`` (JSON ``{"text"?, "language"?}``): a WAV in that voice (``Content-Language``:
  the languages spoken)

Errors are JSON ``{"error", "code"}`` with the status of the service's error table, the same words as every door.
"""

from __future__ import annotations

import asyncio
import json
import logging
from importlib import resources
from typing import Any

import aiohttp
from aiohttp import web

from voiceclone_core import audio
from voiceclone_core.service import (
    InvalidRequest,
    Priority,
    RecordingRejected,
    ServiceError,
    SpeechRequest,
    SpeechService,
    VoiceProfile,
    outcome,
)
from voiceclone_core.web.connections import ConnectionGate, GuardedSite
from voiceclone_core.web.guard import Guard, json_error

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 25 * 1024 * 1024
AUDIO_TYPES = ("audio/", "application/octet-stream")
FIELDS = ("name", "consent", "transcript", "language", "id")
MAX_FIELD_BYTES = 64 * 1024  # a transcript of a 10-minute recording is well under this
SERVICE_KEY: web.AppKey[SpeechService] = web.AppKey("service", SpeechService)


@web.middleware
async def service_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every service error as JSON ``{"error", "code"}`` with the status of the shared error table; aiohttp's own
    refusals under ``api/`` (unknown path, wrong method, oversized body) in the same shape."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith("/api/") or exc.content_type == "application/json":
            raise
        code = exc.reason.lower().replace(" ", "_")
        keep = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return json_error(exc.status, exc.text or exc.reason, code, keep)
    except ServiceError as exc:
        extra: dict[str, Any] = {}
        if isinstance(exc, RecordingRejected) and exc.report is not None:
            extra["quality"] = exc.report.to_dict()
        return json_error(outcome(exc).http_status, str(exc), outcome(exc).code, **extra)


def _profile_json(p: VoiceProfile) -> dict[str, Any]:
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


class _Refused(web.HTTPClientError):
    """A 4xx answer with our JSON body (any client-error status)."""

    def __init__(self, status: int, message: str, code: str) -> None:
        self.status_code = status
        super().__init__(text=json.dumps({"error": message, "code": code}), content_type="application/json")


def _refuse(status: int, message: str, code: str = "invalid_request") -> web.HTTPException:
    return _Refused(status, message, code)


async def _read_part(part: Any, limit: int, what: str) -> bytes:
    """A part's raw bytes, refused with 413 as soon as it passes ``limit``."""
    data = bytearray()
    while chunk := await part.read_chunk(65536):
        data += chunk
        if len(data) > limit:
            raise _refuse(413, f"{what} is larger than {limit} bytes", "too_large")
    return bytes(data)


async def _read_form(request: web.Request) -> tuple[dict[str, str], bytes]:
    """Fields and the ``audio`` part of a multipart upload, within the upload limit (the whole body), the field
    limits and ``web.request_timeout_s``; a clear 4xx for anything else, never a silently shortened field."""
    if not request.content_type.startswith("multipart/form-data"):
        raise _refuse(415, "send multipart/form-data with an 'audio' file", "unsupported")
    settings = request.app[SERVICE_KEY].settings.web
    budget = settings.max_upload_mb * 1024 * 1024 + MAX_FIELD_BYTES * len(FIELDS)
    fields: dict[str, str] = {}
    data = b""
    try:
        async with asyncio.timeout(settings.request_timeout_s):
            reader = await request.multipart()
            async for part in reader:
                if part.name == "audio":
                    ctype = (part.headers.get("Content-Type") or "application/octet-stream").lower()
                    if not ctype.startswith(AUDIO_TYPES) or ctype == "audio/":
                        raise _refuse(415, f"'audio' must be an audio file, not {ctype}", "unsupported")
                    data = await _read_part(part, settings.max_upload_mb * 1024 * 1024, "the recording")
                    budget -= len(data)
                elif part.name in FIELDS:
                    raw = await _read_part(part, MAX_FIELD_BYTES, f"the field '{part.name}'")
                    budget -= len(raw)
                    fields[part.name] = raw.decode("utf-8")
                else:
                    budget -= len(await _read_part(part, MAX_FIELD_BYTES, "an unknown field"))
                if budget < 0:
                    raise _refuse(413, "the upload is too large", "too_large")
    except TimeoutError:
        raise _refuse(408, "the upload took too long to arrive", "timeout") from None
    except UnicodeDecodeError:
        raise _refuse(400, "form fields must be UTF-8 text") from None
    except (ValueError, AssertionError, aiohttp.ClientPayloadError) as exc:  # aiohttp's multipart parser
        raise _refuse(400, f"malformed multipart upload: {exc}") from None
    if not data:
        raise _refuse(400, "no 'audio' file in the upload")
    return fields, data


async def index(request: web.Request) -> web.Response:
    page = resources.files("voiceclone_core.web").joinpath("static/index.html").read_text(encoding="utf-8")
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})


async def health(request: web.Request) -> web.Response:
    """Who the server is and whether it can speak: 200 when the engine runs, 503 (with the reason) otherwise."""
    h = await asyncio.to_thread(request.app[SERVICE_KEY].health)
    body: dict[str, Any] = {
        "status": h.status,
        "server_id": h.server_id,
        "version": h.version,
        "voices": h.voices,
        "missing_models": list(h.missing_models),
    }
    if h.engine is not None:
        body.update(engine=h.engine.name, engine_version=h.engine.version, languages=list(h.engine.languages))
    if h.error:
        body["error"] = h.error
    return web.json_response(body, status=200 if h.status == "ok" else 503)


async def metrics(request: web.Request) -> web.Response:
    return web.json_response(request.app[SERVICE_KEY].metrics_snapshot())


async def passage(request: web.Request) -> web.Response:
    language, words = request.app[SERVICE_KEY].reading_passage(request.query.get("language"))
    return web.json_response({"language": language, "text": words})


async def list_voices(request: web.Request) -> web.Response:
    profiles = await asyncio.to_thread(request.app[SERVICE_KEY].voices)
    return web.json_response({"voices": [_profile_json(p) for p in profiles]})


async def check(request: web.Request) -> web.Response:
    _, data = await _read_form(request)
    report = await asyncio.to_thread(request.app[SERVICE_KEY].check_recording, data)
    return web.json_response({"quality": report.to_dict()})


async def detect(request: web.Request) -> web.Response:
    """``{"marked", "confidence", "seconds", "method", "payload"}`` for an uploaded recording; nothing is kept."""
    _, data = await _read_form(request)
    found = await asyncio.to_thread(request.app[SERVICE_KEY].detect, data)
    return web.json_response(found.to_dict())


async def enroll(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    fields, data = await _read_form(request)
    enrollment = await asyncio.to_thread(
        service.enroll,
        fields.get("name", ""),
        data,
        consent=fields.get("consent"),
        transcript=fields.get("transcript"),
        language=fields.get("language") or None,
        voice_id=fields.get("id") or None,
        origin="web",
    )
    return web.json_response(
        {"voice": _profile_json(enrollment.profile), "quality": enrollment.report.to_dict()}, status=201
    )


async def delete_voice(request: web.Request) -> web.Response:
    await asyncio.to_thread(request.app[SERVICE_KEY].delete, request.match_info["voice_id"])
    return web.Response(status=204)


async def preview(request: web.Request) -> web.Response:
    """A WAV of the voice saying ``text`` (default: a sentence in the voice's own language)."""
    service = request.app[SERVICE_KEY]
    voice_id = request.match_info["voice_id"]
    body: Any = {}
    if request.can_read_body and request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise InvalidRequest("the body must be JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequest('the body must be a JSON object such as {"text": "Hello"}')
    words = body.get("text") or await asyncio.to_thread(service.preview_sentence, voice_id)
    said = SpeechRequest(words, voice=voice_id, language=body.get("language"), priority=Priority.INTERACTIVE)
    speech = await service.synthesize(said)
    headers = {"Content-Language": ", ".join(speech.languages)}
    return web.Response(
        body=audio.encode_wav(speech.audio, speech.sample_rate, speech.file_info()),
        content_type="audio/wav",
        headers=headers,
    )


def create_app(service: SpeechService, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> web.Application:
    """The aiohttp application (uploads above ``max_upload_bytes`` are refused with 413)."""
    guard = Guard(service.settings.web, service.api_token)
    app = web.Application(client_max_size=max_upload_bytes, middlewares=[guard.middleware, service_errors])
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
            web.post("/api/detect", detect),
            web.delete("/api/voices/{voice_id}", delete_voice),
            web.post("/api/voices/{voice_id}/preview", preview),
        ]
    )
    return app


async def start_web(service: SpeechService, host: str, port: int) -> web.AppRunner:
    """Serve the app on host:port (returns the runner; ``await runner.cleanup()`` stops it)."""
    max_bytes = service.settings.web.max_upload_mb * 1024 * 1024
    web_settings = service.settings.web
    runner = web.AppRunner(create_app(service, max_bytes), access_log=None)
    await runner.setup()
    gate = ConnectionGate(web_settings.max_connections_per_client, web_settings.header_timeout_s)
    await GuardedSite(runner, host, port, gate).start()
    log.info("web page on http://%s:%d/", host, port)
    return runner
