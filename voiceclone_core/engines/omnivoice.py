"""OmniVoice (k2-fsa, Apache-2.0): zero-shot cloning in 646 languages, on the CPU (int4 ONNX) or an NVIDIA GPU (bf16).

The checkpoint, with its Higgs audio tokenizer in ``audio_tokenizer/``, is read from ``<models_dir>/<omnivoice.model>/``
only (``voiceclone models download omnivoice``; the hub is switched off while loading). On the CPU the language
model's forward runs as a block-wise int4 ONNX graph that ``voiceclone models export omnivoice`` makes from that
checkpoint (``omnivoice_onnx``; the download runs it too) in ``<models_dir>/<model>-onnx-int4/``; the torch backbone
is then dropped from memory. Everything else — text tokenizer, audio codec, the MaskGIT decoding loop — is the
``omnivoice`` package's own code. On CUDA the whole model runs in torch, bf16.

``prepare`` encodes the reference once at enrollment: up to ``max_prompt_s`` seconds of it into audio tokens, with
its transcript (the enrollment page's passage, or what the user typed), cut at a sentence end when the recording is
longer. Without a transcript OmniVoice would load a Whisper model to make one; this engine never downloads at
synthesis time, so it clones from the audio tokens alone and says so in the log (weaker: re-enroll with a transcript).

The model is non-autoregressive (a whole utterance per ``steps`` forward passes), so speech starts early by
splitting: the service speaks the first short sentence alone, and this engine asks it to pack the rest into chunks
of whole sentences (``packs_sentences``), which keeps the number of prompt repetitions — the cost of splitting — low.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from voiceclone_core.config import OmniVoiceSettings
from voiceclone_core.engines import omnivoice_onnx
from voiceclone_core.engines.base import (
    EngineContext,
    EngineError,
    EngineUnavailable,
    EnrollmentSample,
    SynthesisOptions,
    VoicePrompt,
    check_prompt,
    hub_offline,
    prompt_audio,
)
from voiceclone_core.engines.torchaudio_compat import ensure_torchaudio

log = logging.getLogger(__name__)

ENGINE_VERSION = "1"
SAMPLE_RATE = 24000
REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "audio_tokenizer/config.json",
    "audio_tokenizer/model.safetensors",
    "audio_tokenizer/preprocessor_config.json",
)
# Languages OmniVoice knows only under an ISO 639-3 code, advertised under the ISO 639-1 code Home Assistant sends.
ALIASES = {"ar": "arb", "or": "ory", "ne": "npi", "ku": "kmr"}
# Widely spoken languages without any ISO 639-1 code.
EXTRA = ("yue",)


def language_ids() -> frozenset[str]:
    """Every language id OmniVoice knows (646 of them)."""
    ensure_torchaudio()
    from omnivoice.utils.lang_map import LANG_IDS

    return frozenset(LANG_IDS)


def advertised_languages(known: frozenset[str]) -> tuple[str, ...]:
    """What Home Assistant is offered: the two-letter codes, the aliases' two-letter forms, and :data:`EXTRA`."""
    codes = {c for c in known if len(c) == 2}
    codes |= {tag for tag, code in ALIASES.items() if code in known}
    codes |= {c for c in EXTRA if c in known}
    return ("en", "zh", *sorted(codes - {"en", "zh"}))


def model_language(language: str | None, known: frozenset[str]) -> str | None:
    """The id OmniVoice is given for a language family (None: language-agnostic, for a code it does not know)."""
    if not language:
        return None
    code = re.split(r"[-_]", language.strip().lower(), maxsplit=1)[0]
    code = ALIASES.get(code, code) if code not in known else code
    return code if code in known else None


def model_folder(cfg: OmniVoiceSettings, context: EngineContext) -> Path:
    """Where the configured checkpoint lives."""
    return context.models_dir / cfg.model


def onnx_folder(cfg: OmniVoiceSettings, context: EngineContext) -> Path:
    """Where the checkpoint's ONNX export lives (``onnx_bits: 32`` is the unquantised float graph)."""
    variant = "fp32" if cfg.onnx_bits == 32 else f"int{cfg.onnx_bits}"
    return context.models_dir / f"{cfg.model}-onnx-{variant}"


def build_export(cfg: OmniVoiceSettings, context: EngineContext, force: bool = False) -> Path | None:
    """Make the CPU graph from the installed checkpoint unless an up-to-date one is there (None: nothing to do).

    Minutes on a small machine and about twice the checkpoint's size in memory; the explicit step after
    ``voiceclone models download`` (and at an add-on start that finds it missing), never at synthesis time.
    """
    folder = model_folder(cfg, context)
    missing = _missing_files(folder)
    if missing:
        raise EngineUnavailable(f"OmniVoice files missing in {folder} (run: voiceclone models download {cfg.model})")
    if not force and export_problem(cfg, context) is None:
        return None
    log.info("building OmniVoice's CPU graph from %s (takes minutes)", folder)
    bits = None if cfg.onnx_bits == 32 else cfg.onnx_bits
    return omnivoice_onnx.export(folder, onnx_folder(cfg, context), bits=bits)


def backend(cfg: OmniVoiceSettings, context: EngineContext) -> str:
    """``torch`` or ``onnx``: what ``auto`` means on this device."""
    if cfg.backend != "auto":
        return cfg.backend
    return "torch" if context.device.startswith("cuda") else "onnx"


def _missing_files(folder: Path) -> list[str]:
    return [f for f in REQUIRED_FILES if not (folder / f).is_file()]


def export_problem(cfg: OmniVoiceSettings, context: EngineContext) -> str | None:
    """Why the ONNX export cannot be used (None: it is there and made from the installed checkpoint)."""
    info = omnivoice_onnx.export_info(onnx_folder(cfg, context))
    command = f"voiceclone models export {cfg.model}"
    if info is None:
        return f"the ONNX graph is not built yet (run: {command})"
    if info.get("checkpoint") != omnivoice_onnx.checkpoint_digest(model_folder(cfg, context)):
        return f"the ONNX graph was made from another checkpoint (run: {command})"
    return None


def probe(cfg: OmniVoiceSettings, context: EngineContext) -> str | None:
    """Why the omnivoice engine cannot run here (None: it can), without loading it."""
    if importlib.util.find_spec("omnivoice") is None:
        return "the omnivoice package is not installed"
    if _missing_files(model_folder(cfg, context)):
        return f"weights not installed (voiceclone models download {cfg.model})"
    chosen = backend(cfg, context)
    if chosen == "torch" and context.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return "no CUDA device"
    if chosen == "onnx":
        if importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime is not installed"
        return export_problem(cfg, context)
    return None


def cut_prompt(x: np.ndarray, sr: int, transcript: str | None, max_s: float) -> tuple[np.ndarray, str]:
    """The reference audio and text to prompt with: all of it when short enough, else the first whole sentences.

    Without a transcript the audio is cut to ``max_s`` and the text is empty. With one, the sentences that fit are
    kept, the cut placed at the quietest 20 ms within half a second of where their share of the characters says
    they end (speech runs at an even pace to a good approximation; the quiet gap absorbs the error).
    """
    limit = int(max_s * sr)
    if not transcript:
        return x[:limit], ""
    if len(x) <= limit:
        return x, transcript
    sentences = [s for s in re.split(r"(?<=[.!?。！？])\s*", transcript.strip()) if s]
    total = sum(len(s) for s in sentences)
    chars, keep = 0, 0
    for i, sentence in enumerate(sentences):
        if (chars + len(sentence)) / total * len(x) > limit and i > 0:
            break
        chars, keep = chars + len(sentence), i + 1
    if keep == len(sentences):
        return x, transcript
    guess = int(chars / total * len(x))
    frame = sr // 50
    lo, hi = max(frame, guess - sr // 2), min(len(x) - frame, guess + sr // 2)
    starts = range(lo, max(lo + 1, hi), frame)
    quietest = min(starts, key=lambda s: float(np.mean(x[s : s + frame] ** 2)))
    return x[: quietest + frame // 2], " ".join(sentences[:keep])


class OmniVoiceEngine:
    """OmniVoice behind the engine protocol. One generation at a time (it uses every core, or the whole GPU)."""

    name = "omnivoice"
    sample_rate = SAMPLE_RATE
    max_concurrency = 1
    batches_streams = False
    packs_sentences = True

    def __init__(self, cfg: OmniVoiceSettings, context: EngineContext) -> None:
        folder = model_folder(cfg, context)
        missing = _missing_files(folder)
        if missing:
            raise EngineUnavailable(
                f"OmniVoice files missing in {folder}: {', '.join(missing)} "
                f"(run: voiceclone models download {cfg.model})"
            )
        ensure_torchaudio()  # the package imports it; it only calls its resample
        try:
            import torch
            from omnivoice.models.omnivoice import OmniVoice, VoiceClonePrompt
        except ImportError as exc:
            raise EngineUnavailable(f"the omnivoice engine needs the omnivoice package: {exc}") from exc
        self._torch, self._prompt_type = torch, VoiceClonePrompt
        device = context.device
        cuda = device.startswith("cuda")
        if cuda and not torch.cuda.is_available():
            raise EngineUnavailable(f"engine.device is {device!r} but CUDA is not available")
        self.backend = backend(cfg, context)
        if self.backend == "onnx":
            problem = export_problem(cfg, context)
            if problem:
                raise EngineUnavailable(f"OmniVoice on the CPU needs its ONNX graph: {problem}")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        try:
            with hub_offline():
                model = OmniVoice.from_pretrained(
                    str(folder),
                    device_map=device if self.backend == "torch" else "cpu",
                    dtype=torch.bfloat16 if cuda and self.backend == "torch" else torch.float32,
                    attn_implementation="sdpa",
                )
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise EngineUnavailable(f"OmniVoice model in {folder} does not load: {exc}") from exc
        model.eval()
        model.llm.config.use_cache = False  # bidirectional, whole-sequence passes: a K/V cache is only overhead
        if self.backend == "onnx":
            model.llm = torch.nn.Identity()  # the graph holds the backbone: free the torch copy before loading it
            forward = omnivoice_onnx.OnnxForward(onnx_folder(cfg, context) / omnivoice_onnx.GRAPH, cfg.threads)
            model.forward = forward  # what nn.Module.__call__ runs: the package's decode loop calls the model
        self.model = model
        self.steps, self.guidance_scale, self.max_prompt_s = cfg.steps, cfg.guidance_scale, cfg.max_prompt_s
        self.known = language_ids()
        self.languages = advertised_languages(self.known)
        self.also_speaks = self.known | set(ALIASES)
        variant = onnx_folder(cfg, context).name.removeprefix(f"{cfg.model}-") if self.backend == "onnx" else "torch"
        self.version = f"{ENGINE_VERSION}+{folder.name}+{variant}+steps{self.steps}"
        self._lock = threading.Lock()
        where = device if self.backend == "torch" else "cpu"
        log.info("OmniVoice on %s (%s, %d decoding steps)", where, variant, self.steps)

    # -- protocol ---------------------------------------------------------------------------------------------
    def prepare(self, sample: EnrollmentSample) -> VoicePrompt:
        """Encode the reference (with its transcript when known) into the prompt saved with the voice."""
        torch = self._torch
        x = prompt_audio(sample, self.sample_rate, 30.0)
        x, ref_text = cut_prompt(x, self.sample_rate, sample.transcript, self.max_prompt_s)
        if not ref_text:
            log.warning(
                "OmniVoice: voice enrolled without a transcript; cloning from the audio alone, which is weaker "
                "(re-enroll reading the page's passage, or give the recording's transcript)"
            )
        with self._lock, torch.inference_mode():
            try:
                reference = (torch.from_numpy(np.ascontiguousarray(x)), self.sample_rate)
                prompt = self.model.create_voice_clone_prompt(reference, ref_text=ref_text)
            except ValueError as exc:  # e.g. nothing left after the package's silence removal
                raise EngineError(f"the enrollment sample cannot be used: {exc}") from exc
        tokens = prompt.ref_audio_tokens.detach().cpu().numpy().astype(np.int16)
        meta = {
            "ref_text": prompt.ref_text,
            "ref_rms": float(prompt.ref_rms),
            "transcript": bool(ref_text),
            "prompt_seconds": round(tokens.shape[-1] / self.model.audio_tokenizer.config.frame_rate, 2),
        }
        return VoicePrompt(self.name, self.version, {"ref_audio_tokens": tokens}, meta)

    def synthesize(self, text: str, prompt: VoicePrompt, options: SynthesisOptions) -> Iterator[np.ndarray]:
        """The whole chunk's audio once decoded (the model makes an utterance at a time, not frame by frame)."""
        check_prompt(self.name, prompt)
        yield self.render(text, self.clone_prompt(prompt), options)

    def close(self) -> None:
        """Nothing is cached beyond the model itself."""

    # -- internals --------------------------------------------------------------------------------------------
    def clone_prompt(self, prompt: VoicePrompt) -> Any:
        """The package's prompt object for a saved voice prompt."""
        tokens = prompt.arrays.get("ref_audio_tokens")
        if tokens is None or "ref_text" not in prompt.meta:
            raise EngineError("voice prompt has no OmniVoice reference; re-enroll the voice")
        return self._prompt_type(
            ref_audio_tokens=self._torch.from_numpy(tokens.astype(np.int64)),
            ref_text=str(prompt.meta["ref_text"]),
            ref_rms=float(prompt.meta.get("ref_rms", 0.1)),
        )

    def render(self, text: str, clone: Any, options: SynthesisOptions) -> np.ndarray:
        """One utterance as float32 mono at :attr:`sample_rate`."""
        language = model_language(options.language, self.known)
        with self._lock:
            audios = self.model.generate(
                text=text,
                language=language,
                voice_clone_prompt=clone,
                speed=options.speed if options.speed != 1.0 else None,
                num_step=self.steps,
                guidance_scale=self.guidance_scale,
            )
        return np.asarray(audios[0], dtype=np.float32).reshape(-1)


def create(section: OmniVoiceSettings, context: EngineContext) -> OmniVoiceEngine:
    """The registry's factory."""
    return OmniVoiceEngine(section, context)
