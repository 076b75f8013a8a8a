"""Tests for voiceclone_core.config: defaults, the example YAML, precedence, type checks and validation."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from voiceclone_core.config import ConfigError, Settings, default_data_dir, load_settings

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "voiceclone.yaml"


def _write(tmp_path: Path, text: str, name: str = "settings.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _dotted_keys(cls: type, prefix: str = "") -> list[str]:
    """Every settings key of a dataclass tree, as dotted names (sections recursed into, mappings are leaves)."""
    keys: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            keys.extend(_dotted_keys(hint, f"{prefix}{f.name}."))
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def _lookup(data: Any, dotted: str) -> bool:
    cur = data
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return False
        cur = cur[part]
    return True


# --- defaults and the example file -----------------------------------------------------------------------


def test_defaults_load_without_a_file() -> None:
    s = load_settings(env={})
    assert s == Settings()
    assert s.data_dir == default_data_dir()
    assert s.models_dir is None
    assert s.log_level == "INFO"
    assert (s.engine.name, s.engine.device) == ("classic", "cpu")
    assert s.classic.base_voice == "en_US-joe-medium"
    assert s.classic.base_voices == {}
    assert s.speech.queue_size == 16
    assert (s.speech.first_chunk_chars, s.speech.chunk_chars) == (50, 180)
    assert s.speech.output_sample_rate == 0
    assert s.cache.enabled is True
    assert s.cache.max_mb == 256
    assert s.voices_dir == s.data_dir / "voices"
    assert s.cache_dir == s.data_dir / "cache"
    assert s.resolved_models_dir == s.data_dir / "models"


def test_dotted_key_walker_sees_the_whole_tree() -> None:
    keys = _dotted_keys(Settings)
    assert "data_dir" in keys
    assert "speech.queue_size" in keys
    assert "classic.base_voices" in keys
    assert "cache.enabled" in keys
    assert "speech" not in keys  # sections are recursed into, not reported as keys
    assert len(keys) == len(set(keys))


def test_example_yaml_equals_the_defaults_except_data_dir() -> None:
    example = load_settings(EXAMPLE, env={})
    defaults = Settings()
    assert example.data_dir == Path("~/.local/share/voiceclone").expanduser()
    for f in dataclasses.fields(Settings):
        if f.name == "data_dir":
            continue
        assert getattr(example, f.name) == getattr(defaults, f.name), f.name
    assert isinstance(example.classic.noise_scale, float)


def test_example_yaml_documents_every_key() -> None:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    missing = [key for key in _dotted_keys(Settings) if not _lookup(data, key)]
    assert missing == [], f"config/voiceclone.yaml does not document: {missing}"


def test_example_yaml_has_no_extra_keys() -> None:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    documented = set(_dotted_keys(Settings))

    def walk(node: dict[str, Any], prefix: str) -> list[str]:
        out = []
        for k, v in node.items():
            dotted = f"{prefix}{k}"
            if isinstance(v, dict) and dotted not in documented:
                out.extend(walk(v, f"{dotted}."))
            else:
                out.append(dotted)
        return out

    assert set(walk(data, "")) == documented


# --- the YAML file ---------------------------------------------------------------------------------------


def test_yaml_values_are_applied(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "data_dir: ~/voices-here\n"
        f"models_dir: {tmp_path / 'models'}\n"
        "log_level: debug\n"
        "engine:\n  device: cuda:0\n"
        "classic:\n  base_voices: {zh: zh_CN-huayan-medium}\n  noise_scale: 1\n"
        "speech:\n  queue_size: 4\n  default_voice: mum\n  output_sample_rate: 48000\n"
        "cache:\n  enabled: false\n",
    )
    s = load_settings(path, env={})
    assert s.data_dir == Path.home() / "voices-here"
    assert s.models_dir == tmp_path / "models"
    assert s.resolved_models_dir == tmp_path / "models"
    assert s.log_level == "debug"
    assert s.engine.device == "cuda:0"
    assert s.engine.name == "classic"  # untouched keys of a section keep their defaults
    assert s.classic.base_voices == {"zh": "zh_CN-huayan-medium"}
    assert s.classic.noise_scale == 1.0 and isinstance(s.classic.noise_scale, float)
    assert s.speech.queue_size == 4
    assert s.speech.default_voice == "mum"
    assert s.speech.output_sample_rate == 48000
    assert s.speech.chunk_chars == 180
    assert s.cache.enabled is False


def test_path_may_be_given_as_str(tmp_path: Path) -> None:
    path = _write(tmp_path, "speech:\n  queue_size: 3\n")
    assert load_settings(str(path), env={}).speech.queue_size == 3


def test_empty_yaml_file_gives_the_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, "# nothing set yet\n")
    assert load_settings(path, env={}) == Settings()


@pytest.mark.parametrize("text", ["- a\n- b\n", "just some text\n", "42\n"])
def test_yaml_file_that_is_not_a_mapping_is_refused(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_settings(path, env={})


def test_invalid_yaml_file_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "speech:\n  queue_size: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML") as exc:
        load_settings(path, env={})
    assert str(path) in str(exc.value)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="cannot read settings file") as exc:
        load_settings(path, env={})
    assert str(path) in str(exc.value)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


# --- precedence: defaults < YAML < environment < overrides ----------------------------------------------


def test_env_overrides_yaml(tmp_path: Path) -> None:
    path = _write(tmp_path, f"data_dir: {tmp_path / 'from-yaml'}\nspeech:\n  queue_size: 4\n  workers: 2\n")
    env = {
        "VOICECLONE_SPEECH__QUEUE_SIZE": "8",
        "VOICECLONE_DATA_DIR": str(tmp_path / "from-env"),
    }
    s = load_settings(path, env=env)
    assert s.speech.queue_size == 8
    assert s.data_dir == tmp_path / "from-env"
    assert s.speech.workers == 2  # YAML value not named in the environment survives


def test_env_without_a_file() -> None:
    s = load_settings(env={"VOICECLONE_SPEECH__QUEUE_SIZE": "8", "VOICECLONE_LOG_LEVEL": "WARNING"})
    assert s.speech.queue_size == 8
    assert s.log_level == "WARNING"


def test_unrelated_environment_variables_are_ignored() -> None:
    env = {"HOME": "/nowhere", "VOICECLONE": "x", "VOICECLONE_": "y", "XVOICECLONE_LOG_LEVEL": "z"}
    assert load_settings(env=env) == Settings()


def test_overrides_beat_env_and_yaml(tmp_path: Path) -> None:
    path = _write(tmp_path, "speech:\n  queue_size: 4\ncache:\n  max_mb: 10\n")
    env = {"VOICECLONE_SPEECH__QUEUE_SIZE": "8", "VOICECLONE_CACHE__MAX_MB": "20"}
    s = load_settings(path, env=env, overrides={"speech.queue_size": "12", "data_dir": str(tmp_path / "cli")})
    assert s.speech.queue_size == 12
    assert s.cache.max_mb == 20  # env still beats YAML where no override is given
    assert s.data_dir == tmp_path / "cli"


def test_overrides_accept_typed_values() -> None:
    s = load_settings(env={}, overrides={"speech.queue_size": 3, "cache.enabled": False, "classic.noise_w": 0.5})
    assert s.speech.queue_size == 3
    assert s.cache.enabled is False
    assert s.classic.noise_w == 0.5


def test_typed_overrides_are_still_type_checked() -> None:
    with pytest.raises(ConfigError, match=r"speech\.queue_size"):
        load_settings(env={}, overrides={"speech.queue_size": True})


# --- text from the environment / CLI is parsed -----------------------------------------------------------


def test_text_from_env_is_parsed() -> None:
    env = {
        "VOICECLONE_SPEECH__QUEUE_SIZE": "8",
        "VOICECLONE_CACHE__ENABLED": "false",
        "VOICECLONE_CLASSIC__NOISE_SCALE": "0.5",
        "VOICECLONE_CLASSIC__CONVERSION_STRENGTH": "1",
        "VOICECLONE_ENGINE__DEVICE": "cuda:0",
        "VOICECLONE_SPEECH__DEFAULT_LANGUAGE": "zh",
        "VOICECLONE_MODELS_DIR": "null",
    }
    s = load_settings(env=env)
    assert s.speech.queue_size == 8
    assert s.cache.enabled is False
    assert s.classic.noise_scale == 0.5
    assert s.classic.conversion_strength == 1.0 and isinstance(s.classic.conversion_strength, float)
    assert s.engine.device == "cuda:0"
    assert s.speech.default_language == "zh"
    assert s.models_dir is None


def test_true_from_env_is_a_bool() -> None:
    s = load_settings(env={"VOICECLONE_CACHE__ENABLED": "true"}, overrides={"speech.workers": "3"})
    assert s.cache.enabled is True
    assert s.speech.workers == 3


def test_numeric_text_for_a_text_setting_stays_text() -> None:
    s = load_settings(env={"VOICECLONE_ENGINE__DEVICE": "1"})
    assert s.engine.device == "1"


def test_mapping_setting_from_env_text() -> None:
    s = load_settings(env={"VOICECLONE_CLASSIC__BASE_VOICES": "{zh: zh_CN-huayan-medium}"})
    assert s.classic.base_voices == {"zh": "zh_CN-huayan-medium"}


def test_empty_text_for_a_text_setting_is_empty() -> None:
    s = load_settings(env={"VOICECLONE_SPEECH__DEFAULT_VOICE": ""}, overrides={"log_level": "INFO"})
    assert s.speech.default_voice == ""


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"VOICECLONE_SPEECH__QUEUE_SIZE": "eight"}, "speech.queue_size"),
        ({"VOICECLONE_CACHE__ENABLED": "1"}, "cache.enabled"),
        ({"VOICECLONE_CLASSIC__NOISE_W": "loud"}, "classic.noise_w"),
        ({"VOICECLONE_SPEECH__QUEUE_SIZE": ""}, "speech.queue_size"),
    ],
)
def test_wrong_type_from_env_names_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(env=env)
    assert str(exc.value).startswith(f"{key}:")


# --- unknown keys and wrong types ------------------------------------------------------------------------


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "log_level: INFO\nvolume_knob: 11\n")
    with pytest.raises(ConfigError, match="unknown setting") as exc:
        load_settings(path, env={})
    assert "volume_knob" in str(exc.value)


def test_unknown_key_in_a_section(tmp_path: Path) -> None:
    path = _write(tmp_path, "speech:\n  queue_size: 4\n  queue_sise: 5\n")
    with pytest.raises(ConfigError, match="unknown setting") as exc:
        load_settings(path, env={})
    assert "speech.queue_sise" in str(exc.value)


def test_unknown_key_from_env_and_overrides() -> None:
    with pytest.raises(ConfigError, match=r"speech\.nope"):
        load_settings(env={"VOICECLONE_SPEECH__NOPE": "1"})
    with pytest.raises(ConfigError, match=r"^nope: unknown setting"):
        load_settings(env={}, overrides={"nope.x": "1"})
    with pytest.raises(ConfigError, match=r"cache\.size"):
        load_settings(env={}, overrides={"cache.size": "1"})


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("speech:\n  queue_size: eight\n", "speech.queue_size"),  # string for int
        ("speech:\n  queue_size: 2.5\n", "speech.queue_size"),  # float for int
        ("speech:\n  queue_size: true\n", "speech.queue_size"),  # bool for int
        ("cache:\n  enabled: 1\n", "cache.enabled"),  # int for bool
        ("cache:\n  enabled: 'yes please'\n", "cache.enabled"),  # string for bool
        ("speech: [1, 2]\n", "speech"),  # list for a section
        ("speech: 5\n", "speech"),  # scalar for a section
        ("log_level: {a: 1}\n", "log_level"),  # mapping for a scalar
        ("speech:\n  queue_size: {a: 1}\n", "speech.queue_size"),  # mapping for a scalar in a section
        ("engine:\n  name: 3\n", "engine.name"),  # int for text (a file is not parsed text)
        ("classic:\n  noise_scale: true\n", "classic.noise_scale"),  # bool for float
        ("classic:\n  base_voices: [a, b]\n", "classic.base_voices"),  # list for a mapping
        ("classic:\n  base_voices: {zh: 3}\n", "classic.base_voices.zh"),  # wrong value inside a mapping
        ("data_dir: 5\n", "data_dir"),  # int for a path
        ("data_dir: [a]\n", "data_dir"),  # list for a path
    ],
)
def test_wrong_type_in_yaml_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_settings(path, env={})
    assert str(exc.value).startswith(f"{key}:"), str(exc.value)


def test_models_dir_accepts_null_and_a_path(tmp_path: Path) -> None:
    assert load_settings(_write(tmp_path, "models_dir: null\n"), env={}).models_dir is None
    s = load_settings(_write(tmp_path, "models_dir: ~/models\n", "b.yaml"), env={})
    assert s.models_dir == Path.home() / "models"


# --- validation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"speech.queue_size": "0"}, "speech.queue_size"),
        ({"speech.workers": "-1"}, "speech.workers"),
        ({"speech.max_text_chars": "0"}, "speech.max_text_chars"),
        ({"speech.first_chunk_chars": "5", "speech.chunk_chars": "180"}, "speech.first_chunk_chars"),
        ({"speech.chunk_chars": "40"}, "speech.chunk_chars"),  # below first_chunk_chars (50)
        ({"speech.output_sample_rate": "12345"}, "speech.output_sample_rate"),
        ({"cache.max_mb": "-1"}, "cache.max_mb"),
        ({"classic.conversion_strength": "2"}, "classic.conversion_strength"),
        ({"classic.conversion_strength": "-0.1"}, "classic.conversion_strength"),
        ({"log_level": "LOUD"}, "log_level"),
    ],
)
def test_validation_errors_name_the_key(overrides: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(env={}, overrides=overrides)
    assert str(exc.value).startswith(f"{key}:"), str(exc.value)


def test_validation_applies_to_yaml_values_too(tmp_path: Path) -> None:
    path = _write(tmp_path, "speech:\n  first_chunk_chars: 100\n  chunk_chars: 90\n")
    with pytest.raises(ConfigError, match=r"^speech\.chunk_chars: must be >= first_chunk_chars"):
        load_settings(path, env={})


@pytest.mark.parametrize("rate", [0, 8000, 16000, 22050, 24000, 44100, 48000])
def test_supported_output_sample_rates(rate: int) -> None:
    assert load_settings(env={}, overrides={"speech.output_sample_rate": rate}).speech.output_sample_rate == rate


def test_boundary_values_are_accepted() -> None:
    s = load_settings(
        env={},
        overrides={
            "speech.queue_size": "1",
            "speech.workers": "0",
            "speech.first_chunk_chars": "10",
            "speech.chunk_chars": "10",
            "cache.max_mb": "0",
            "classic.conversion_strength": "1.5",
            "log_level": "error",
        },
    )
    assert (s.speech.queue_size, s.speech.first_chunk_chars, s.speech.chunk_chars) == (1, 10, 10)
    assert s.cache.max_mb == 0
    assert s.classic.conversion_strength == 1.5


# --- known bugs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["*x", "[x", "a: b: c", "@home"])
def test_env_text_that_is_not_yaml_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match="log_level"):
        load_settings(env={"VOICECLONE_LOG_LEVEL": value})


def test_numeric_looking_path_from_env_is_a_path() -> None:
    assert load_settings(env={"VOICECLONE_DATA_DIR": "2024"}).data_dir == Path("2024")


@pytest.mark.parametrize("voice", ["007", "yes"])
def test_text_setting_from_env_keeps_the_text(voice: str) -> None:
    assert load_settings(env={"VOICECLONE_SPEECH__DEFAULT_VOICE": voice}).speech.default_voice == voice


def test_a_removed_setting_is_ignored_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "old.yaml"
    path.write_text("mqtt:\n  host: broker\n  max_text_chars: 1000\n", encoding="utf-8")
    settings = load_settings(path, env={})
    assert settings.mqtt.host == "broker" and not hasattr(settings.mqtt, "max_text_chars")
    assert "mqtt.max_text_chars is no longer used" in caplog.text and "speech.max_text_chars" in caplog.text
    with pytest.raises(ConfigError, match=r"mqtt\.max_text_charz: unknown setting"):
        load_settings(env={}, overrides={"mqtt.max_text_charz": "1"})
