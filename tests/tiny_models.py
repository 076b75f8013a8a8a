"""Tiny, randomly initialised checkpoints of the neural engines' real architectures, built offline for tests.

They are written in the layout the engines load from (a folder in the models dir), so tests go through the
engines' real loading code; their audio is noise, so tests check rates, shapes and lengths, not sound.
"""

from __future__ import annotations

from pathlib import Path

import yaml

POCKET_CORPUS = [
    "Hello world.",
    "Turn on the kitchen lights.",
    "The washing machine is done.",
    "Good morning, how are you today?",
    "Dinner is ready, please come downstairs.",
]


def pocket_config(vocab: int) -> dict:
    """Pocket TTS's architecture with every width shrunk (SEANet ratios 6/5/4 and 12.5 Hz at 24 kHz kept)."""
    seanet = dict(dimension=32, channels=1, n_filters=4, n_residual_layers=1, ratios=[6, 5, 4], kernel_size=7,
                  residual_kernel_size=3, last_kernel_size=3, dilation_base=2, pad_mode="constant", compress=2)
    return {
        "weights_path": "model.safetensors",
        "default_temperature": 0.3,
        "flow_lm": {
            "dtype": "float32",
            "insert_bos_before_voice": True,
            "flow": {"depth": 1, "dim": 16, "type": "pointwise"},
            "transformer": {"d_model": 32, "hidden_scale": 1, "max_period": 10000, "num_heads": 2,
                            "num_layers": 1, "dim_feedforward": 32},
            "lookup_table": {"dim": 32, "n_bins": vocab, "tokenizer": "sentencepiece",
                             "tokenizer_path": "tokenizer.model"},
        },
        "mimi": {
            "dtype": "float32", "sample_rate": 24000, "channels": 1, "frame_rate": 12.5, "inner_dim": 8,
            "outer_dim": 16, "seanet": seanet,
            "transformer": {"d_model": 32, "num_heads": 2, "num_layers": 1, "layer_scale": 0.01, "context": 250,
                            "dim_feedforward": 32, "input_dimension": 32, "output_dimensions": [32]},
            "quantizer": {"dimension": 8, "output_dimension": 16},
            "decoder_seanet": dict(seanet, dimension=16, kernel_size=3),
            "decoder_transformer": {"d_model": 16, "num_heads": 2, "num_layers": 1, "layer_scale": 0.01,
                                    "context": 50, "dim_feedforward": 16, "input_dimension": 16,
                                    "output_dimensions": [16]},
        },
    }


def build_pocket(folder: Path, config: dict | None = None, vocab_size: int = 40, seed: int = 0) -> Path:
    """A random Pocket TTS model in ``folder`` (config.yaml + model.safetensors + sentencepiece tokenizer).

    ``config`` overrides the tiny architecture (the benchmark passes the released sizes).
    """
    import safetensors.torch
    import sentencepiece as spm
    import torch
    from pocket_tts.models.tts_model import TTSModel
    from pocket_tts.utils.config import Config

    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(POCKET_CORPUS * 20), encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(folder / "tokenizer"), vocab_size=vocab_size,
                                   model_type="unigram", hard_vocab_limit=False, character_coverage=1.0,
                                   minloglevel=2)
    corpus.unlink()
    vocab = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model")).vocab_size()
    config = config or pocket_config(vocab)
    config["flow_lm"]["lookup_table"]["n_bins"] = vocab
    absolute = yaml.safe_load(yaml.safe_dump(config))
    absolute["weights_path"] = None
    absolute["flow_lm"]["lookup_table"]["tokenizer_path"] = str(folder / "tokenizer.model")
    torch.manual_seed(seed)
    model = TTSModel._from_pydantic_config_with_weights(Config(**absolute), 0.3, 1, None, -4.0)
    with torch.no_grad():  # zero-initialised by the package; random here so the voice state matters
        model.flow_lm.speaker_proj_weight.normal_(0, 0.02)
    safetensors.torch.save_file(model.state_dict(), str(folder / "model.safetensors"))
    (folder / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return folder
