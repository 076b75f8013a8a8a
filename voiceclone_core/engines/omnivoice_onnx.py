"""OmniVoice's language-model forward as an ONNX graph: exported and int4-quantised here, run under onnxruntime.

The graph covers only what runs at every decoding step (text and audio embeddings, the bidirectional Qwen3
backbone, the audio heads); tokenisation, the audio codec and the MaskGIT loop stay in the ``omnivoice`` package.
Inputs: ``input_ids`` (batch, codebooks, seq) int64, ``audio_mask`` (batch, seq) bool, ``attention_mask``
(batch, seq) int64 (1: a real position); output ``logits`` (batch, codebooks, seq, audio vocabulary).

Why we export rather than download an export: the graph is then made from the pinned, checksummed checkpoint by
code in this repository, so nobody else's conversion has to be trusted or pinned, and the same code builds the
graphs the tests run on tiny random models. Quantisation is block-wise, symmetric int4 of every MatMul weight
(onnxruntime's ``MatMulNBits``; the audio-embedding and text-embedding tables stay float32): 4.7x smaller than the
float graph and, on the CPU, faster per step.

:class:`OnnxForward` also trims padding: the package runs the conditional and the unconditional row of classifier-
free guidance as one batch padded to the longer (conditional) row; here each row runs at its own length, so the
unconditional row, which holds no prompt, costs only its target frames.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

GRAPH = "lm.onnx"
DATA = "lm.onnx.data"
INFO = "export.json"
EXPORT_VERSION = 1


class ExportError(RuntimeError):
    """The checkpoint could not be exported or quantised; the message says why."""


def export_info(folder: Path) -> dict[str, Any] | None:
    """What ``folder`` holds (source checkpoint digest, bits, block size), or None when no complete export is there."""
    try:
        info = json.loads((folder / INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (folder / GRAPH).is_file() or info.get("version") != EXPORT_VERSION:
        return None
    return info


def checkpoint_digest(checkpoint: Path) -> str:
    """A cheap identity of a checkpoint folder: its config and the weights file's size and modification time."""
    weights = checkpoint / "model.safetensors"
    stat = weights.stat()
    config = (checkpoint / "config.json").read_bytes()
    return hashlib.sha256(config + f"{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:16]


def export(checkpoint: Path, out: Path, bits: int | None = 4, block_size: int = 32, opset: int = 18) -> Path:
    """Export ``checkpoint``'s LM forward to ``out`` (``bits=None``: float32, no quantisation); returns ``out``.

    Built in a staging folder beside ``out`` and moved into place only when complete, so a failed or interrupted
    export never replaces a working one.
    """
    import torch

    from voiceclone_core.engines.torchaudio_compat import ensure_torchaudio

    ensure_torchaudio()
    from omnivoice.models.omnivoice import OmniVoice

    if bits not in (None, 4, 8):
        raise ExportError(f"bits must be 4, 8 or None (float32), not {bits!r}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        model = OmniVoice.from_pretrained(str(checkpoint), train=True, dtype=torch.float32, attn_implementation="sdpa")
        model.eval()
        model.llm.config.use_cache = False
        float_graph = staging / ("lm.float.onnx" if bits else GRAPH)
        _export_float(model, float_graph, opset)
        del model
        if bits:
            _quantise(float_graph, staging / GRAPH, bits, block_size)
            for leftover in staging.glob("lm.float.onnx*"):
                leftover.unlink()
        info = {
            "version": EXPORT_VERSION,
            "checkpoint": checkpoint_digest(checkpoint),
            "bits": bits,
            "block_size": block_size if bits else None,
            "opset": opset,
        }
        (staging / INFO).write_text(json.dumps(info, indent=2), encoding="utf-8")
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    except Exception as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, ExportError):
            raise
        raise ExportError(f"could not export {checkpoint} to ONNX: {exc}") from exc
    log.info("OmniVoice LM exported to %s (%s)", out, f"int{bits}" if bits else "float32")
    return out


def _export_float(model: Any, path: Path, opset: int) -> None:
    import torch

    class LMForward(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, audio_mask: Any, attention_mask: Any) -> Any:
            real = attention_mask.bool()
            seq = input_ids.shape[-1]
            mask = real[:, None, None, :].expand(real.shape[0], 1, seq, seq)
            return self.inner(input_ids=input_ids, audio_mask=audio_mask, attention_mask=mask).logits

    wrapper = LMForward(model).eval()
    codebooks = model.config.num_audio_codebook
    seq = 12
    example = (
        torch.randint(0, 1024, (2, codebooks, seq), dtype=torch.long),
        torch.zeros(2, seq, dtype=torch.bool),
        torch.ones(2, seq, dtype=torch.long),
    )
    example[1][:, seq // 2 :] = True
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            example,
            str(path),
            input_names=["input_ids", "audio_mask", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={
                "input_ids": {0: "batch", 2: "seq"},
                "audio_mask": {0: "batch", 1: "seq"},
                "attention_mask": {0: "batch", 1: "seq"},
                "logits": {0: "batch", 2: "seq"},
            },
            opset_version=opset,
            dynamo=False,
            external_data=True,
        )
    _gather_external_data(path)


def _gather_external_data(path: Path) -> None:
    """Rewrite ``path`` with all its weights in one ``<name>.data`` file beside it (onnxruntime loads that)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=True)
    for stray in path.parent.iterdir():
        if stray != path:
            stray.unlink()
    onnx.save_model(
        proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=f"{path.name}.data"
    )


def _quantise(source: Path, target: Path, bits: int, block_size: int) -> None:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)  # a line a node
    proto = onnx.load(str(source), load_external_data=True)
    config = DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=True, bits=bits)
    quantizer = MatMulNBitsQuantizer(proto, bits=bits, block_size=block_size, is_symmetric=True, algo_config=config)
    quantizer.process()
    onnx.save_model(
        quantizer.model.model,
        str(target),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=f"{target.name}.data",
    )


class OnnxForward:
    """A drop-in for ``OmniVoice.forward`` that runs the exported graph, each batch row at its own length."""

    def __init__(self, graph: Path, threads: int = 0, providers: list[str] | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(graph), options, providers=providers or ["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}

    def __call__(
        self,
        input_ids: Any,
        audio_mask: Any,
        labels: Any = None,
        attention_mask: Any = None,
        document_ids: Any = None,
        position_ids: Any = None,
    ) -> Any:
        """Logits for every row; positions past a row's real length are zeros (the decode loop never reads them)."""
        import torch
        from omnivoice.models.omnivoice import OmniVoiceModelOutput

        batch, _, seq = input_ids.shape
        lengths = _row_lengths(attention_mask, batch, seq)
        ids = input_ids.cpu().numpy().astype(np.int64, copy=False)
        audio = audio_mask.cpu().numpy().astype(bool, copy=False)
        rows = []
        for b, length in enumerate(lengths):
            feeds = {
                "input_ids": np.ascontiguousarray(ids[b : b + 1, :, :length]),
                "audio_mask": np.ascontiguousarray(audio[b : b + 1, :length]),
                "attention_mask": np.ones((1, length), dtype=np.int64),
            }
            rows.append(self.session.run(["logits"], {k: v for k, v in feeds.items() if k in self.inputs})[0])
        logits = np.zeros((batch, *rows[0].shape[1:2], seq, rows[0].shape[-1]), dtype=np.float32)
        for b, row in enumerate(rows):
            logits[b, :, : row.shape[2]] = row[0]
        return OmniVoiceModelOutput(logits=torch.from_numpy(logits))


def _row_lengths(attention_mask: Any, batch: int, seq: int) -> list[int]:
    """Each row's real length: the keys its first position may attend to (the package pads rows at the end)."""
    if attention_mask is None:
        return [seq] * batch
    if attention_mask.dim() == 4:
        return [int(n) for n in attention_mask[:, 0, 0, :].sum(-1).tolist()]
    return [int(n) for n in attention_mask.sum(-1).tolist()]
