"""Settings: one typed dataclass tree, loaded from YAML, then environment variables, then CLI overrides.

Precedence (later wins): defaults < YAML file < ``VOICECLONE_*`` environment variables < CLI flags.
Environment names are ``VOICECLONE_<SECTION>__<KEY>`` (``VOICECLONE_SPEECH__QUEUE_SIZE=8``) or
``VOICECLONE_<KEY>`` for top-level keys (``VOICECLONE_DATA_DIR``). CLI overrides use dotted keys
(``--set speech.queue_size=8``). Unknown keys and wrong types raise :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

ENV_PREFIX = "VOICECLONE_"
_TOPIC_ID = re.compile(r"[A-Za-z0-9_-]+")
_NULL_TEXT = {"", "null", "none", "~"}
_EXPONENT_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


class ConfigError(ValueError):
    """A settings file, variable or flag is invalid; the message names the key."""


# Settings that existed once: accepted with a warning (so an old settings file still starts), then ignored.
_REMOVED = {"mqtt.max_text_chars": "speech.max_text_chars is the one text limit of every door"}


def _networks_ok(items: list[str]) -> bool:
    try:
        for item in items:
            ipaddress.ip_network(item, strict=False)
    except ValueError:
        return False
    return True


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/voiceclone`` (``~/.local/share/voiceclone``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "voiceclone"


@dataclass
class EngineSettings:
    """Which cloning engine synthesises speech."""

    name: str = "classic"
    device: str = "cpu"


@dataclass
class ClassicSettings:
    """The embedded CPU engine: a Piper base voice converted towards each enrolled voice."""

    base_voice: str = "en_US-joe-medium"
    base_voices: dict[str, str] = field(default_factory=dict)
    noise_scale: float = 0.667
    noise_w: float = 0.8
    conversion_strength: float = 1.0


@dataclass
class PocketSettings:
    """Kyutai Pocket TTS (CPU): which downloaded model, and how it runs."""

    model: str = "pocket-tts-english"
    language: str = "english"
    threads: int = 0
    quantize: bool = True
    temperature: float = 0.0
    frames_after_eos: int | None = None


@dataclass
class Qwen3Settings:
    """Qwen3-TTS (NVIDIA GPU): which downloaded model, and how it streams."""

    model: str = "qwen3-tts-0.6b"
    max_streams: int = 8
    first_chunk_frames: int = 2
    chunk_frames: int = 4
    max_frames: int = 2048
    min_frames: int = 2
    max_seq_len: int = 2048
    temperature: float = 0.9
    top_k: int = 50
    repetition_penalty: float = 1.05
    cuda_graphs: bool = True


@dataclass
class OmniVoiceSettings:
    """OmniVoice (CPU through an int4 ONNX graph, or an NVIDIA GPU in bf16): which downloaded model, how it decodes."""

    model: str = "omnivoice"
    backend: str = "auto"  # auto: torch on a CUDA device, else onnx; or name one
    steps: int = 16
    guidance_scale: float = 2.0
    threads: int = 0
    onnx_bits: int = 4
    max_prompt_s: float = 10.0


@dataclass
class SpeechSettings:
    """The speech service shared by every door."""

    default_voice: str = ""
    default_language: str = "en"
    max_text_chars: int = 5000
    text_idle_s: float = 60.0
    first_chunk_chars: int = 50
    chunk_chars: int = 180
    queue_size: int = 16
    workers: int = 0
    output_sample_rate: int = 0


@dataclass
class CacheSettings:
    """On-disk LRU cache of rendered audio."""

    enabled: bool = True
    max_mb: int = 256


@dataclass
class WatermarkSettings:
    """The inaudible "AI-generated" mark on every utterance (``voiceclone_core/watermark.py``)."""

    enabled: bool = True


@dataclass
class WyomingSettings:
    """The Wyoming TTS door (Home Assistant Assist and tts.speak)."""

    uri: str = "tcp://127.0.0.1:10200"
    zeroconf: bool = True
    zeroconf_name: str = ""
    samples_per_chunk: int = 1024
    allowed_clients: list[str] = field(default_factory=list)
    header_timeout_s: float = 10.0
    idle_timeout_s: float = 300.0
    max_event_bytes: int = 65536
    max_connections_per_client: int = 8


@dataclass
class WebSettings:
    """The enrollment page and JSON API."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8099
    max_upload_mb: int = 25
    auth: bool = True
    ingress_proxy: str = ""
    allowed_origins: list[str] = field(default_factory=list)
    enrollments_per_hour: int = 20
    previews_per_minute: int = 20
    request_timeout_s: float = 120.0
    header_timeout_s: float = 10.0
    max_connections_per_client: int = 16


@dataclass
class MqttSettings:
    """The MQTT bridge; off while ``host`` is empty."""

    host: str = ""
    port: int = 1883
    username: str = ""
    password: str = ""
    tls: bool = False
    ca_certs: str = ""
    client_id: str = ""
    base_topic: str = "voiceclone"
    discovery_prefix: str = "homeassistant"
    ha_status_topic: str = "homeassistant/status"
    default_target: str = ""


@dataclass
class HomeAssistantSettings:
    """How to reach Home Assistant's REST API and where its media folder is (for playback on speakers)."""

    url: str = ""
    token: str = ""
    media_dir: Path = Path("/media/voiceclone")
    media_source: str = "media-source://media_source/local/voiceclone"
    keep_media_minutes: int = 60


@dataclass
class ModelsSettings:
    """Model checkpoints for the neural engines: fetched only by `voiceclone models download` or at start."""

    hub_url: str = "https://huggingface.co"
    hf_token: str = ""
    download: list[str] = field(default_factory=list)


@dataclass
class Settings:
    """The whole settings tree."""

    data_dir: Path = field(default_factory=default_data_dir)
    models_dir: Path | None = None
    log_level: str = "INFO"
    engine: EngineSettings = field(default_factory=EngineSettings)
    models: ModelsSettings = field(default_factory=ModelsSettings)
    classic: ClassicSettings = field(default_factory=ClassicSettings)
    pocket: PocketSettings = field(default_factory=PocketSettings)
    qwen3: Qwen3Settings = field(default_factory=Qwen3Settings)
    omnivoice: OmniVoiceSettings = field(default_factory=OmniVoiceSettings)
    speech: SpeechSettings = field(default_factory=SpeechSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    watermark: WatermarkSettings = field(default_factory=WatermarkSettings)
    wyoming: WyomingSettings = field(default_factory=WyomingSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    web: WebSettings = field(default_factory=WebSettings)
    homeassistant: HomeAssistantSettings = field(default_factory=HomeAssistantSettings)

    @property
    def voices_dir(self) -> Path:
        return self.data_dir / "voices"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir if self.models_dir is not None else self.data_dir / "models"


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(key: str, value: Any, hint: Any, from_text: bool) -> Any:
    """Check ``value`` against ``hint``; text from env/CLI is parsed first (as YAML scalars)."""
    origin = typing.get_origin(hint)
    if from_text and isinstance(value, str) and hint not in (str, Path, Path | None):
        value = _parse_text(key, value)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if type(None) in args and (value is None or (from_text and str(value).strip().lower() in _NULL_TEXT)):
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(key, value, inner[0], False)
    if hint is Path:
        if isinstance(value, str | Path) and str(value):
            return Path(value).expanduser()
        raise ConfigError(f"{key}: expected a path, got {value!r}")
    if origin is list:
        (item,) = typing.get_args(hint)
        if from_text and isinstance(value, str):  # "a, b" from the environment or --set
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(f"{key}[{i}]", v, item, False) for i, v in enumerate(value)]
    if origin is dict:
        kt, vt = typing.get_args(hint)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return {_coerce(f"{key}.{k}", k, kt, False): _coerce(f"{key}.{k}", v, vt, False) for k, v in value.items()}
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value.strip()):  # YAML 1.1 reads 1e-3 as text
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool) and from_text:
            return str(value)
        raise ConfigError(f"{key}: expected text, got {value!r}")
    raise ConfigError(f"{key}: unsupported setting type {hint!r}")  # pragma: no cover - programming error


def _parse_text(key: str, value: str) -> Any:
    """Environment/CLI text to a value as YAML reads a scalar (numbers, booleans, null, flow mappings)."""
    try:
        return yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"{key}: cannot parse {value!r} ({getattr(exc, 'problem', None) or 'invalid'})") from None


def _apply(obj: Any, data: Mapping[str, Any], prefix: str, from_text: bool) -> None:
    hints = _hints(type(obj))
    for raw_key, value in data.items():
        key = str(raw_key)
        dotted = f"{prefix}{key}"
        if dotted in _REMOVED:
            log.warning("setting %s is no longer used and is ignored: %s", dotted, _REMOVED[dotted])
            continue
        if key not in hints:
            raise ConfigError(f"{dotted}: unknown setting")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if value is None:  # a section whose keys are all commented out
                continue
            if not isinstance(value, Mapping):
                raise ConfigError(f"{dotted}: expected a section (mapping), got {value!r}")
            _apply(getattr(obj, key), value, f"{dotted}.", from_text)
        else:
            setattr(obj, key, _coerce(dotted, value, hint, from_text))


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cur = out
    parts = dotted.split(".")
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value
    return out


def _env_overrides(env: Mapping[str, str]) -> list[tuple[str, str]]:
    items = []
    for name, value in env.items():
        if name.startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX):
            dotted = name[len(ENV_PREFIX) :].lower().replace("__", ".")
            items.append((dotted, value))
    return sorted(items)


def load_settings(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build settings from defaults, an optional YAML file, ``VOICECLONE_*`` variables and dotted overrides."""
    settings = Settings()
    if path is not None:
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read settings file {p}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"settings file {p} is not valid YAML: {exc}") from exc
        if data is not None:
            if not isinstance(data, Mapping):
                raise ConfigError(f"settings file {p}: the top level must be a mapping")
            _apply(settings, data, "", False)
    for dotted, value in _env_overrides(os.environ if env is None else env):
        _apply(settings, _nest(dotted, value), "", True)
    for dotted, value in (overrides or {}).items():
        _apply(settings, _nest(dotted, value), "", isinstance(value, str))
    _validate(settings)
    return settings


_RATES = (8000, 16000, 22050, 24000, 44100, 48000)


def _validate(s: Settings) -> None:
    checks = [
        ("speech.queue_size", s.speech.queue_size >= 1, "must be at least 1"),
        ("speech.workers", s.speech.workers >= 0, "must be 0 (automatic) or more"),
        ("speech.max_text_chars", s.speech.max_text_chars >= 1, "must be at least 1"),
        ("speech.text_idle_s", 0 < s.speech.text_idle_s <= 3600, "must be above 0 and at most 3600"),
        ("speech.first_chunk_chars", s.speech.first_chunk_chars >= 10, "must be at least 10"),
        (
            "speech.chunk_chars",
            s.speech.chunk_chars >= s.speech.first_chunk_chars,
            "must be >= first_chunk_chars",
        ),
        (
            "speech.output_sample_rate",
            s.speech.output_sample_rate in (0, *_RATES),
            f"must be 0 or one of {_RATES}",
        ),
        ("cache.max_mb", s.cache.max_mb >= 0, "must be 0 or more"),
        ("qwen3.max_streams", 1 <= s.qwen3.max_streams <= 64, "must be 1 to 64"),
        ("qwen3.first_chunk_frames", s.qwen3.first_chunk_frames >= 1, "must be at least 1"),
        ("qwen3.chunk_frames", s.qwen3.chunk_frames >= 1, "must be at least 1"),
        ("qwen3.min_frames", 0 <= s.qwen3.min_frames <= s.qwen3.max_frames, "must be 0 to max_frames"),
        ("qwen3.max_seq_len", s.qwen3.max_seq_len >= 64, "must be at least 64"),
        ("qwen3.temperature", s.qwen3.temperature >= 0, "must be 0 (greedy) or more"),
        ("qwen3.repetition_penalty", s.qwen3.repetition_penalty > 0, "must be above 0"),
        ("omnivoice.backend", s.omnivoice.backend in ("auto", "onnx", "torch"), "must be auto, onnx or torch"),
        ("omnivoice.steps", 4 <= s.omnivoice.steps <= 64, "must be 4 to 64"),
        ("omnivoice.guidance_scale", 0 <= s.omnivoice.guidance_scale <= 10, "must be 0 to 10"),
        ("omnivoice.threads", s.omnivoice.threads >= 0, "must be 0 (automatic) or more"),
        ("omnivoice.onnx_bits", s.omnivoice.onnx_bits in (4, 8, 32), "must be 4, 8 or 32 (float)"),
        ("omnivoice.max_prompt_s", 3 <= s.omnivoice.max_prompt_s <= 30, "must be 3 to 30"),
        (
            "wyoming.uri",
            s.wyoming.uri.startswith(("tcp://", "unix://", "stdio://")),
            "must be tcp://, unix:// or stdio://",
        ),
        ("mqtt.port", 1 <= s.mqtt.port <= 65535, "must be a TCP port"),
        ("web.port", 0 <= s.web.port <= 65535, "must be a TCP port"),
        ("web.max_upload_mb", 1 <= s.web.max_upload_mb <= 200, "must be within 1..200"),
        ("mqtt.base_topic", _TOPIC_ID.fullmatch(s.mqtt.base_topic) is not None, "letters, digits, _ and - only"),
        ("mqtt.discovery_prefix", _TOPIC_ID.fullmatch(s.mqtt.discovery_prefix) is not None, "letters, digits, _, -"),
        ("homeassistant.keep_media_minutes", s.homeassistant.keep_media_minutes >= 1, "must be at least 1"),
        ("wyoming.samples_per_chunk", 64 <= s.wyoming.samples_per_chunk <= 65536, "must be within 64..65536"),
        ("wyoming.allowed_clients", _networks_ok(s.wyoming.allowed_clients), "IP addresses or networks (CIDR)"),
        ("wyoming.header_timeout_s", 0 < s.wyoming.header_timeout_s <= 3600, "must be within 0..3600 (not 0)"),
        ("wyoming.idle_timeout_s", 0 < s.wyoming.idle_timeout_s <= 86400, "must be within 0..86400 (not 0)"),
        ("wyoming.max_event_bytes", 1024 <= s.wyoming.max_event_bytes <= 16 << 20, "must be within 1 KiB..16 MiB"),
        ("wyoming.max_connections_per_client", 1 <= s.wyoming.max_connections_per_client <= 1024, "1..1024"),
        ("web.enrollments_per_hour", s.web.enrollments_per_hour >= 1, "must be at least 1"),
        ("web.previews_per_minute", s.web.previews_per_minute >= 1, "must be at least 1"),
        ("web.request_timeout_s", 1 <= s.web.request_timeout_s <= 3600, "must be within 1..3600"),
        ("web.header_timeout_s", 0 < s.web.header_timeout_s <= 3600, "must be within 0..3600 (not 0)"),
        ("web.max_connections_per_client", 1 <= s.web.max_connections_per_client <= 1024, "1..1024"),
        ("classic.conversion_strength", 0.0 <= s.classic.conversion_strength <= 1.5, "must be within 0..1.5"),
        (
            "log_level",
            s.log_level.upper() in {"DEBUG", "INFO", "WARNING", "ERROR"},
            "must be DEBUG/INFO/WARNING/ERROR",
        ),
    ]
    for key, ok, why in checks:
        if not ok:
            raise ConfigError(f"{key}: {why}")
