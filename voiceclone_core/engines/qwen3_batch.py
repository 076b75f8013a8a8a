"""Batched streaming decoding for Qwen3-TTS: one forward step serves every active stream.

A request is prefilled on its own (prompt lengths differ) straight into a slot of a shared static K/V cache. From
then on each codec frame costs one talker step and one 15-step code-predictor pass for *all* active streams
together, every row at its own position and with its own text, voice and sampling history. Active streams hold
the lowest slots (a finished stream's slot is refilled by moving the last one down), so a step works on views of
the cache, never on gathered copies, and a step's shapes depend only on how many streams run — which is what lets
CUDA capture one graph per batch size (``graphs``). Every ``chunk_frames`` frames a stream's new codes become audio
through the 12 Hz codec decoder with ``context_frames`` of left context (the voice's reference codes in
in-context mode, so even the first chunk has context); windows of equal length are decoded as one batch.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers.cache_utils import Cache

log = logging.getLogger(__name__)

CONTEXT_FRAMES = 25  # left context for streamed codec decoding, as the codec's own chunked decoder uses
_END = object()  # end-of-stream marker in a stream's audio queue


@dataclass(frozen=True)
class Sampling:
    """How the next code is drawn. ``temperature`` 0 means greedy (deterministic)."""

    temperature: float = 0.9
    top_k: int = 50
    repetition_penalty: float = 1.0


def sample(logits: torch.Tensor, how: Sampling) -> torch.Tensor:
    """One token per row of ``logits`` [B, V] (already penalised and suppressed)."""
    if how.temperature <= 0:
        return logits.argmax(-1)
    logits = logits.float() / how.temperature
    if 0 < how.top_k < logits.shape[-1]:
        kth = logits.topk(how.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(logits.softmax(-1), 1).squeeze(-1)


def causal_mask(positions: torch.Tensor, length: int, dtype: torch.dtype, window: int | None = None) -> torch.Tensor:
    """Additive mask [B, 1, T, length]: the query at ``positions[b, t]`` sees keys up to it (within ``window``)."""
    keys = torch.arange(length, device=positions.device)
    allowed = keys[None, None, :] <= positions[:, :, None]
    if window is not None:
        allowed &= keys[None, None, :] > positions[:, :, None] - window
    zero = torch.zeros((), dtype=dtype, device=positions.device)
    return torch.where(allowed, zero, torch.finfo(dtype).min).unsqueeze(1)


class SlotCache(Cache):
    """Static keys/values for ``slots`` sequences; each bound row writes at its own position.

    Of transformers' cache interface it implements the one method the attention layers call (``update``).
    ``bind`` says which slots the next forward pass is for and the positions [B, T] its new tokens go to; when the
    rows are the packed prefix ``0..B-1`` the attention reads views of the cache.
    """

    def __init__(
        self,
        layers: int,
        slots: int,
        kv_heads: int,
        length: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        super().__init__(layers=[])
        shape = (slots, kv_heads, length, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.length = length
        self._rows = torch.zeros(1, dtype=torch.long, device=device)
        self._positions = torch.zeros(1, 1, dtype=torch.long, device=device)
        self._packed = True

    def bind(self, rows: torch.Tensor, positions: torch.Tensor, packed: bool) -> None:
        self._rows, self._positions, self._packed = rows, positions, packed

    def update(
        self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, cache_kwargs: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self._rows[:, None]
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        keys[rows, :, self._positions] = key.transpose(1, 2)  # advanced indices first: [B, T, heads, dim]
        values[rows, :, self._positions] = value.transpose(1, 2)
        if self._packed:
            return keys[: key.shape[0]], values[: key.shape[0]]
        return keys[self._rows], values[self._rows]

    def move(self, source: int, target: int, length: int) -> None:
        """Copy the first ``length`` positions of slot ``source`` into slot ``target``."""
        for tensor in (*self.keys, *self.values):
            tensor[target, :, :length] = tensor[source, :, :length]


@dataclass(eq=False)
class StreamInput:
    """One request, ready to decode: the prefill, the text still to be read, and the codec's left context."""

    prefill: torch.Tensor  # [L, hidden]
    trailing: torch.Tensor  # [T, hidden] text embeddings fed one per frame (the pad embedding after them)
    pad: torch.Tensor  # [hidden]
    context: torch.Tensor | None  # [C, groups] reference codes (in-context mode) for the first chunks' decoding
    max_frames: int
    min_frames: int


@dataclass(eq=False)
class _Stream:
    request: StreamInput
    audio: queue.Queue = field(default_factory=queue.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    slot: int = -1
    position: int = 0  # where the next talker input goes in the cache
    step: int = 0  # frames generated
    token: int = 0  # the sampled first-codebook code that the next frame starts with
    hidden: torch.Tensor | None = None  # the talker's last hidden state [hidden]
    frames: list[torch.Tensor] = field(default_factory=list)
    decoded: int = 0  # frames already turned into audio
    finished: bool = False

    def text_at(self, step: int) -> torch.Tensor:
        trailing = self.request.trailing
        return trailing[step] if step < trailing.shape[0] else self.request.pad


class BatchDecoder:
    """Runs every Qwen3-TTS stream of one model instance in a single decode loop on its own thread."""

    def __init__(
        self,
        model: Any,
        *,
        slots: int,
        max_seq_len: int,
        chunk_frames: int,
        first_chunk_frames: int,
        talker_sampling: Sampling,
        predictor_sampling: Sampling,
        context_frames: int = CONTEXT_FRAMES,
        graphs: bool = False,
    ) -> None:
        self.model = model  # Qwen3TTSForConditionalGeneration
        talker, config = model.talker, model.config.talker_config
        self.talker = talker
        self.predictor = talker.code_predictor
        self.groups = config.num_code_groups
        self.eos = config.codec_eos_token_id
        self.window = config.sliding_window
        self.slots, self.max_seq_len = slots, max_seq_len
        self.chunk_frames, self.first_chunk_frames = chunk_frames, first_chunk_frames
        self.context_frames = context_frames
        self.talker_sampling, self.predictor_sampling = talker_sampling, predictor_sampling
        codec = model.speech_tokenizer.model
        self.codec_decoder, self.upsample = codec.decoder, int(codec.decode_upsample_rate)
        param = next(talker.parameters())
        self.device, self.dtype = param.device, param.dtype
        vocab = config.vocab_size
        self.suppress = torch.zeros(vocab, dtype=torch.bool, device=self.device)
        self.suppress[max(0, vocab - 1024) :] = True  # control codes: never sampled, except end-of-speech
        self.suppress[self.eos] = False
        self.seen = torch.zeros(slots, vocab, dtype=torch.bool, device=self.device)  # for the repetition penalty
        self.cache = self._slot_cache(config, slots, max_seq_len)
        pred_config = self.predictor.model.config
        self.predictor_cache = self._slot_cache(pred_config, slots, self.groups + 1)
        self.graphs = _Graphs(self) if graphs else None
        self._active: list[_Stream] = []
        self.peak_streams = 0  # the most streams one step has served
        self._pending: queue.Queue[_Stream] = queue.Queue()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def _slot_cache(self, config: Any, slots: int, length: int) -> SlotCache:
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        return SlotCache(
            config.num_hidden_layers, slots, config.num_key_value_heads, length, head_dim, self.dtype, self.device
        )

    # -- public --------------------------------------------------------------------------------------------------
    def stream(self, request: StreamInput) -> Iterator[np.ndarray]:
        """Float32 audio chunks for ``request`` as the shared loop produces them; closing stops its decoding."""
        if request.prefill.shape[0] + 1 >= self.max_seq_len:
            raise ValueError(
                f"prompt of {request.prefill.shape[0]} positions does not fit qwen3.max_seq_len "
                f"{self.max_seq_len}: use a shorter text chunk or enrollment sample"
            )
        item = _Stream(request)
        self._ensure_thread()
        self._pending.put(item)
        self._wake.set()
        try:
            while True:
                chunk = item.audio.get()
                if chunk is _END:
                    return
                if isinstance(chunk, BaseException):
                    raise chunk
                yield chunk
        finally:
            item.cancelled.set()
            self._wake.set()

    def warmup(self) -> None:
        """Capture the CUDA graphs now (when enabled), so no request pays for it."""
        if self.graphs is not None:
            self.graphs.capture()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def active(self) -> int:
        return len(self._active)

    # -- the loop ------------------------------------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="qwen3-decoder", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)  # this thread's kernels (and graph replays) go to the model's GPU
        with torch.inference_mode():
            while not self._closed:
                try:
                    self._admit()
                    self._drop_cancelled()
                    if not self._active:
                        self._wake.wait(timeout=1.0)
                        self._wake.clear()
                        continue
                    self._step()
                except Exception as exc:  # a failed step fails the streams in it, not the loop
                    log.exception("qwen3 decoder step failed")
                    for item in self._active:
                        item.audio.put(exc)
                    self._active.clear()

    def _admit(self) -> None:
        while len(self._active) < self.slots:
            try:
                item = self._pending.get_nowait()
            except queue.Empty:
                return
            if item.cancelled.is_set():
                continue
            try:
                self._prefill(item)
            except Exception as exc:
                item.audio.put(exc)
                continue
            self._active.append(item)

    def _drop_cancelled(self) -> None:
        for item in [s for s in self._active if s.cancelled.is_set()]:
            self._release(item)

    def _release(self, item: _Stream) -> None:
        """Free ``item``'s slot, moving the last active stream into it so the active slots stay packed."""
        last = self._active[-1]
        if last is not item:
            self.cache.move(last.slot, item.slot, last.position)
            self.seen[item.slot] = self.seen[last.slot]
            last.slot = item.slot
            self._active[self._active.index(item)] = last
        self._active.pop()

    def _prefill(self, item: _Stream) -> None:
        item.slot = len(self._active)
        embeds = item.request.prefill.to(self.device, self.dtype)[None]
        rows = torch.tensor([item.slot], device=self.device)
        starts = torch.zeros(1, dtype=torch.long, device=self.device)
        hidden = self._talker(embeds, rows, starts, packed=False)
        item.position = embeds.shape[1]
        item.hidden = hidden[0, -1]
        self.seen[item.slot] = False
        item.token = int(self._next_tokens(hidden[:, -1], [item])[0])

    def _bind(
        self,
        cache: SlotCache,
        rows: torch.Tensor,
        starts: torch.Tensor,
        steps: int,
        packed: bool,
        window: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Point ``cache`` at ``rows`` for ``steps`` new tokens from ``starts``: their positions [B, T] and mask."""
        positions = starts[:, None] + torch.arange(steps, device=self.device)
        cache.bind(rows, positions, packed)
        return positions, causal_mask(positions, cache.length, self.dtype, window)

    def _talker(self, embeds: torch.Tensor, rows: torch.Tensor, starts: torch.Tensor, packed: bool) -> torch.Tensor:
        """The talker over ``embeds`` [B, T, hidden] for cache ``rows`` whose new tokens start at ``starts``."""
        positions, mask = self._bind(self.cache, rows, starts, embeds.shape[1], packed, self.window)
        out = self.talker.model(
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=positions[None].expand(3, -1, -1),  # the same position in all three RoPE sections
            past_key_values=self.cache,
            cache_position=positions[0],
            use_cache=True,
        )
        return out.last_hidden_state

    def _next_tokens(self, hidden: torch.Tensor, items: list[_Stream]) -> torch.Tensor:
        """Sample each stream's next first-codebook code from the talker's last hidden states [B, hidden]."""
        logits = self.talker.codec_head(hidden).float()
        rows = torch.tensor([s.slot for s in items], device=self.device)
        penalty = self.talker_sampling.repetition_penalty
        if penalty != 1.0:
            penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
            logits = torch.where(self.seen[rows], penalised, logits)
        logits = logits.masked_fill(self.suppress, float("-inf"))
        young = torch.tensor([s.step < s.request.min_frames for s in items], device=self.device)
        logits[:, self.eos] = logits[:, self.eos].masked_fill(young, float("-inf"))
        tokens = sample(logits, self.talker_sampling)
        self.seen[rows, tokens] = True
        return tokens

    def _step(self) -> None:
        items = self._active
        self.peak_streams = max(self.peak_streams, len(items))
        first = torch.tensor([s.token for s in items], device=self.device)
        hidden = torch.stack([s.hidden for s in items])
        codes = self._predict(hidden, first)  # [B, groups-1]
        frames = torch.cat([first[:, None], codes], dim=1)
        embeds = self.talker.get_input_embeddings()(first)
        for group in range(self.groups - 1):
            embeds = embeds + self.predictor.model.codec_embedding[group](codes[:, group])
        embeds = embeds + torch.stack([s.text_at(s.step) for s in items])
        out = self._talker_step(embeds, torch.tensor([s.position for s in items], device=self.device))
        for index, item in enumerate(items):
            item.frames.append(frames[index])
            item.step += 1
            item.position += 1
            item.hidden = out[index]
        tokens = self._next_tokens(out, items).tolist()
        for item, token in zip(items, tokens, strict=True):
            item.token = token
            if token == self.eos or item.step >= item.request.max_frames:
                item.finished = True
            elif item.position + 1 >= self.max_seq_len:
                log.warning("qwen3 stream reached qwen3.max_seq_len (%d); ending it", self.max_seq_len)
                item.finished = True
        self._emit_audio()
        for item in [s for s in items if s.finished]:
            item.audio.put(_END)
            self._release(item)

    @property
    def _graphed(self) -> bool:
        return self.graphs is not None and self.graphs.ready

    def _talker_step(self, embeds: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        """One talker step for the packed active rows: next inputs [B, hidden] at ``starts`` -> hidden [B, hidden]."""
        if self._graphed:
            return self.graphs.talker(embeds, starts)
        rows = torch.arange(embeds.shape[0], device=self.device)
        return self._talker(embeds[:, None], rows, starts, packed=True)[:, -1]

    def _predict(self, hidden: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        """The residual codebooks [B, groups-1] for each stream's frame, all streams in one pass per codebook."""
        if self._graphed:
            return self.graphs.predict(hidden, first)
        return self._predict_eager(hidden, first)

    def _predict_eager(self, hidden: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        batch = hidden.shape[0]
        rows = torch.arange(batch, device=self.device)
        project = self.predictor.small_to_mtp_projection
        x = project(torch.stack([hidden, self.talker.get_input_embeddings()(first)], dim=1))
        codes = []
        start = 0
        for group in range(self.groups - 1):
            if group:
                x = project(self.predictor.model.codec_embedding[group - 1](codes[-1])[:, None])
            starts = torch.full((batch,), start, dtype=torch.long, device=self.device)
            h = self._predictor_forward(x, rows, starts)
            start += x.shape[1]
            logits = self.predictor.lm_head[group](h[:, -1]).float()
            codes.append(sample(logits, self.predictor_sampling))
        return torch.stack(codes, dim=1)

    def _predictor_forward(self, x: torch.Tensor, rows: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        positions, mask = self._bind(self.predictor_cache, rows, starts, x.shape[1], packed=True)
        out = self.predictor.model(
            inputs_embeds=x,
            attention_mask={"full_attention": mask, "sliding_attention": mask},
            position_ids=positions,
            past_key_values=self.predictor_cache,
            cache_position=positions[0],
            use_cache=True,
        )
        return out.last_hidden_state

    # -- audio ---------------------------------------------------------------------------------------------------
    def _emit_audio(self) -> None:
        """Decode the new frames of every stream that has a chunk's worth (or has finished), grouped by length."""
        windows: dict[int, list[tuple[_Stream, torch.Tensor, int]]] = {}
        for item in self._active:
            new = len(item.frames) - item.decoded
            due = self.first_chunk_frames if item.decoded == 0 else self.chunk_frames
            if new == 0 or (new < due and not item.finished):
                continue
            recent = torch.stack(item.frames[-(new + self.context_frames) :])
            context = self.context_frames - (recent.shape[0] - new)
            if context > 0 and item.request.context is not None:
                reference = item.request.context[-context:].to(self.device)
                recent = torch.cat([reference, recent])
            windows.setdefault(recent.shape[0], []).append((item, recent, new))
            item.decoded += new
        for group in windows.values():
            codes = torch.stack([w for _, w, _ in group]).clamp(min=0).transpose(1, 2)  # [G, groups, frames]
            wav = self.codec_decoder(codes).float()[:, 0]
            for (item, window, new), audio in zip(group, wav, strict=True):
                start = (window.shape[0] - new) * self.upsample
                item.audio.put(audio[start:].cpu().numpy())  # float32 already


class _Graphs:
    """CUDA graphs of the batched talker step and predictor pass, one per batch size (CUDA only)."""

    def __init__(self, decoder: BatchDecoder) -> None:
        self.decoder = decoder
        self.ready = False
        self._talker: dict[int, tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self._predictor: dict[int, tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def capture(self) -> None:
        d = self.decoder
        if d.device.type != "cuda":
            raise RuntimeError("CUDA graphs need a CUDA device")
        hidden_size = d.talker.config.hidden_size
        with torch.inference_mode():
            for batch in range(1, d.slots + 1):
                rows = torch.arange(batch, device=d.device)
                embeds = torch.zeros(batch, 1, hidden_size, dtype=d.dtype, device=d.device)
                starts = torch.zeros(batch, dtype=torch.long, device=d.device)
                self._talker[batch] = (
                    *self._record(lambda e=embeds, r=rows, s=starts: d._talker(e, r, s, packed=True)[:, -1]),
                    embeds,
                    starts,
                )
                hidden = torch.zeros(batch, hidden_size, dtype=d.dtype, device=d.device)
                first = torch.zeros(batch, dtype=torch.long, device=d.device)
                self._predictor[batch] = (
                    *self._record(lambda h=hidden, f=first: d._predict_eager(h, f)),
                    hidden,
                    first,
                )
        self.ready = True

    def _record(self, fn: Any) -> tuple[Any, torch.Tensor]:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                fn()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = fn()
        return graph, out

    def talker(self, embeds: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        graph, out, embeds_in, starts_in = self._talker[embeds.shape[0]]
        embeds_in[:, 0].copy_(embeds)
        starts_in.copy_(starts)
        graph.replay()
        return out.clone()

    def predict(self, hidden: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        graph, out, hidden_in, first_in = self._predictor[hidden.shape[0]]
        hidden_in.copy_(hidden)
        first_in.copy_(first)
        graph.replay()
        return out.clone()
