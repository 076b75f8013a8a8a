"""Kyutai Pocket TTS on the CPU: zero-shot cloning from the audio prompt, streamed in 80 ms frames.

The model is read from ``<models_dir>/<pocket.model>/`` only (fetch it with ``voiceclone models download``):
either a ``model.yaml`` there (paths relative to the folder), or the package's own config for the language with
its ``hf://`` weight and tokenizer paths replaced by the downloaded files. ``prepare`` encodes the enrollment audio
once into the model's streaming state (the voice's KV cache), which is saved with the voice; synthesis copies it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from voiceclone_core.config import PocketSettings
from voiceclone_core.engines.base import (
    EngineContext,
    EngineError,
    EngineUnavailable,
    EnrollmentSample,
    SynthesisOptions,
    VoicePrompt,
    check_prompt,
    prompt_audio,
)

log = logging.getLogger(__name__)

ENGINE_VERSION = "1"
MAX_PROMPT_S = 30.0
STATE_PREFIX = "state/"
# Language families each of the package's configs speaks (its file name is the language).
PACKAGE_LANGUAGES = {
    "english": "en",
    "french": "fr",
    "german": "de",
    "italian": "it",
    "portuguese": "pt",
    "spanish": "es",
    "dutch": "nl",
}


def resolve_config(folder: Path, language: str) -> dict[str, Any]:
    """The model config with every file path made local and absolute (EngineUnavailable if files are missing)."""
    own = folder / "model.yaml"
    if own.is_file():
        config = yaml.safe_load(own.read_text(encoding="utf-8"))
        weights = folder / config["weights_path"]
        tokenizer = folder / config["flow_lm"]["lookup_table"]["tokenizer_path"]
    else:
        try:
            from pocket_tts.utils.config import CONFIGS_DIR  # type: ignore[import-not-found]
        except ImportError as exc:
            raise EngineUnavailable("the pocket engine needs the pocket-tts package (pip install .[pocket])") from exc
        config = yaml.safe_load((Path(CONFIGS_DIR) / f"{language}.yaml").read_text(encoding="utf-8"))
        weights = folder / "languages" / language / "model.safetensors"
        tokenizer = folder / "languages" / language / "tokenizer.json"
    missing = [str(p) for p in (weights, tokenizer) if not p.is_file()]
    if missing:
        raise EngineUnavailable(
            f"Pocket TTS files missing: {', '.join(missing)} (run: voiceclone models download {folder.name})"
        )
    config["weights_path"] = str(weights.resolve())
    config.pop("weights_path_without_voice_cloning", None)
    config["flow_lm"]["lookup_table"]["tokenizer_path"] = str(tokenizer.resolve())
    return config


def probe(cfg: PocketSettings, context: EngineContext) -> str | None:
    """Why the pocket engine cannot run here (None: it can), without loading it."""
    import importlib.util

    if importlib.util.find_spec("pocket_tts") is None:
        return "the pocket-tts package is not installed"
    folder = context.models_dir / cfg.model
    try:
        resolve_config(folder, cfg.language)
    except EngineUnavailable as exc:
        return str(exc)
    return None


def load_weights(model: Any, path: Path) -> None:
    """Copy a safetensors file into ``model`` one tensor at a time with plain reads (strict: same names, shapes).

    Memory peaks at the model plus its largest tensor, instead of the model plus the whole file.
    """
    import torch

    dtypes = {
        "F32": torch.float32,
        "F16": torch.float16,
        "BF16": torch.bfloat16,
        "F64": torch.float64,
        "I64": torch.int64,
        "I32": torch.int32,
        "I16": torch.int16,
        "I8": torch.int8,
        "U8": torch.uint8,
        "BOOL": torch.bool,
    }
    targets = model.state_dict(keep_vars=True)
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        header.pop("__metadata__", None)
        missing, unexpected = sorted(set(targets) - set(header)), sorted(set(header) - set(targets))
        if missing or unexpected:
            raise ValueError(f"weights do not match the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
        for name, info in header.items():
            target = targets[name]
            if list(target.shape) != list(info["shape"]):
                raise ValueError(f"{name}: shape {info['shape']} in the file, {list(target.shape)} in the model")
            start, end = info["data_offsets"]
            if end == start:
                continue
            f.seek(8 + length + start)
            tensor = torch.frombuffer(bytearray(f.read(end - start)), dtype=dtypes[info["dtype"]])
            with torch.no_grad():
                target.copy_(tensor.reshape(info["shape"]))


class PocketEngine:
    """Pocket TTS behind the engine protocol. One generation at a time (the package is not thread-safe)."""

    name = "pocket"
    max_concurrency = 1
    batches_streams = False

    def __init__(self, cfg: PocketSettings, context: EngineContext) -> None:
        try:
            import torch
            from pocket_tts import TTSModel  # type: ignore[import-not-found]
        except ImportError as exc:
            raise EngineUnavailable("the pocket engine needs the pocket-tts package (pip install .[pocket])") from exc
        folder = context.models_dir / cfg.model
        if not folder.is_dir():
            raise EngineUnavailable(
                f"Pocket TTS model not installed in {folder} (voiceclone models download {cfg.model})"
            )
        config = resolve_config(folder, cfg.language)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self._torch = torch
        # The package builds the model from the config; the weights are then streamed in tensor by tensor (its
        # own loader reads the whole 438 MB file next to the initialised parameters: a 1.2 GB peak on load).
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as tmp:
            yaml.safe_dump({**config, "weights_path": None}, tmp)
        package_log = logging.getLogger("pocket_tts.models.tts_model")
        level = package_log.level
        package_log.setLevel(logging.ERROR)  # "model is uninitialized": true only until the weights are in
        try:
            self.model = TTSModel.load_model(config=tmp.name, quantize=False, temp=cfg.temperature or None)
            load_weights(self.model, Path(config["weights_path"]))
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise EngineUnavailable(f"Pocket TTS model in {folder} does not load: {exc}") from exc
        finally:
            package_log.setLevel(level)
            Path(tmp.name).unlink(missing_ok=True)
        if cfg.quantize:
            from pocket_tts.quantization import RECOMMENDED_CONFIG, apply_dynamic_int8  # type: ignore[import-not-found]

            apply_dynamic_int8(self.model.flow_lm, RECOMMENDED_CONFIG)
        if not self.model.has_voice_cloning:
            raise EngineUnavailable(f"the Pocket TTS weights in {folder} have no voice cloning (need the gated ones)")
        self.sample_rate = int(self.model.sample_rate)
        self.languages = (PACKAGE_LANGUAGES.get(cfg.language, cfg.language),)
        identity = f"{Path(config['weights_path']).stat().st_size}:{yaml.safe_dump(config, sort_keys=True)}"
        self.version = f"{ENGINE_VERSION}+{hashlib.sha256(identity.encode()).hexdigest()[:10]}"
        self.frames_after_eos = cfg.frames_after_eos
        self._lock = threading.Lock()
        self._states: OrderedDict[str, dict[str, dict[str, Any]]] = OrderedDict()

    # -- protocol ---------------------------------------------------------------------------------------------
    def prepare(self, sample: EnrollmentSample) -> VoicePrompt:
        """Encode up to 30 s of the sample into the model's voice state (the transcript is not needed)."""
        x = prompt_audio(sample, self.sample_rate, MAX_PROMPT_S)
        with self._lock:
            state = self.model.get_state_for_audio_prompt(self._torch.from_numpy(np.ascontiguousarray(x))[None])
        arrays = {
            f"{STATE_PREFIX}{module}/{key}": tensor.detach().cpu().numpy()
            for module, tensors in state.items()
            for key, tensor in tensors.items()
        }
        return VoicePrompt(self.name, self.version, arrays, {"prompt_seconds": round(len(x) / self.sample_rate, 2)})

    def synthesize(self, text: str, prompt: VoicePrompt, options: SynthesisOptions) -> Iterator[np.ndarray]:
        """Stream float32 audio frames (80 ms each) as the model produces them."""
        check_prompt(self.name, prompt)
        if options.speed != 1.0:
            log.debug("pocket engine: speed %.2f is not supported; speaking at the model's own rate", options.speed)
        state = self._state(prompt)
        stop = threading.Event()
        with self._lock:
            stream = self.model.generate_audio_stream(
                state, text, copy_state=True, stop=stop, frames_after_eos=self.frames_after_eos
            )
            try:
                for chunk in stream:
                    yield chunk.detach().cpu().numpy().astype(np.float32, copy=False)
            finally:
                stop.set()  # a consumer that stops early ends the package's generation thread too
                stream.close()

    def close(self) -> None:
        """Drop the cached voice states (the model goes with the engine)."""
        self._states.clear()

    # -- internals --------------------------------------------------------------------------------------------
    def _state(self, prompt: VoicePrompt) -> dict[str, dict[str, Any]]:
        """The prompt's model state as tensors (a few recent ones kept; generation copies, never mutates them)."""
        key = prompt.digest()
        state = self._states.get(key)
        if state is None:
            state = {}
            for name, array in prompt.arrays.items():
                if name.startswith(STATE_PREFIX):
                    module, _, tensor_key = name[len(STATE_PREFIX) :].rpartition("/")
                    state.setdefault(module, {})[tensor_key] = self._torch.from_numpy(np.array(array))
            if not state:
                raise EngineError("voice prompt has no Pocket TTS state; re-enroll the voice")
            self._states[key] = state
            while len(self._states) > 8:
                self._states.popitem(last=False)
        self._states.move_to_end(key)
        return state


def create(section: PocketSettings, context: EngineContext) -> PocketEngine:
    """The registry's factory."""
    return PocketEngine(section, context)
