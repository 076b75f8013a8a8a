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
    seanet = dict(
        dimension=32,
        channels=1,
        n_filters=4,
        n_residual_layers=1,
        ratios=[6, 5, 4],
        kernel_size=7,
        residual_kernel_size=3,
        last_kernel_size=3,
        dilation_base=2,
        pad_mode="constant",
        compress=2,
    )
    return {
        "weights_path": "model.safetensors",
        "default_temperature": 0.3,
        "flow_lm": {
            "dtype": "float32",
            "insert_bos_before_voice": True,
            "flow": {"depth": 1, "dim": 16, "type": "pointwise"},
            "transformer": {
                "d_model": 32,
                "hidden_scale": 1,
                "max_period": 10000,
                "num_heads": 2,
                "num_layers": 1,
                "dim_feedforward": 32,
            },
            "lookup_table": {
                "dim": 32,
                "n_bins": vocab,
                "tokenizer": "sentencepiece",
                "tokenizer_path": "tokenizer.model",
            },
        },
        "mimi": {
            "dtype": "float32",
            "sample_rate": 24000,
            "channels": 1,
            "frame_rate": 12.5,
            "inner_dim": 8,
            "outer_dim": 16,
            "seanet": seanet,
            "transformer": {
                "d_model": 32,
                "num_heads": 2,
                "num_layers": 1,
                "layer_scale": 0.01,
                "context": 250,
                "dim_feedforward": 32,
                "input_dimension": 32,
                "output_dimensions": [32],
            },
            "quantizer": {"dimension": 8, "output_dimension": 16},
            "decoder_seanet": dict(seanet, dimension=16, kernel_size=3),
            "decoder_transformer": {
                "d_model": 16,
                "num_heads": 2,
                "num_layers": 1,
                "layer_scale": 0.01,
                "context": 50,
                "dim_feedforward": 16,
                "input_dimension": 16,
                "output_dimensions": [16],
            },
        },
    }


def build_pocket(
    folder: Path, config: dict | None = None, vocab_size: int = 40, corpus: list[str] | None = None, seed: int = 0
) -> Path:
    """A random Pocket TTS model in ``folder`` (model.yaml + model.safetensors + sentencepiece tokenizer).

    ``config`` overrides the tiny architecture and ``corpus`` the tokenizer's training text (the benchmark passes
    the released sizes and a larger text for a 4000-piece tokenizer).
    """
    import safetensors.torch
    import sentencepiece as spm
    import torch
    from pocket_tts.models.tts_model import TTSModel
    from pocket_tts.utils.config import Config

    folder.mkdir(parents=True, exist_ok=True)
    text = folder / "corpus.txt"
    text.write_text("\n".join(corpus or POCKET_CORPUS * 20), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(text),
        model_prefix=str(folder / "tokenizer"),
        vocab_size=vocab_size,
        model_type="unigram",
        hard_vocab_limit=False,
        character_coverage=1.0,
        minloglevel=2,
    )
    text.unlink()
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
    (folder / "model.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return folder


# -- Qwen3-TTS 12 Hz Base ------------------------------------------------------------------------------------------
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|tts_pad|>", "<|tts_text_bos|>", "<|tts_text_eod|>"]
QWEN_CORPUS = [
    "assistant",
    "user",
    "system",
    "Hello world.",
    "Turn on the kitchen lights.",
    "The quick brown fox jumps over the lazy dog.",
    "The washing machine is done.",
    "Dinner is ready, please come downstairs.",
    "Good morning, how are you?",
]
QWEN_CODEC_LANGUAGES = {
    "english": 2050,
    "chinese": 2055,
    "german": 2053,
    "french": 2061,
    "spanish": 2054,
    "italian": 2070,
    "japanese": 2058,
    "korean": 2064,
    "portuguese": 2071,
    "russian": 2069,
}


class _RopeTheta:
    """While building (not loading): transformers 5.x keeps MimiConfig's theta only in ``rope_parameters``, but
    qwen-tts-hf's "default" RoPE initialiser reads ``config.rope_theta``; give it a view that has both."""

    def __enter__(self) -> _RopeTheta:
        from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

        self.table, self.original = ROPE_INIT_FUNCTIONS, ROPE_INIT_FUNCTIONS.get("default")
        if self.original is not None:
            original = self.original

            class View:
                def __init__(self, cfg) -> None:
                    self._cfg, self.rope_theta = cfg, cfg.rope_parameters["rope_theta"]

                def __getattr__(self, name):
                    return getattr(self._cfg, name)

            def patched(config, *args, **kwargs):
                if not hasattr(config, "rope_theta") and getattr(config, "rope_parameters", None):
                    config = View(config)
                return original(config, *args, **kwargs)

            self.table["default"] = patched
        return self

    def __exit__(self, *exc) -> None:
        if self.original is not None:
            self.table["default"] = self.original


def qwen_bpe_tokenizer(corpus: list[str], specials: list[str], vocab_size: int):
    """A small byte-level BPE in Qwen's tokenizer class (the first special is end-of-text), trained on ``corpus``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus * 50, trainer=trainer)
    end = specials[0]
    return Qwen2TokenizerFast(
        tokenizer_object=bpe, unk_token=end, eos_token=end, pad_token=end, additional_special_tokens=specials[1:]
    )


def _save_hf(model, folder: Path) -> None:
    """``save_pretrained``, or (transformers 5.x rejects the package's list-style tied-weight keys) config +
    safetensors written by hand under the same names."""
    import safetensors.torch

    try:
        model.save_pretrained(folder)
    except AttributeError:
        model.config.save_pretrained(folder)
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        safetensors.torch.save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


def build_qwen3(folder: Path, seed: int = 0, full: bool = False) -> Path:
    """A random Qwen3-TTS 12 Hz Base checkpoint in ``folder``: talker, text tokenizer, 12 Hz speech tokenizer.

    Every shape the package hard-codes is kept (24 kHz, 1920-sample frames, 16 codebooks of 2048, codec special
    ids from 2048, 128-bin mels); the widths shrink to a few dozen. ``full``: the released 0.6B-Base sizes
    (915 M + 154 M parameters, as quoted in research/h100-qwen3-anchor.md) for benchmarks; the text tokenizer stays
    small (about one token per word) but the text embedding keeps its 151,936 rows.
    """
    import json

    import torch
    from qwen_tts.core.models.configuration_qwen3_tts import Qwen3TTSConfig
    from qwen_tts.core.models.modeling_qwen3_tts import Qwen3TTSForConditionalGeneration
    from qwen_tts.core.models.processing_qwen3_tts import Qwen3TTSProcessor
    from qwen_tts.core.tokenizer_12hz.configuration_qwen3_tts_tokenizer_v2 import Qwen3TTSTokenizerV2Config
    from qwen_tts.core.tokenizer_12hz.modeling_qwen3_tts_tokenizer_v2 import Qwen3TTSTokenizerV2Model
    from transformers import EncodecFeatureExtractor

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = qwen_bpe_tokenizer(QWEN_CORPUS, QWEN_SPECIALS, 500)
    tokenizer.save_pretrained(folder)
    Qwen3TTSProcessor(tokenizer=tokenizer).save_pretrained(folder)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIALS}

    if full:
        width = dict(
            hidden_size=1024, intermediate_size=3072, num_attention_heads=16, num_key_value_heads=8, head_dim=128
        )
        talker_layers, predictor_layers, text_hidden, text_vocab = 28, 5, 2048, 151936
        mrope = [24, 20, 20]
        speaker = dict(
            mel_dim=128,
            enc_dim=1024,
            enc_channels=[512, 512, 512, 512, 1536],
            enc_kernel_sizes=[5, 3, 3, 3, 1],
            enc_dilations=[1, 2, 3, 4, 1],
            enc_attention_channels=128,
            enc_res2net_scale=8,
            enc_se_channels=128,
            sample_rate=24000,
        )
    else:
        width = dict(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1, head_dim=16)
        talker_layers, predictor_layers, text_hidden, text_vocab = 1, 1, 32, len(tokenizer)
        mrope = [4, 2, 2]
        speaker = dict(
            mel_dim=128,
            enc_dim=32,
            enc_channels=[16, 16, 16, 16, 48],
            enc_kernel_sizes=[5, 3, 3, 3, 1],
            enc_dilations=[1, 2, 3, 4, 1],
            enc_attention_channels=8,
            enc_res2net_scale=4,
            enc_se_channels=8,
            sample_rate=24000,
        )
    talker = dict(
        code_predictor_config=dict(
            vocab_size=2048, num_hidden_layers=predictor_layers, num_code_groups=16, max_position_embeddings=64, **width
        ),
        vocab_size=3072,
        num_hidden_layers=talker_layers,
        num_code_groups=16,
        text_hidden_size=text_hidden,
        text_vocab_size=text_vocab,
        max_position_embeddings=4096,
        rope_theta=1000000,
        rope_scaling={"rope_type": "default", "mrope_section": mrope, "interleaved": True},
        codec_eos_token_id=2150,
        codec_pad_id=2148,
        codec_bos_id=2149,
        codec_think_id=2154,
        codec_nothink_id=2155,
        codec_think_bos_id=2156,
        codec_think_eos_id=2157,
        spk_id={},
        spk_is_dialect={},
        codec_language_id=QWEN_CODEC_LANGUAGES,
        **width,
    )
    config = Qwen3TTSConfig(
        talker_config=talker,
        speaker_encoder_config=speaker,
        tokenizer_type="qwen3_tts_tokenizer_12hz",
        tts_model_size="0b6" if full else "tiny",
        tts_model_type="base",
        im_start_token_id=ids["<|im_start|>"],
        im_end_token_id=ids["<|im_end|>"],
        tts_pad_token_id=ids["<|tts_pad|>"],
        tts_bos_token_id=ids["<|tts_text_bos|>"],
        tts_eos_token_id=ids["<|tts_text_eod|>"],
    )
    with _RopeTheta():
        model = Qwen3TTSForConditionalGeneration(config)
    _save_hf(model, folder)
    saved = json.loads((folder / "config.json").read_text())
    # Written as "model_type": "" but the speaker-encoder config takes no such argument; and transformers 5.x
    # writes the talker's RoPE block as rope_parameters where the package (like the released config) reads
    # rope_scaling.
    saved["speaker_encoder_config"].pop("model_type", None)
    for sub in (saved["talker_config"], saved["talker_config"].get("code_predictor_config", {})):
        if "rope_parameters" in sub and "rope_scaling" not in sub:
            rope = sub.pop("rope_parameters")
            if "mrope_section" in rope or sub is saved["talker_config"]:
                sub["rope_scaling"] = rope
            sub.setdefault("rope_theta", rope.get("rope_theta", sub.get("rope_theta")))
    (folder / "config.json").write_text(json.dumps(saved, indent=2))
    (folder / "generation_config.json").write_text(
        json.dumps(
            dict(
                do_sample=True,
                top_k=50,
                top_p=1.0,
                temperature=0.9,
                repetition_penalty=1.05,
                subtalker_dosample=True,
                subtalker_top_k=50,
                subtalker_top_p=1.0,
                subtalker_temperature=0.9,
                max_new_tokens=8,
            )
        )
    )

    speech = folder / "speech_tokenizer"
    if full:
        encoder = dict(
            sampling_rate=24000,
            hidden_size=512,
            num_filters=64,
            num_residual_layers=1,
            upsampling_ratios=[8, 6, 5, 4],
            codebook_size=2048,
            codebook_dim=256,
            num_quantizers=32,
            vector_quantization_hidden_dimension=256,
            num_semantic_quantizers=1,
            upsample_groups=512,
            num_hidden_layers=8,
            intermediate_size=2048,
            num_attention_heads=8,
            num_key_value_heads=8,
            head_dim=64,
            sliding_window=250,
            max_position_embeddings=8000,
        )
        decoder = dict(
            codebook_size=2048,
            codebook_dim=512,
            hidden_size=512,
            latent_dim=1024,
            num_attention_heads=16,
            num_key_value_heads=16,
            head_dim=64,
            intermediate_size=1024,
            num_hidden_layers=8,
            num_quantizers=16,
            upsample_rates=[8, 5, 4, 3],
            upsampling_ratios=[2, 2],
            decoder_dim=1536,
            sliding_window=72,
            max_position_embeddings=8000,
        )
    else:
        encoder = dict(
            sampling_rate=24000,
            hidden_size=16,
            num_filters=2,
            num_residual_layers=1,
            upsampling_ratios=[8, 6, 5, 4],
            codebook_size=2048,
            codebook_dim=8,
            num_quantizers=16,
            vector_quantization_hidden_dimension=8,
            num_semantic_quantizers=1,
            upsample_groups=16,
            num_hidden_layers=1,
            intermediate_size=32,
            num_attention_heads=2,
            num_key_value_heads=2,
            head_dim=8,
            sliding_window=250,
            max_position_embeddings=8000,
        )
        decoder = dict(
            codebook_size=2048,
            codebook_dim=8,
            hidden_size=16,
            latent_dim=16,
            num_attention_heads=2,
            num_key_value_heads=2,
            head_dim=8,
            intermediate_size=32,
            num_hidden_layers=1,
            num_quantizers=16,
            upsample_rates=[8, 5, 4, 3],
            upsampling_ratios=[2, 2],
            decoder_dim=32,
            sliding_window=72,
            max_position_embeddings=8000,
        )
    speech_config = Qwen3TTSTokenizerV2Config(
        encoder_config=encoder,
        decoder_config=decoder,
        encoder_valid_num_quantizers=16,
        input_sample_rate=24000,
        output_sample_rate=24000,
        decode_upsample_rate=1920,
        encode_downsample_rate=1920,
    )
    with _RopeTheta():
        codec = Qwen3TTSTokenizerV2Model(speech_config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # codebooks start at zero: give them content
        for name, tensor in list(codec.named_parameters()) + list(codec.named_buffers()):
            if name.endswith(("embedding_sum", "embed_sum")):
                tensor.copy_(torch.randn(tensor.shape, generator=generator))
    speech.mkdir(exist_ok=True)
    _save_hf(codec, speech)
    EncodecFeatureExtractor(
        feature_size=1, sampling_rate=24000, padding_value=0.0, return_attention_mask=True
    ).save_pretrained(speech)
    return folder


# -- OmniVoice -----------------------------------------------------------------------------------------------------
OMNIVOICE_SPECIALS = [
    "<|endoftext|>",
    "<|denoise|>",
    "<|lang_start|>",
    "<|lang_end|>",
    "<|instruct_start|>",
    "<|instruct_end|>",
    "<|text_start|>",
    "<|text_end|>",
]
OMNIVOICE_CORPUS = [
    *QWEN_CORPUS,
    "None en zh it ru de fr nl",
    "洗衣机洗好了。晚饭准备好了。",
    "La lavatrice ha finito. La cena è pronta.",
    "Стиральная машина закончила.",
    "Please take the laundry out before it starts to smell.",
    "The dryer is free now as well.",
]


def build_omnivoice(folder: Path, seed: int = 0, full: bool = False) -> Path:
    """A random OmniVoice checkpoint in ``folder`` laid out as the released one (``audio_tokenizer/`` inside).

    The package's own config classes: OmniVoiceConfig over a Qwen3 backbone, and the Higgs audio v2 tokenizer
    (DAC acoustic branch at 960-sample hops = 25 frames/s, HuBERT semantic branch, 8 codebooks of 1024). ``full``:
    the released sizes (28-layer Qwen3 of width 1024 with 151,676 text rows; HuBERT-base; DAC decoder width 1024)
    for benchmarks; otherwise every width is a few dozen. The text tokenizer is a small byte-level BPE either way.
    """
    import torch
    from omnivoice.models.omnivoice import OmniVoice, OmniVoiceConfig
    from transformers import DacFeatureExtractor, HiggsAudioV2TokenizerConfig, HiggsAudioV2TokenizerModel

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = qwen_bpe_tokenizer(OMNIVOICE_CORPUS, OMNIVOICE_SPECIALS, 600)
    tokenizer.save_pretrained(folder)

    if full:
        llm = dict(
            vocab_size=151676, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
            num_attention_heads=16, num_key_value_heads=8, head_dim=128,
        )  # fmt: skip
        acoustic = dict(encoder_hidden_size=64, decoder_hidden_size=1024, hidden_size=256)
        semantic: dict = {}
    else:
        llm = dict(
            vocab_size=max(len(tokenizer), 1100),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=16,
        )  # fmt: skip  (audio ids, up to 1024, pass through the text table too: 1100 rows at least)
        acoustic = dict(encoder_hidden_size=4, decoder_hidden_size=64, hidden_size=16)  # 64 halves 5 times
        semantic = dict(
            hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
            conv_dim=[8] * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        )  # fmt: skip
    config = OmniVoiceConfig(
        llm_config=dict(
            model_type="qwen3", max_position_embeddings=8192, rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 1_000_000}, **llm,
        ),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    )  # fmt: skip
    model = OmniVoice(config)
    model.save_pretrained(folder)

    codec_folder = folder / "audio_tokenizer"
    codec_config = HiggsAudioV2TokenizerConfig(
        target_bandwidths=[0.5, 1, 1.5, 2],
        acoustic_model_config=dict(
            model_type="dac", downsampling_ratios=[8, 5, 4, 2, 3], upsampling_ratios=[8, 5, 4, 2, 3], **acoustic
        ),
        semantic_model_config=dict(model_type="hubert", **semantic),
    )
    HiggsAudioV2TokenizerModel(codec_config).save_pretrained(codec_folder)
    DacFeatureExtractor(sampling_rate=24000, hop_length=960).save_pretrained(codec_folder)
    return folder
