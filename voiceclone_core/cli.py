"""Command line: ``voiceclone enroll | voices | say | detect | rename | delete | serve | models | addon-prepare``.

Every command takes ``--data-dir DIR`` and ``--config FILE`` (and ``--set section.key=value``). Errors print one line
to stderr and exit non-zero: 2 for usage, settings and invalid requests, 75 when the service is busy, 1 otherwise
(the service's one error table, ``service/errors.py``). ``voices``, ``rename``, ``delete`` and ``detect`` never load
an engine. ``detect`` exits 0 when every file carries the watermark, 3 when one does not, 2 when one cannot be read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from voiceclone_core import audio
from voiceclone_core.config import ConfigError, Settings, load_settings
from voiceclone_core.models import PIPER_REPO, ModelError, ModelManager, progress_printer
from voiceclone_core.service import (
    ApiToken,
    InvalidRequest,
    QualityReport,
    RecordingRejected,
    ServiceError,
    ServiceUnavailable,
    SpeechRequest,
    SpeechService,
    build_service,
    exports,
    outcome,
)

log = logging.getLogger("voiceclone")


class CliError(Exception):
    """A user-facing error: printed as one line."""


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, help="where voices, cache and models live")
    common.add_argument("--config", type=Path, help="YAML settings file (see config/voiceclone.yaml)")
    common.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting, e.g. --set speech.queue_size=8 (repeatable)",
    )
    common.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")

    p = argparse.ArgumentParser(prog="voiceclone", description="Household voice-cloning text-to-speech.")
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("enroll", parents=[common], help="enroll a voice from a recording")
    e.add_argument("name", help="display name, e.g. Mum")
    e.add_argument("audio", type=Path, help="recording (WAV, FLAC, OGG or MP3), ideally 30-90 s of speech")
    e.add_argument("--transcript", help="what is said in the recording (improves the clone)")
    e.add_argument("--transcript-file", type=Path, help="read the transcript from a UTF-8 file")
    e.add_argument("--language", help="language of the voice, e.g. en or zh")
    e.add_argument("--id", dest="voice_id", help="voice id (slug); default derived from the name")
    e.add_argument("--consent", help="who agreed to this voice being cloned (required)")

    sub.add_parser("voices", parents=[common], help="list enrolled voices")

    s = sub.add_parser("say", parents=[common], help="speak text in an enrolled voice to a WAV file")
    s.add_argument("text")
    s.add_argument("--voice", help="voice id (default: the configured default voice)")
    s.add_argument("--language")
    s.add_argument("--speed", type=float, default=1.0)
    s.add_argument("--volume", type=float, default=1.0)
    s.add_argument("-o", "--output", type=Path, required=True)

    dt = sub.add_parser("detect", parents=[common], help="tell whether recordings carry the AI-generated watermark")
    dt.add_argument("files", nargs="+", type=Path, help="WAV, FLAC, OGG or MP3 files")
    dt.add_argument("--json", action="store_true", help="print one JSON object per file")

    r = sub.add_parser("rename", parents=[common], help="change a voice's display name")
    r.add_argument("voice_id")
    r.add_argument("name")

    d = sub.add_parser("delete", parents=[common], help="delete a voice and every file of it")
    d.add_argument("voice_id")

    t = sub.add_parser("token", parents=[common], help="show the web API's token (for the Home Assistant integration)")
    t.add_argument("--rotate", action="store_true", help="make a new token; the old one stops working at once")

    sv = sub.add_parser(
        "serve", parents=[common], help="run the network doors: Wyoming, the enrollment page and API, the MQTT bridge"
    )
    sv.add_argument("--uri", help="Wyoming listen address, e.g. tcp://0.0.0.0:10200 (default from settings)")
    sv.add_argument("--no-zeroconf", action="store_true", help="do not announce the server over mDNS")

    m = sub.add_parser("models", parents=[common], help="list, download, verify or export neural-engine models")
    m.add_argument("action", choices=["list", "download", "verify", "export"])
    m.add_argument("names", nargs="*", help="model names (download/verify/export); default for verify: all installed")
    m.add_argument("--force", action="store_true", help="export: rebuild the graph even if an up-to-date one exists")
    m.add_argument("--all", action="store_true", help="list every Piper base voice too, not only installed ones")

    ap = sub.add_parser(
        "addon-prepare", parents=[common], help="add-on start: options.json -> settings file, reconcile the voices list"
    )
    ap.add_argument("--options", type=Path, default=Path("/data/options.json"))
    ap.add_argument("--output", type=Path, default=Path("/data/voiceclone.yaml"))
    ad = sub.add_parser(
        "addon-discovery",
        parents=[common],
        help="add-on start: once the server answers, announce it to Home Assistant through the Supervisor",
    )
    ad.add_argument("--options", type=Path, default=Path("/data/options.json"))
    ad.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the server to answer")
    ad.add_argument("--wyoming-port", type=int, help=argparse.SUPPRESS)  # default: the add-on's ports
    ad.add_argument("--web-port", type=int, help=argparse.SUPPRESS)
    ap.add_argument(
        "--sample-root",
        type=Path,
        action="append",
        dest="sample_roots",
        help="folder recordings may come from (repeatable; default /media and /share)",
    )
    return p


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, str] = {}
    if getattr(args, "uri", None):
        overrides["wyoming.uri"] = args.uri
    if getattr(args, "no_zeroconf", False):
        overrides["wyoming.zeroconf"] = "false"
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = value
    if args.data_dir is not None:
        overrides["data_dir"] = str(args.data_dir)
    return load_settings(args.config, overrides=overrides)


def cmd_enroll(args: argparse.Namespace, service: SpeechService) -> int:
    transcript = args.transcript
    if args.transcript_file is not None:
        try:
            transcript = args.transcript_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot read transcript file {args.transcript_file}: {exc.strerror}") from exc
    if not args.audio.is_file():
        raise CliError(f"no such recording: {args.audio}")
    try:
        enrollment = service.enroll(
            args.name,
            args.audio,
            consent=args.consent,
            transcript=transcript,
            language=args.language,
            voice_id=args.voice_id,
        )
    except RecordingRejected as exc:
        if exc.report is not None:
            _print_report(exc.report)
        raise
    _print_report(enrollment.report)
    profile = enrollment.profile
    print(
        f"enrolled voice '{profile.id}' ({profile.name}, {profile.language}), revision {profile.revision}"
        + (f", {enrollment.mode} conversion" if enrollment.mode else "")
    )
    return 0


def _print_report(report: QualityReport) -> None:
    print(
        f"quality: {report.verdict} — {report.speech_s:.1f} s speech of {report.duration_s:.1f} s, "
        f"SNR {report.snr_db:.0f} dB, clipping {report.clipping_ratio:.2%}, {report.sample_rate} Hz"
        + (f", reverberation {report.rt60_s:.1f} s" if report.rt60_s is not None else "")
    )
    for reason in report.reasons:
        print(f"  - {reason}")


NOT_MARKED_EXIT = 3


def cmd_detect(args: argparse.Namespace, service: SpeechService) -> int:
    """Each file: marked or not, with the detector's confidence. Exit 0 all marked, 3 one not, 2 one unreadable."""
    unreadable = unmarked = False
    for path in args.files:
        try:
            found = service.detect(path)
        except (InvalidRequest, RecordingRejected) as exc:  # this file; a detector that cannot run stops all
            unreadable = True
            answer = {"file": str(path), "error": str(exc)}
            print(json.dumps(answer) if args.json else f"{path}: cannot check: {exc}")
            continue
        unmarked |= not found.marked
        if args.json:
            print(json.dumps({"file": str(path), **found.to_dict()}))
        else:
            verdict = "marked as AI-generated" if found.marked else "not marked"
            print(f"{path}: {verdict} (confidence {found.confidence:.3f}, {found.method}, {found.seconds:.1f} s)")
    return 2 if unreadable else NOT_MARKED_EXIT if unmarked else 0


def cmd_voices(args: argparse.Namespace, service: SpeechService) -> int:
    profiles = service.voices()
    if not profiles:
        print("no voices enrolled")
    for p in profiles:
        print(f"{p.id}\t{p.name}\t{p.language}\tconsent: {p.consent.given_by} ({p.consent.given_at})")
    return 0


def cmd_say(args: argparse.Namespace, service: SpeechService) -> int:
    request = SpeechRequest(args.text, voice=args.voice, language=args.language, speed=args.speed, volume=args.volume)
    speech = asyncio.run(service.synthesize(request))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    audio.write_wav(args.output, speech.audio, speech.sample_rate, speech.file_info())
    print(
        f"wrote {args.output} ({speech.duration_s:.2f} s, {speech.sample_rate} Hz, "
        f"spoken in {', '.join(speech.languages)})"
    )
    return 0


def cmd_rename(args: argparse.Namespace, service: SpeechService) -> int:
    profile = service.rename(args.voice_id, args.name)
    print(f"renamed '{profile.id}' to {profile.name}")
    return 0


def cmd_delete(args: argparse.Namespace, service: SpeechService) -> int:
    service.delete(args.voice_id)
    print(f"deleted voice '{args.voice_id}' and all its files")
    return 0


def cmd_token(args: argparse.Namespace, service: SpeechService) -> int:
    print(service.api_token.rotate() if args.rotate else service.api_token.current())
    return 0


def _model_manager(settings: Settings) -> ModelManager:
    return ModelManager(settings.resolved_models_dir, settings.models.hub_url, settings.models.hf_token)


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    manager = _model_manager(settings)
    if args.action == "list":
        statuses = manager.list()
        hidden = [s for s in statuses if s.spec.repo == PIPER_REPO and not s.installed and not args.all]
        for status in statuses:
            if status in hidden:
                continue
            spec = status.spec
            state = f"installed, {status.size_bytes / 1e6:.0f} MB" if status.installed else "not installed"
            gated = ", gated: needs models.hf_token" if spec.gated else ""
            print(f"{spec.name:32} {spec.engine:8} {state:24} {spec.licence}{gated}\n    {spec.description}")
        if hidden:
            print(f"and {len(hidden)} more Piper base voices (voiceclone models list --all; download piper:<name>)")
        return 0
    if args.action == "download":
        if not args.names:
            raise CliError("name the models to download (see: voiceclone models list)")
        for name in args.names:
            folder = manager.download(name, progress_printer(name, sys.stderr))
            print(f"{name}: installed in {folder}")
            if exports.needs_export(settings, name):
                export_model(settings, name, force=True)
        return 0
    if args.action == "export":
        if not args.names:
            raise CliError("name the models to export (see: voiceclone models list)")
        for name in args.names:
            export_model(settings, name, force=args.force)
        return 0
    names = args.names or [s.spec.name for s in manager.list() if s.installed]
    bad = 0
    for name in names:
        problems = manager.verify(name)
        bad += bool(problems)
        print(f"{name}: {'OK' if not problems else '; '.join(problems)}")
    return 1 if bad else 0


def export_model(settings: Settings, name: str, force: bool = False) -> None:
    """Build the CPU graph of an installed OmniVoice checkpoint (the only models with an export step)."""
    try:
        folder = exports.export_model(settings, name, force=force)
    except ServiceUnavailable as exc:
        raise CliError(str(exc)) from exc
    print(f"{name}: CPU graph {'in ' + str(folder) if folder else 'already up to date'}")


def fetch_configured_models(settings: Settings) -> None:
    """Download the models named in ``models.download`` that are not installed yet, and build an OmniVoice
    checkpoint's CPU graph where it is missing (add-on / compose start)."""
    manager = _model_manager(settings)
    for name in settings.models.download:
        try:
            if not manager.installed(name):
                manager.download(name, progress_printer(name, sys.stderr))
            if exports.needs_export(settings, name):
                export_model(settings, name)
        except (ModelError, CliError) as exc:
            log.error("model %s not available: %s", name, exc)


def cmd_serve(args: argparse.Namespace, service: SpeechService) -> int:
    from voiceclone_core.wyoming.server import WyomingServer

    settings = service.settings
    logging.getLogger().setLevel(settings.log_level.upper())
    fetch_configured_models(settings)
    try:
        service.start()  # load the engine and prepare the voices before the doors open
    except ServiceUnavailable as exc:  # the doors still open: every request and api/health say why
        log.error("%s; serving anyway so that clients can see why (api/health)", exc)

    server_id = service.server_id  # made on the first start, before any door can be asked who we are
    if settings.web.enabled and settings.web.auth and not service.api_token.path.exists():
        print(
            f"web API token (shown once; `voiceclone token` shows it again): {service.api_token.current()}",
            flush=True,
        )

    async def run() -> None:
        server = WyomingServer(service)
        await server.start()
        web_runner = None
        if settings.web.enabled:
            from voiceclone_core.web.app import start_web

            web_runner = await start_web(service, settings.web.host, settings.web.port)
        bridge = None
        if settings.mqtt.host:
            from voiceclone_core.homeassistant import HomeAssistantClient
            from voiceclone_core.mqtt.bridge import MqttBridge

            bridge = MqttBridge(service, HomeAssistantClient.from_settings(settings))
            await bridge.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"serving Wyoming on {settings.wyoming.uri} (port {server.port}; server id {server_id})", flush=True)
        await stop.wait()
        if bridge is not None:
            await bridge.stop()
        if web_runner is not None:
            await web_runner.cleanup()
        await server.stop()

    asyncio.run(run())
    return 0


def cmd_addon_prepare(args: argparse.Namespace, settings: Settings) -> int:
    from voiceclone_core import addon

    try:
        options = addon.load_options(args.options)
        mqtt_service = None if options.get("mqtt_host") else addon.supervisor_mqtt(os.environ.get("SUPERVISOR_TOKEN"))
        tree = addon.settings_from_options(options, mqtt_service)
    except addon.AddonError as exc:
        raise CliError(str(exc)) from exc
    if args.data_dir is not None:  # tests and local runs
        tree["data_dir"] = str(args.data_dir)
    addon.write_settings(tree, args.output)
    roots = tuple(args.sample_roots) if args.sample_roots else addon.SAMPLE_ROOTS
    wanted, invalid = addon.parse_voices(options.get("voices") or [], roots)
    with _service(load_settings(args.output)) as service:
        report = addon.reconcile(service, wanted, keep=set(invalid))
    failed = {**invalid, **report.failed}
    print(
        f"settings written to {args.output}; voices: {len(report.enrolled)} enrolled, {len(report.unchanged)} "
        f"unchanged, {len(report.deleted)} deleted, {len(failed)} failed"
    )
    for voice_id, why in failed.items():
        print(f"  voice {voice_id} not available: {why}")
    return 0


def cmd_addon_discovery(args: argparse.Namespace, settings: Settings) -> int:
    from voiceclone_core import addon

    token = os.environ.get("SUPERVISOR_TOKEN")
    if not token:
        raise CliError("SUPERVISOR_TOKEN is not set: discovery works only inside the add-on")
    try:
        options = addon.load_options(args.options)
        wyoming_port, web_port = args.wyoming_port or addon.WYOMING_PORT, args.web_port or addon.WEB_PORT
        health = addon.wait_until_serving(wyoming_port, web_port, args.timeout)
    except addon.AddonError as exc:
        raise CliError(str(exc)) from exc
    api_token = ApiToken(settings.data_dir).current() if settings.web.auth else ""
    messages = addon.discovery_messages(
        health, socket.gethostname(), bool(options.get("wyoming_discovery")), wyoming_port, api_token
    )
    return 0 if addon.announce(token, messages) else 1


@contextlib.contextmanager
def _service(settings: Settings) -> Iterator[SpeechService]:
    service = build_service(settings)
    try:
        yield service
    finally:
        service.close()


def _with_service(command: Callable[[argparse.Namespace, SpeechService], int]) -> Command:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        with _service(settings) as service:
            return command(args, service)

    return run


Command = Callable[[argparse.Namespace, Settings], int]
COMMANDS: dict[str, Command] = {
    "enroll": _with_service(cmd_enroll),
    "voices": _with_service(cmd_voices),
    "say": _with_service(cmd_say),
    "detect": _with_service(cmd_detect),
    "rename": _with_service(cmd_rename),
    "delete": _with_service(cmd_delete),
    "token": _with_service(cmd_token),
    "serve": _with_service(cmd_serve),
    "addon-prepare": cmd_addon_prepare,
    "addon-discovery": cmd_addon_discovery,
    "models": cmd_models,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``voiceclone`` console script."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = _settings(args)
        return COMMANDS[args.command](args, settings)
    except ConfigError as exc:
        print(f"voiceclone: settings error: {exc}", file=sys.stderr)
        return 2
    except ServiceError as exc:
        print(f"voiceclone: {exc}", file=sys.stderr)
        return outcome(exc).exit_code
    except (CliError, ModelError) as exc:
        print(f"voiceclone: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"voiceclone: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
