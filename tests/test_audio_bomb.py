"""Decoding is bounded: a tiny file that claims (or holds) hours of audio is refused without being decoded in full.

The reliability probe sent an 895 KB FLAC of 10 hours of digital silence to ``api/check``: the server grew from
1.3 GB to 5.9 GB, because the whole file was decoded to float32 before the 10-minute limit was looked at. Here the
same file is refused, and a separate process that does nothing else shows its peak memory barely moves.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voiceclone_core import audio
from voiceclone_core.audio import MAX_SAMPLE_SECONDS, AudioError, SampleRejected
from voiceclone_core.config import Settings
from voiceclone_core.service import RecordingRejected, build_service

ROOT = Path(__file__).resolve().parent.parent
CAP_MINUTES = f"{MAX_SAMPLE_SECONDS / 60:g} minutes"  # "10 minutes"


def silence_flac(path: Path, hours: float, sr: int = 8000) -> Path:
    """Hours of digital silence as FLAC, written a minute at a time (the test itself stays small in memory)."""
    minute = np.zeros(sr * 60, dtype=np.int16)
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, format="FLAC", subtype="PCM_16") as f:
        for _ in range(round(hours * 60)):
            f.write(minute)
    return path


def without_length(flac: bytes) -> bytes:
    """The same FLAC with STREAMINFO's total-samples field zeroed ("unknown"), so only decoding can tell its length."""
    assert flac[:4] == b"fLaC" and flac[4] & 0x7F == 0  # STREAMINFO is the first metadata block
    data = bytearray(flac)
    start = 8 + 10  # sample rate (20 bits), channels (3), bits per sample (5), total samples (36): 8 bytes
    packed = int.from_bytes(data[start : start + 8], "big") & ~((1 << 36) - 1)
    data[start : start + 8] = packed.to_bytes(8, "big")
    return bytes(data)


def lying_wav(sr: int) -> bytes:
    """The header of a PCM16 mono WAV whose RIFF and data sizes claim about 4 GB."""
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, sr, sr * 2, 2, 16)
    return b"RIFF" + struct.pack("<I", 0xFFFFFFF0) + b"WAVE" + b"fmt " + fmt + b"data" + struct.pack("<I", 0xFFFFFFC0)


@pytest.fixture(scope="module")
def ten_hours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The probe's bomb: 10 h of silence at 8 kHz, under 1 MB."""
    path = silence_flac(tmp_path_factory.mktemp("bomb") / "10h.flac", hours=10)
    assert path.stat().st_size < 1_000_000
    assert sf.info(str(path)).duration == 36000.0
    return path


# The measuring process: imports first, reads the file's bytes, then decodes; VmHWM (the process's peak RSS so far)
# before and after the decode says how much the decode itself needed at its worst.
PROBE = """
import json, sys
from voiceclone_core import audio

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024

data = open(sys.argv[1], "rb").read()
source = data if sys.argv[2] == "bytes" else sys.argv[1]
before = {"hwm": status("VmHWM"), "rss": status("VmRSS")}
try:
    audio.decode(source)
    outcome = "accepted"
except audio.SampleRejected as exc:
    outcome = str(exc)
print(json.dumps({"before": before, "peak": status("VmHWM"), "after": status("VmRSS"), "outcome": outcome}))
"""


def measure(path: Path, how: str) -> dict:
    res = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), how], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout)


@pytest.mark.parametrize("how", ["bytes", "path"])
def test_ten_hours_of_flac_silence_is_refused_without_decoding_it(ten_hours: Path, how: str) -> None:
    result = measure(ten_hours, how)
    print(f"10 h FLAC ({how}): VmHWM {result['before']['hwm']} -> {result['peak']} MB; {result['outcome']}")
    assert (
        result["outcome"]
        == f"The recording is longer than {CAP_MINUTES} (600.0 minutes); the maximum is {CAP_MINUTES}."
    )
    assert result["peak"] - result["before"]["hwm"] < 100  # was +4.7 GB in the probe


def test_a_flac_that_does_not_say_its_length_is_given_up_one_block_past_the_limit(
    ten_hours: Path, tmp_path: Path
) -> None:
    unknown = tmp_path / "10h-unknown-length.flac"
    unknown.write_bytes(without_length(ten_hours.read_bytes()))
    with sf.SoundFile(str(unknown)) as f:
        assert f.frames >= 1 << 62  # libsndfile: "unknown" (SF_COUNT_MAX); the header check cannot help
    result = measure(unknown, "bytes")
    print(f"10 h FLAC, no length: VmHWM {result['before']['hwm']} -> {result['peak']} MB; {result['outcome']}")
    assert result["outcome"] == f"The recording is longer than {CAP_MINUTES}; the maximum is {CAP_MINUTES}."
    # 10 minutes at 8 kHz is 19 MB of float32, and one block more: far from the 1.1 GB of the whole file
    assert result["peak"] - result["before"]["hwm"] < 100
    with pytest.raises(SampleRejected) as caught:
        audio.decode(unknown.read_bytes())
    report = caught.value.report
    assert report.verdict == "reject" and MAX_SAMPLE_SECONDS < report.duration_s < MAX_SAMPLE_SECONDS + 60


def test_the_running_limit_holds_whatever_the_header_says(tmp_path: Path) -> None:
    """A short limit shows both checks: the header (length known) and the block count (length unknown)."""
    path = silence_flac(tmp_path / "2min.flac", hours=2 / 60)
    with pytest.raises(SampleRejected, match=r"longer than 30 seconds \(2\.0 minutes\)"):
        audio.decode(path, max_seconds=30)
    with pytest.raises(SampleRejected, match=r"longer than 30 seconds; the maximum is 30 seconds"):
        audio.decode(without_length(path.read_bytes()), max_seconds=30)
    for source in (path, without_length(path.read_bytes())):  # no limit: the whole of it, as before
        x, sr = audio.decode(source, max_seconds=None)
        assert sr == 8000 and x.size == 2 * 60 * 8000 and x.dtype == np.float32


def test_a_file_that_does_not_say_its_length_decodes_like_one_that_does(tmp_path: Path) -> None:
    """Stereo noise, FLAC with and without its length: the same samples, to the last one (the last block of a file
    without a length is read past soundfile's seek, which fails there)."""
    path = tmp_path / "stereo.flac"
    noise = np.random.default_rng(1).uniform(-0.5, 0.5, size=(16000 * 20 + 123, 2))
    sf.write(path, noise, 16000, format="FLAC", subtype="PCM_16")
    known, sr = audio.decode(path)
    unknown, sr_unknown = audio.decode(without_length(path.read_bytes()))
    assert sr == sr_unknown == 16000 and known.size == unknown.size == noise.shape[0]
    np.testing.assert_array_equal(known, unknown)
    np.testing.assert_allclose(known, noise.mean(axis=1), atol=1.0 / 16384)


def test_a_wav_header_claiming_4_gb_is_judged_by_what_it_holds() -> None:
    sr = 8000
    noise = np.random.default_rng(0).standard_normal(sr * 660) * 3000
    eleven_minutes = lying_wav(sr) + noise.astype("<i2").tobytes()
    with pytest.raises(SampleRejected, match=rf"longer than {CAP_MINUTES} \(11\.0 minutes\)"):
        audio.decode(eleven_minutes)
    # the same lie with 25 s behind it is an ordinary 25 s recording (the probe enrolled one)
    x, got_sr = audio.decode(lying_wav(sr) + noise[: 25 * sr].astype("<i2").tobytes())
    assert got_sr == sr and x.size == 25 * sr
    # and with nothing behind it, no audio at all
    with pytest.raises(AudioError, match="no audio samples"):
        audio.decode(lying_wav(sr))


def _mp3(path: Path, x: np.ndarray, sr: int) -> Path:
    if "MP3" in sf.available_formats():
        try:
            sf.write(path, x, sr, format="MP3")
            return path
        except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
            reason = f"libsndfile cannot write MP3 here: {exc}"
    else:
        reason = "this libsndfile has no MP3"
    sox = shutil.which("sox")
    if sox is None:
        pytest.skip(f"{reason}, and sox is not installed")
    wav = path.with_suffix(".wav")
    sf.write(wav, x, sr, subtype="PCM_16")
    res = subprocess.run([sox, str(wav), str(path)], capture_output=True, timeout=120)
    if res.returncode != 0:
        pytest.skip(f"{reason}, and sox cannot either: {res.stderr.decode()[:200]}")
    return path


def test_an_mp3_over_the_limit_is_refused(tmp_path: Path) -> None:
    sr = 8000
    t = np.arange(sr * 660) / sr
    path = _mp3(tmp_path / "11min.mp3", (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr)
    with pytest.raises(SampleRejected, match=rf"longer than {CAP_MINUTES}"):
        audio.decode(path)
    with pytest.raises(SampleRejected, match=rf"longer than {CAP_MINUTES}"):
        audio.decode(path.read_bytes())


def test_sample_rates_beyond_192_khz_are_refused_before_decoding() -> None:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(1000, np.int16), 384000, format="WAV", subtype="PCM_16")
    with pytest.raises(AudioError, match="384000 Hz; at most 192 kHz"):
        audio.decode(buf.getvalue())


def test_every_door_gets_the_limit(settings: Settings, fake_engine, ten_hours: Path) -> None:
    """``check_recording`` (web api/check) answers with a "reject" report; enrollment (web, CLI, add-on, MQTT all
    call the service) refuses with that report and stores nothing."""
    service = build_service(settings, engine=fake_engine)
    try:
        report = service.check_recording(ten_hours.read_bytes())
        assert report.verdict == "reject" and report.duration_s == 36000.0
        reason = f"The recording is longer than {CAP_MINUTES} (600.0 minutes); the maximum is {CAP_MINUTES}."
        assert report.reasons == (reason,)
        for sample in (ten_hours, ten_hours.read_bytes()):
            with pytest.raises(RecordingRejected, match=f"longer than {CAP_MINUTES}") as caught:
                service.enroll("Bomb", sample, consent="Bomb")
            assert caught.value.report.verdict == "reject"
        assert service.voices() == [] and fake_engine.prepared == 0
    finally:
        service.close()
