"""Tests for the ``voiceclone`` command line (voiceclone_core.cli.main), in-process and via the console script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voiceclone_core.cli import main

ESPEAK = shutil.which("espeak-ng")
needs_espeak = pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed")

PARAGRAPH = (
    "The quick brown fox jumps over the lazy dog. My grandmother kept a small garden behind the house, "
    "where she grew tomatoes, beans and sunflowers every summer. On warm evenings we sat outside and "
    "listened to the birds."
)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    """Assert ``err`` is exactly one line (no traceback) and return it."""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("voiceclone: ")
    return lines[0]


def espeak(path: Path, text: str, *extra: str) -> Path:
    assert ESPEAK is not None
    subprocess.run([ESPEAK, *extra, "-w", str(path), text], check=True, capture_output=True, timeout=60)
    return path


def voice_dirs(data: Path) -> list[str]:
    voices = data / "voices"
    return sorted(p.name for p in voices.iterdir()) if voices.exists() else []


# --- usage and settings errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],  # no command
        ["voices", "--bogus"],  # unknown flag
        ["fly"],  # unknown command
        ["say", "hello"],  # missing required -o
        ["enroll", "Mum"],  # missing audio argument
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage: voiceclone" in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("enroll", "voices", "say", "rename", "delete", "serve"):
        assert command in out


@pytest.mark.parametrize("item", ["speech.queue_size", "=8", " =8"])
def test_malformed_set_is_a_settings_error(capsys: pytest.CaptureFixture[str], tmp_path: Path, item: str) -> None:
    code, out, err = run(capsys, "voices", "--data-dir", str(tmp_path), "--set", item)
    assert code == 2
    line = one_line(err)
    assert line.startswith("voiceclone: settings error: --set expects KEY=VALUE")
    assert out == ""
    assert list(tmp_path.iterdir()) == []


def test_unknown_setting_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "voices", "--data-dir", str(tmp_path), "--set", "nope.x=1")
    assert code == 2
    line = one_line(err)
    assert line.startswith("voiceclone: settings error: ")
    assert "nope" in line and "unknown setting" in line
    assert out == ""


def test_invalid_setting_value_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "voices", "--data-dir", str(tmp_path), "--set", "speech.queue_size=0")
    assert code == 2
    assert "speech.queue_size" in one_line(err)


def test_missing_config_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "voices", "--data-dir", str(tmp_path), "--config", str(tmp_path / "missing.yaml"))
    assert code == 2
    assert "cannot read settings file" in one_line(err)


def test_config_file_and_set_are_used(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = tmp_path / "from-config"
    cfg = tmp_path / "voiceclone.yaml"
    cfg.write_text(f"data_dir: {data}\nspeech:\n  queue_size: 4\n", encoding="utf-8")
    code, out, err = run(capsys, "voices", "--config", str(cfg), "--set", "speech.queue_size=8")
    assert (code, err) == (0, "")
    assert "no voices enrolled" in out
    assert (data / "voices").is_dir()  # data_dir came from the config file


# --- voices / enroll errors ------------------------------------------------------------------------------


def test_voices_on_an_empty_data_dir(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "voices", "--data-dir", str(tmp_path))
    assert code == 0
    assert out.strip() == "no voices enrolled"
    assert err == ""


def test_enroll_without_consent(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = tmp_path / "data"
    sample = tmp_path / "sample.wav"
    sf.write(sample, np.zeros(22050, dtype=np.float32), 22050)
    code, out, err = run(capsys, "enroll", "Mum", str(sample), "--data-dir", str(data))
    assert code == 2  # an invalid request, like a usage error
    assert one_line(err) == "voiceclone: enrollment needs recorded consent: say who agreed to this voice being cloned"
    assert out == ""
    assert voice_dirs(data) == []


def test_enroll_missing_audio(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = tmp_path / "data"
    missing = tmp_path / "nothing.wav"
    code, out, err = run(capsys, "enroll", "Mum", str(missing), "--consent", "Mum", "--data-dir", str(data))
    assert code == 1
    line = one_line(err)
    assert "no such recording" in line and str(missing) in line
    assert out == ""
    assert voice_dirs(data) == []


def test_enroll_missing_transcript_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sample = tmp_path / "sample.wav"
    sf.write(sample, np.zeros(22050, dtype=np.float32), 22050)
    code, _, err = run(
        capsys,
        "enroll",
        "Mum",
        str(sample),
        "--consent",
        "Mum",
        "--transcript-file",
        str(tmp_path / "none.txt"),
        "--data-dir",
        str(tmp_path / "data"),
    )
    assert code == 1
    assert "cannot read transcript file" in one_line(err)


def test_enroll_unreadable_audio(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = tmp_path / "data"
    junk = tmp_path / "junk.wav"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    code, out, err = run(capsys, "enroll", "Mum", str(junk), "--consent", "Mum", "--data-dir", str(data))
    assert code == 2
    assert "Could not decode" in one_line(err)
    assert out == ""
    assert voice_dirs(data) == []


@needs_espeak
def test_enroll_too_short_recording_is_rejected(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = tmp_path / "data"
    sample = espeak(tmp_path / "short.wav", "Hello there", "-s", "110")
    assert 0.8 < sf.info(sample).duration < 3.0
    code, out, err = run(capsys, "enroll", "Short", str(sample), "--consent", "tester", "--data-dir", str(data))
    assert code == 1
    assert "quality: reject" in out
    assert "at least 3 s is needed" in out  # the report's reason, listed on stdout
    line = one_line(err)
    assert "rejected" in line and "at least 3 s is needed" in line
    assert voice_dirs(data) == []  # no voice folder and no leftover staging folder


def test_rename_and_delete_unknown_voice(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "rename", "ghost", "Casper", "--data-dir", str(tmp_path))
    assert code == 1
    assert one_line(err) == "voiceclone: unknown voice 'ghost'"
    code, _, err = run(capsys, "delete", "../escape", "--data-dir", str(tmp_path))
    assert code == 2
    assert "invalid voice id" in one_line(err)


def test_say_with_no_voices(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_wav = tmp_path / "out.wav"
    code, _, err = run(capsys, "say", "Hello.", "-o", str(out_wav), "--data-dir", str(tmp_path / "data"))
    assert code == 1
    assert "no voice is enrolled" in one_line(err)
    assert not out_wav.exists()


# --- serve -----------------------------------------------------------------------------------------------


def test_serve_with_a_bad_uri_is_a_settings_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "serve", "--uri", "ftp://example", "--data-dir", str(tmp_path))
    assert code == 2
    line = one_line(err)
    assert "wyoming.uri" in line
    assert out == ""


def test_console_script_serve(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "voiceclone"
    if not script.exists():
        pytest.skip("the voiceclone console script is not installed next to this Python")
    proc = subprocess.run(
        [str(script), "serve", "--uri", "ftp://example", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("voiceclone: settings error: wyoming.uri")
    assert proc.stdout == ""


# --- the whole life of a voice (real enrollment and synthesis) -------------------------------------------


@pytest.mark.slow
@needs_espeak
def test_enroll_say_rename_delete(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = tmp_path / "data"
    sample = espeak(tmp_path / "reading.wav", PARAGRAPH)
    assert sf.info(sample).duration > 8.0
    d = ("--data-dir", str(data))

    code, out, err = run(
        capsys, "enroll", "Test Voice", str(sample), "--consent", "tester", "--transcript", PARAGRAPH, *d
    )
    assert (code, err) == (0, ""), err
    assert "quality: ok" in out or "quality: warn" in out
    assert "enrolled voice 'test_voice' (Test Voice, en), revision 1, selection conversion" in out
    assert (data / "voices" / "test_voice" / "profile.json").is_file()

    code, out, _ = run(capsys, "voices", *d)
    assert code == 0
    assert out.splitlines()[0].startswith("test_voice\tTest Voice\ten\tconsent: tester (")

    out_wav = tmp_path / "out" / "out.wav"
    code, out, err = run(capsys, "say", "--voice", "test_voice", "Hello world.", "-o", str(out_wav), *d)
    assert (code, err) == (0, ""), err
    assert f"wrote {out_wav}" in out and "spoken in en" in out
    info = sf.info(out_wav)
    assert (info.format, info.channels, info.samplerate) == ("WAV", 1, 22050)
    assert info.duration > 0.3
    clip, _ = sf.read(out_wav, dtype="float32")
    assert float(np.max(np.abs(clip))) > 0.01  # not silence
    assert (data / "cache" / "test_voice").is_dir()  # the rendering was cached per voice

    code, out, err = run(capsys, "say", "--voice", "nobody", "Hello world.", "-o", str(tmp_path / "x.wav"), *d)
    assert code == 1
    assert "unknown voice 'nobody'" in one_line(err)
    assert not (tmp_path / "x.wav").exists()

    code, out, err = run(capsys, "rename", "test_voice", "Tester", *d)
    assert (code, err) == (0, "")
    assert "renamed 'test_voice' to Tester" in out
    code, out, _ = run(capsys, "voices", *d)
    assert code == 0
    assert out.splitlines()[0].startswith("test_voice\tTester\t")

    code, out, err = run(capsys, "delete", "test_voice", *d)
    assert (code, err) == (0, "")
    assert "deleted voice 'test_voice'" in out
    assert not (data / "voices" / "test_voice").exists()
    assert not (data / "cache" / "test_voice").exists()
    assert voice_dirs(data) == []
    code, out, _ = run(capsys, "voices", *d)
    assert "no voices enrolled" in out

    code, _, err = run(capsys, "delete", "test_voice", *d)
    assert code == 1
    assert "unknown voice 'test_voice'" in one_line(err)


# --- known bugs ------------------------------------------------------------------------------------------


def test_data_dir_that_is_a_file_is_a_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x", encoding="utf-8")
    code, _, err = run(capsys, "voices", "--data-dir", str(not_a_dir))
    assert code == 1
    one_line(err)


def test_set_value_that_is_not_yaml_is_a_settings_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "voices", "--data-dir", str(tmp_path), "--set", "log_level=*x")
    assert code == 2
    assert "log_level" in one_line(err)


def test_numeric_data_dir(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "voices", "--data-dir", "2024")
    assert (code, err) == (0, ""), err
    assert "no voices enrolled" in out
    assert (tmp_path / "2024" / "voices").is_dir()


@needs_espeak
def test_detect_tells_marked_from_unmarked_files_by_exit_code(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """0: every file carries the mark; 3: one does not; 2: one cannot be read. Marked files here are made the way the
    server makes them (its marker); MP3 and FLAC copies are checked too."""
    import json

    from voiceclone_core import audio
    from voiceclone_core.watermark import Watermarker

    plain = espeak(tmp_path / "plain.wav", PARAGRAPH, "-v", "en-us+f3")
    x, sr = audio.decode(plain)
    marked = Watermarker().mark(x, sr)
    sf.write(tmp_path / "marked.flac", marked, sr)
    sf.write(tmp_path / "marked.mp3", marked, sr, format="MP3")
    data = ["--data-dir", str(tmp_path / "data")]
    code, out, err = run(capsys, "detect", str(tmp_path / "marked.flac"), str(tmp_path / "marked.mp3"), *data)
    assert (code, err) == (0, "") and out.count("marked as AI-generated") == 2
    code, out, _ = run(capsys, "detect", str(tmp_path / "marked.flac"), str(plain), *data)
    assert code == 3 and f"{plain}: not marked" in out
    (tmp_path / "junk.wav").write_bytes(b"RIFF nonsense")
    code, out, _ = run(capsys, "detect", str(tmp_path / "marked.flac"), str(tmp_path / "junk.wav"), *data)
    assert code == 2 and "junk.wav: cannot check" in out
    code, out, _ = run(capsys, "detect", "--json", str(tmp_path / "marked.mp3"), str(tmp_path / "nowhere.wav"), *data)
    first, second = (json.loads(line) for line in out.splitlines())
    assert code == 2 and first["marked"] is True and first["confidence"] > 0.9 and "error" in second
    assert voice_dirs(tmp_path / "data") == []  # nothing was kept
