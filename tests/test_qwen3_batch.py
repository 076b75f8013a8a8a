"""Batched decoding of concurrent Qwen3-TTS streams, on a tiny random checkpoint (CPU, float32, greedy).

Greedy decoding makes every stream's codes a pure function of its input, so batching can be checked exactly:
each stream must come out code for code as the package's own ``generate`` makes it, and as it does alone.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from voiceclone_core.engines.torchaudio_compat import ensure_torchaudio

ensure_torchaudio()
pytest.importorskip("qwen_tts", reason="Qwen3-TTS packages are installed by scripts/setup.sh (extra: qwen3)")

import torch  # noqa: E402

from voiceclone_core.config import load_settings  # noqa: E402
from voiceclone_core.engines.base import (  # noqa: E402
    EngineError,
    EnrollmentSample,
    SynthesisOptions,
)
from voiceclone_core.engines.qwen3_batch import (  # noqa: E402
    BatchDecoder,
    Sampling,
    SlotCache,
    StreamInput,
    causal_mask,
)
from voiceclone_core.engines.registry import create_engine  # noqa: E402

from .tiny_models import build_qwen3  # noqa: E402

FRAME = 1920
TRANSCRIPT = "The quick brown fox jumps over the lazy dog."


class RecordingDecoder(BatchDecoder):
    """Keeps each finished stream's codes (keyed by its request)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.codes: dict[int, torch.Tensor] = {}

    def _release(self, item) -> None:
        if item.frames:
            self.codes[id(item.request)] = torch.stack(item.frames).cpu()
        super()._release(item)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("models")
    build_qwen3(root / "qwen3-tts-0.6b")
    settings = load_settings(
        None,
        overrides={
            "data_dir": str(tmp_path_factory.mktemp("data")),
            "models_dir": str(root),
            "engine.name": "qwen3",
            "qwen3.temperature": "0",
            "qwen3.max_frames": "12",
            "qwen3.min_frames": "12",
        },
    )
    return create_engine(settings)


def speech(hz: float = 180.0, seconds: float = 4.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.fixture(scope="module")
def prompts(engine):
    return {
        "x-vector": engine.prepare(EnrollmentSample(speech(), 16000, "en")),
        "icl": engine.prepare(EnrollmentSample(speech(260.0), 16000, "en", TRANSCRIPT)),
    }


def decoder(engine, slots: int, cls: type[RecordingDecoder] = RecordingDecoder, **extra) -> RecordingDecoder:
    """A greedy decoder on ``engine``'s model (the engine's own keeps the published sampling)."""
    return cls(
        engine.base.model,
        slots=slots,
        max_seq_len=extra.pop("max_seq_len", 512),
        chunk_frames=4,
        first_chunk_frames=2,
        talker_sampling=Sampling(0.0, 50, 1.05),
        predictor_sampling=Sampling(0.0, 50),
        **extra,
    )


def request(engine, words: str, language: str, prompt, frames: int) -> StreamInput:
    with torch.inference_mode():
        built = engine._stream_input(words, language, prompt)
    return dataclasses.replace(built, max_frames=frames, min_frames=frames)


def package_codes(engine, words: str, language: str, prompt, frames: int) -> torch.Tensor:
    """The same stream through qwen-tts's own (unbatched, Hugging Face generate) loop."""
    from qwen_tts.inference.qwen3_tts_model import VoiceClonePromptItem

    wrapper = engine.base
    icl = prompt.meta["mode"] == "icl"
    codes = torch.from_numpy(prompt.arrays["codes"].astype(np.int64)) if icl else None
    item = VoiceClonePromptItem(
        codes, torch.from_numpy(prompt.arrays["speaker"]), not icl, icl, prompt.meta["transcript"] if icl else None
    )
    ids = wrapper._tokenize_texts([wrapper._build_assistant_text(words)])
    ref_ids = [wrapper._tokenize_texts([wrapper._build_ref_text(TRANSCRIPT)])[0] if icl else None]
    with torch.inference_mode():
        # max_new_tokens counts the token sampled after the last frame too
        [out], _ = wrapper.model.generate(
            input_ids=ids,
            ref_ids=ref_ids,
            voice_clone_prompt=wrapper._prompt_items_to_voice_clone_prompt([item]),
            languages=[language],
            non_streaming_mode=False,
            max_new_tokens=frames + 1,
            do_sample=False,
            subtalker_dosample=False,
            repetition_penalty=1.05,
        )
    return out.cpu()


@pytest.mark.parametrize("mode", ["x-vector", "icl"])
def test_greedy_codes_match_the_package_generate(engine, prompts, mode) -> None:
    d = decoder(engine, slots=2)
    req = request(engine, "The washing machine is done.", "English", prompts[mode], 12)
    chunks = list(d.stream(req))
    d.close()
    expected = package_codes(engine, "The washing machine is done.", "English", prompts[mode], 12)
    assert expected.shape == (12, 16)
    assert torch.equal(d.codes[id(req)], expected)
    assert [len(c) for c in chunks] == [2 * FRAME, 4 * FRAME, 4 * FRAME, 2 * FRAME]  # first chunk early


def test_concurrent_streams_decode_exactly_as_alone(engine, prompts) -> None:
    cases = [
        ("The washing machine is done.", "English", "x-vector", 20),
        ("洗衣机洗好了。", "Chinese", "icl", 9),
        ("Dinner is ready, come downstairs please.", "English", "icl", 31),
        ("Good night.", "English", "x-vector", 14),
    ]
    requests = [request(engine, w, lang, prompts[mode], n) for w, lang, mode, n in cases]
    alone = decoder(engine, slots=1)
    for req in requests:
        list(alone.stream(req))
    alone.close()
    for slots in (4, 2):  # all at once; and more requests than slots (the rest wait for a free slot)
        together = decoder(engine, slots=slots)
        audio: dict[int, int] = {}

        def run(req: StreamInput, d: BatchDecoder = together, out: dict = audio) -> None:
            out[id(req)] = sum(len(c) for c in d.stream(req))

        threads = [threading.Thread(target=run, args=(req,)) for req in requests]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        together.close()
        assert together.peak_streams == slots  # steps really served several streams
        for req, (_, _, _, frames) in zip(requests, cases, strict=True):
            assert torch.equal(together.codes[id(req)], alone.codes[id(req)])
            assert audio[id(req)] == frames * FRAME


def test_streamed_audio_matches_decoding_the_whole_stream(engine, prompts) -> None:
    d = decoder(engine, slots=1)
    req = request(engine, "The washing machine is done.", "English", prompts["x-vector"], 20)
    streamed = np.concatenate(list(d.stream(req)))
    d.close()
    codes = d.codes[id(req)].T[None]  # [1, groups, frames]
    with torch.inference_mode():
        whole = d.codec_decoder(codes).float()[0, 0].numpy()
    assert streamed.shape == whole.shape == (20 * FRAME,)
    assert np.abs(streamed - whole).max() <= 1e-4 * np.abs(whole).max()  # left context up to 25 frames: exact


def test_a_closed_stream_frees_its_slot(engine, prompts) -> None:
    d = decoder(engine, slots=1)
    long = request(engine, "The washing machine is done.", "English", prompts["x-vector"], 400)
    stream = d.stream(long)
    assert len(next(stream)) == 2 * FRAME
    stream.close()  # e.g. the Wyoming client hung up
    deadline = time.monotonic() + 10
    while d.active and time.monotonic() < deadline:
        time.sleep(0.01)
    assert d.active == 0 and len(d.codes[id(long)]) < 400
    short = request(engine, "Good night.", "English", prompts["icl"], 6)
    assert sum(len(c) for c in d.stream(short)) == 6 * FRAME  # the single slot serves the next request
    d.close()


def test_a_failing_step_fails_its_streams_not_the_loop(engine, prompts) -> None:
    class Flaky(RecordingDecoder):
        fail = True

        def _predict(self, hidden, first):
            if Flaky.fail:
                Flaky.fail = False
                raise RuntimeError("simulated CUDA error")
            return super()._predict(hidden, first)

    d = decoder(engine, slots=2, cls=Flaky)
    with pytest.raises(RuntimeError, match="simulated"):
        list(d.stream(request(engine, "Hello.", "English", prompts["x-vector"], 6)))
    assert sum(len(c) for c in d.stream(request(engine, "Hello.", "English", prompts["x-vector"], 6))) == 6 * FRAME
    d.close()


def test_too_long_a_prompt_is_refused(engine, prompts) -> None:
    words = "The washing machine is done. " * 3
    req = request(engine, words, "English", prompts["icl"], 4)
    limit = req.prefill.shape[0]
    d = decoder(engine, slots=1, max_seq_len=limit)
    with pytest.raises(ValueError, match=f"does not fit qwen3.max_seq_len {limit}"):
        list(d.stream(req))
    engine.decoder.max_seq_len, saved = limit, engine.decoder.max_seq_len
    try:
        with pytest.raises(EngineError, match="max_seq_len"):
            list(engine.synthesize(words, prompts["icl"], SynthesisOptions("en")))
    finally:
        engine.decoder.max_seq_len = saved


def test_stream_reaching_max_seq_len_ends_cleanly(engine, prompts) -> None:
    req = request(engine, "Hi.", "English", prompts["x-vector"], 500)
    d = decoder(engine, slots=1, max_seq_len=req.prefill.shape[0] + 10)
    total = sum(len(c) for c in d.stream(req))
    d.close()
    assert 0 < total <= 10 * FRAME and total % FRAME == 0


def test_slot_cache_writes_each_row_at_its_own_position() -> None:
    cache = SlotCache(
        layers=1, slots=3, kv_heads=1, length=6, head_dim=2, dtype=torch.float32, device=torch.device("cpu")
    )
    key = torch.tensor([[[[1.0, 1.0]]], [[[2.0, 2.0]]]])  # [B=2, heads, T=1, dim]
    cache.bind(torch.arange(2), torch.tensor([[4], [1]]), packed=True)
    keys, _ = cache.update(key, key * 10, 0)
    assert keys.shape == (2, 1, 6, 2)  # a view of the packed rows
    assert keys[0, 0, 4].tolist() == [1.0, 1.0] and keys[1, 0, 1].tolist() == [2.0, 2.0]
    assert keys[0, 0, :4].abs().sum() == 0 and cache.values[0][1, 0, 1].tolist() == [20.0, 20.0]
    prefill = torch.arange(6.0).view(1, 1, 3, 2)  # one row, three tokens, into slot 2
    cache.bind(torch.tensor([2]), torch.tensor([[0, 1, 2]]), packed=False)
    keys, _ = cache.update(prefill, prefill, 0)
    assert keys.shape == (1, 1, 6, 2) and torch.equal(keys[0, 0, :3], prefill[0, 0])
    cache.move(2, 0, 3)
    assert torch.equal(cache.keys[0][0, 0, :3], prefill[0, 0])
    mask = causal_mask(torch.tensor([[4], [1]]), 6, torch.float32)
    assert (mask[0, 0, 0] == 0).tolist() == [True] * 5 + [False]
    assert (mask[1, 0, 0] == 0).tolist() == [True, True] + [False] * 4


def test_sampling_draws_from_the_top_k_only() -> None:
    from voiceclone_core.engines.qwen3_batch import sample

    logits = torch.tensor([[0.0, 5.0, 4.9, -1.0]] * 200)
    greedy = sample(logits, Sampling(0.0))
    assert greedy.tolist() == [1] * 200
    drawn = sample(logits, Sampling(1.0, top_k=2))
    assert set(drawn.tolist()) == {1, 2}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_cuda_graphs_decode_the_same_codes_as_eager(tmp_path: Path) -> None:
    root = tmp_path / "models"
    build_qwen3(root / "qwen3-tts-0.6b")
    settings = load_settings(
        None,
        overrides={
            "data_dir": str(tmp_path / "data"),
            "models_dir": str(root),
            "engine.name": "qwen3",
            "engine.device": "cuda",
            "qwen3.temperature": "0",
            "qwen3.max_streams": "4",
        },
    )
    gpu = create_engine(settings)
    assert "CUDA graphs" in gpu.backend and gpu.decoder.graphs is not None and gpu.decoder.graphs.ready
    eager = decoder(gpu, slots=4)
    graphed = decoder(gpu, slots=4, graphs=True)
    graphed.warmup()
    prompt = gpu.prepare(EnrollmentSample(speech(), 16000, "en", TRANSCRIPT))
    requests = [request(gpu, f"Stream number {i} is speaking now.", "English", prompt, 16 + i) for i in range(4)]
    for d in (eager, graphed):  # one at a time: the same batch shapes, so bf16 results must agree exactly
        for req in requests:
            list(d.stream(req))
    for req in requests:
        assert torch.equal(eager.codes[id(req)], graphed.codes[id(req)])
    totals: dict[int, int] = {}
    threads = [
        threading.Thread(target=lambda r=r: totals.__setitem__(id(r), sum(map(len, graphed.stream(r)))))
        for r in requests
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    graphed.close()
    eager.close()
    assert graphed.peak_streams == 4
    assert [totals[id(r)] for r in requests] == [(16 + i) * FRAME for i in range(4)]
