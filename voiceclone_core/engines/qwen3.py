"""Qwen3-TTS 12 Hz Base: zero-shot cloning, streamed from an NVIDIA GPU, concurrent requests batched.

The checkpoint is read from ``<models_dir>/<qwen3.model>/`` only (``voiceclone models download qwen3-tts-0.6b``;
the hub is switched off while loading). ``prepare`` runs once per voice: with a transcript of the enrollment
sample it keeps the sample's speech codes and text for in-context cloning (closest clone), without one only the
speaker embedding (x-vector mode). Both are saved with the voice, so synthesis never re-reads reference audio.

Synthesis builds the talker's prompt here and hands it to the engine's ``BatchDecoder`` (``qwen3_batch``): one
decode loop in which every active request advances by one codec frame per forward step, with CUDA graphs per batch
size and bf16 on a GPU. Audio comes every ``chunk_frames`` frames (80 ms each). The same loop runs on the CPU in
float32 (tests, machines without a GPU) far slower than real time, so ``auto`` never picks qwen3 without CUDA.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from voiceclone_core import text
from voiceclone_core.config import Qwen3Settings
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

if TYPE_CHECKING:
    from voiceclone_core.engines.qwen3_batch import StreamInput

log = logging.getLogger(__name__)

ENGINE_VERSION = "1"
SAMPLE_RATE = 24000
MAX_PROMPT_S = 15.0  # Qwen3-TTS needs ~3 s; longer ICL prompts only cost prefill time
# Language families the model speaks, and the names its API takes.
LANGUAGES = {
    "zh": "Chinese",
    "en": "English",
    "ja": "Japanese",
    "ko": "Korean",
    "de": "German",
    "fr": "French",
    "ru": "Russian",
    "pt": "Portuguese",
    "es": "Spanish",
    "it": "Italian",
}
# The qwen-tts-hf release whose private helpers this engine calls (``Qwen3TTSModel._tokenize_texts``,
# ``_build_assistant_text``, ``_build_ref_text``: the prompt layout the slices in ``_stream_input`` rely on), checked
# against that version; tests/test_qwen3.py fails loudly when they change or disappear.
CHECKED_QWEN_TTS = "0.1.1.post1"
REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "speech_tokenizer/config.json",
    "speech_tokenizer/model.safetensors",
)


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def model_folder(cfg: Qwen3Settings, context: EngineContext) -> Path:
    """Where the configured checkpoint lives."""
    return context.models_dir / cfg.model


def _missing_files(folder: Path) -> list[str]:
    return [f for f in REQUIRED_FILES if not (folder / f).is_file()]


def probe(cfg: Qwen3Settings, context: EngineContext) -> str | None:
    """Why the qwen3 engine cannot run here (None: it can), without loading it."""
    if importlib.util.find_spec("qwen_tts") is None:
        return "the Qwen3-TTS packages are not installed (extra: qwen3)"
    if not _cuda_available():
        return "no CUDA device"
    if _missing_files(model_folder(cfg, context)):
        return f"weights not installed (voiceclone models download {cfg.model})"
    return None


class Qwen3Engine:
    """Qwen3-TTS Base behind the engine protocol; concurrent requests share one batched decode loop."""

    name = "qwen3"
    sample_rate = SAMPLE_RATE
    languages = tuple(LANGUAGES)
    batches_streams = True  # the speech service gives it one worker per stream slot

    def __init__(self, cfg: Qwen3Settings, context: EngineContext) -> None:
        folder = model_folder(cfg, context)
        missing = _missing_files(folder)
        if missing:
            raise EngineUnavailable(
                f"Qwen3-TTS files missing in {folder}: {', '.join(missing)} "
                f"(run: voiceclone models download {cfg.model})"
            )
        ensure_torchaudio()  # qwen_tts imports it for the 25 Hz tokenizer only, unused by the 12 Hz models
        try:
            import torch
            from qwen_tts import Qwen3TTSModel  # type: ignore[import-not-found]
        except ImportError as exc:
            raise EngineUnavailable(f"the qwen3 engine needs the Qwen3-TTS packages (extra: qwen3): {exc}") from exc
        from voiceclone_core.engines.qwen3_batch import BatchDecoder, Sampling

        self._torch = torch
        device = context.device
        cuda = device.startswith("cuda")
        if cuda and not torch.cuda.is_available():
            raise EngineUnavailable(f"engine.device is {device!r} but CUDA is not available")
        self.max_frames, self.min_frames = cfg.max_frames, cfg.min_frames
        self.max_concurrency = cfg.max_streams
        self.version = f"{ENGINE_VERSION}+{folder.name}"
        self._lock = threading.Lock()  # prepare (speaker encoder, codec encoder) runs one at a time
        try:
            with hub_offline():
                self.base = Qwen3TTSModel.from_pretrained(
                    str(folder),
                    device_map=device,
                    dtype=torch.bfloat16 if cuda else torch.float32,
                    attn_implementation="sdpa",
                    local_files_only=True,
                )
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise EngineUnavailable(f"Qwen3-TTS model in {folder} does not load: {exc}") from exc
        self.decoder = BatchDecoder(
            self.base.model,
            slots=cfg.max_streams,
            max_seq_len=cfg.max_seq_len,
            chunk_frames=cfg.chunk_frames,
            first_chunk_frames=cfg.first_chunk_frames,
            talker_sampling=Sampling(cfg.temperature, cfg.top_k, cfg.repetition_penalty),
            predictor_sampling=Sampling(cfg.temperature, cfg.top_k),
            graphs=cuda and cfg.cuda_graphs,
        )
        self.backend = f"batched decoding of up to {cfg.max_streams} streams on {device}"
        if cuda and cfg.cuda_graphs:
            try:
                self.decoder.warmup()  # graph capture now, not on the first request
                self.backend += " (CUDA graphs, bf16)"
            except Exception as exc:  # any capture failure: keep serving without graphs
                log.warning("qwen3 engine: CUDA graph capture failed, decoding without graphs: %s", exc)
                self.decoder.graphs = None
        log.info("qwen3 engine: %s, model %s", self.backend, folder.name)

    # -- protocol ---------------------------------------------------------------------------------------------
    def prepare(self, sample: EnrollmentSample) -> VoicePrompt:
        """Speaker embedding, plus the sample's speech codes and transcript when there is one (ICL mode)."""
        x = prompt_audio(sample, SAMPLE_RATE, MAX_PROMPT_S)
        transcript = (sample.transcript or "").strip()
        # A transcript only describes the whole sample; when it was cut, in-context cloning would misalign.
        icl = bool(transcript) and len(sample.audio) / sample.sample_rate <= MAX_PROMPT_S
        with self._lock, self._torch.inference_mode():
            [item] = self.base.create_voice_clone_prompt(
                ref_audio=(x, SAMPLE_RATE), ref_text=transcript if icl else None, x_vector_only_mode=not icl
            )
        arrays = {"speaker": item.ref_spk_embedding.float().cpu().numpy()}
        if icl:
            arrays["codes"] = item.ref_code.cpu().numpy().astype(np.int32)
        meta = {"mode": "icl" if icl else "x-vector", "transcript": transcript if icl else ""}
        return VoicePrompt(self.name, self.version, arrays, meta)

    def synthesize(self, words: str, prompt: VoicePrompt, options: SynthesisOptions) -> Iterator[np.ndarray]:
        """Float32 audio at 24 kHz, streamed every ``chunk_frames`` codec frames (80 ms each)."""
        check_prompt(self.name, prompt)
        family = text.language_family(options.language or "en")
        language = LANGUAGES.get(family)
        if language is None:
            raise EngineError(f"Qwen3-TTS does not speak {options.language!r}")
        if options.speed != 1.0:
            log.debug("qwen3 engine: speed %.2f is not supported; speaking at the model's own rate", options.speed)
        with self._torch.inference_mode():
            request = self._stream_input(words, language, prompt)
        try:
            yield from self.decoder.stream(request)
        except ValueError as exc:
            raise EngineError(str(exc)) from exc

    def close(self) -> None:
        """Stop the decode loop."""
        self.decoder.close()

    # -- internals --------------------------------------------------------------------------------------------
    def _stream_input(self, words: str, language: str, prompt: VoicePrompt) -> StreamInput:
        """The talker's prompt for ``words`` in the saved voice: role, codec tags with the speaker, first text.

        Streaming text mode: the rest of the text is fed one token per generated frame (``trailing``). In ICL mode
        the reference transcript and codes are interleaved by the model's own ``generate_icl_prompt``.
        """
        from voiceclone_core.engines.qwen3_batch import StreamInput

        torch = self._torch
        model, wrapper = self.base.model, self.base
        config, talker = model.config, model.talker
        tc = config.talker_config
        device = talker.device

        def text_embed(ids: Any) -> Any:
            return talker.text_projection(talker.get_text_embeddings()(ids))

        def codec_embed(ids: list[int]) -> Any:
            return talker.get_input_embeddings()(torch.tensor([ids], device=device))

        # "<|im_start|>assistant\n" (3 tokens) + words + "<|im_end|>\n<|im_start|>assistant\n" (5 tokens): the
        # slices below cut these off (qwen-tts-hf CHECKED_QWEN_TTS; pinned by a test)
        ids = wrapper._tokenize_texts([wrapper._build_assistant_text(words)])[0]
        specials = torch.tensor(
            [[config.tts_bos_token_id, config.tts_eos_token_id, config.tts_pad_token_id]], device=device
        )
        bos, eos, pad = text_embed(specials).chunk(3, dim=1)  # each [1, 1, hidden]
        try:
            speaker = torch.from_numpy(np.array(prompt.arrays["speaker"])).to(device, talker.dtype)
        except KeyError:
            raise EngineError("voice prompt has no Qwen3-TTS speaker embedding; re-enroll the voice") from None
        tags = codec_embed(
            [tc.codec_think_id, tc.codec_think_bos_id, tc.codec_language_id[language.lower()], tc.codec_think_eos_id]
        )
        codec = torch.cat([tags, speaker.view(1, 1, -1), codec_embed([tc.codec_pad_id, tc.codec_bos_id])], dim=1)
        # the codec prefix under text pads ending in text-BOS; its last position joins the first text token
        head = torch.cat([pad.expand(-1, codec.shape[1] - 2, -1), bos], dim=1) + codec[:, :-1]
        prefill = torch.cat([text_embed(ids[:, :3]), head], dim=1)  # "<|im_start|>assistant\n" + codec prefix
        context = None
        if prompt.meta.get("mode") == "icl" and "codes" in prompt.arrays:
            codes = torch.from_numpy(np.array(prompt.arrays["codes"], np.int64)).to(device)
            # "<|im_start|>assistant\n" (3 tokens) + transcript + "<|im_end|>\n" (2 tokens)
            ref_ids = wrapper._tokenize_texts([wrapper._build_ref_text(prompt.meta.get("transcript", ""))])[0]
            icl, trailing = model.generate_icl_prompt(
                text_id=ids[:, 3:-5],
                ref_id=ref_ids[:, 3:-2],
                ref_code=codes,
                tts_pad_embed=pad,
                tts_eos_embed=eos,
                non_streaming_mode=False,
            )
            prefill = torch.cat([prefill, icl], dim=1)
            context = codes
        else:
            prefill = torch.cat([prefill, text_embed(ids[:, 3:4]) + codec[:, -1:]], dim=1)
            trailing = torch.cat([text_embed(ids[:, 4:-5]), eos], dim=1)
        return StreamInput(prefill[0], trailing[0], pad[0, 0], context, self.max_frames, self.min_frames)


def create(section: Qwen3Settings, context: EngineContext) -> Qwen3Engine:
    """The registry's factory."""
    return Qwen3Engine(section, context)
