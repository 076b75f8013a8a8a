"""The omnivoice engine on a tiny random OmniVoice (the package's own config classes): its CPU graph built by the
real export code, both backends loaded through the registry, the ONNX and torch paths compared token for token."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import numpy as np
import pytest

from voiceclone_core.engines.torchaudio_compat import ensure_torchaudio

ensure_torchaudio()  # before omnivoice is imported, as the engine does
pytest.importorskip("omnivoice", reason="the omnivoice package is installed by scripts/setup.sh")

import torch  # noqa: E402

from tests.procs import CLI, QUIET_ENV  # noqa: E402
from tests.tiny_models import build_omnivoice  # noqa: E402
from voiceclone_core.config import SpeechSettings, load_settings  # noqa: E402
from voiceclone_core.engines import omnivoice, registry  # noqa: E402
from voiceclone_core.engines.base import EnrollmentSample, SynthesisOptions, VoicePrompt  # noqa: E402
from voiceclone_core.engines.registry import choose_engine, create_engine, engine_context  # noqa: E402
from voiceclone_core.service import exports  # noqa: E402
from voiceclone_core.service.languages import LanguageChooser  # noqa: E402
from voiceclone_core.service.planner import TextPlanner  # noqa: E402

SR = 16000
PASSAGE = "The quick brown fox jumps over the lazy dog. Dinner is ready, please come downstairs. Good morning to you."


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    build_omnivoice(folder / "omnivoice")
    return folder


def settings(models_dir: Path, **omni: object):
    overrides = {"data_dir": str(models_dir.parent / "data"), "models_dir": str(models_dir), "engine.name": "omnivoice"}
    overrides.update({f"omnivoice.{k}": v for k, v in omni.items()})
    return load_settings(env={}, overrides=overrides)


def voice(seconds: float = 12.0, seed: int = 1) -> np.ndarray:
    """Noise shaped like speech: bursts with pauses, so the package's silence removal keeps most of it."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.1, int(seconds * SR)).astype(np.float32)
    envelope = (np.sin(np.arange(len(x)) / SR * 2 * np.pi * 1.5) > -0.6).astype(np.float32)
    return x * envelope


@pytest.fixture(scope="module")
def graphs(models_dir: Path) -> dict[str, Path]:
    """The int4 graph as the CLI builds it, and the float one for the token-for-token comparison."""
    s = settings(models_dir)
    assert "not built yet" in (omnivoice.probe(s.omnivoice, engine_context(s)) or "")
    int4 = exports.export_model(s, "omnivoice")
    assert int4 is not None and exports.export_model(s, "omnivoice") is None  # up to date: nothing to do
    fp32 = exports.export_model(settings(models_dir, onnx_bits=32), "omnivoice")
    assert fp32 is not None
    return {"int4": int4, "fp32": fp32}


def op_count(folder: Path, op: str) -> int:
    import onnx

    graph = onnx.load(str(folder / "lm.onnx"), load_external_data=False).graph
    return sum(node.op_type == op for node in graph.node)


def capture_tokens(engine) -> list[torch.Tensor]:
    """Record what the package's decode loop returns (the engine's real path runs unchanged)."""
    seen: list[torch.Tensor] = []
    original = engine.model._generate_iterative

    def spy(task, config):
        result = original(task, config)
        seen.extend(t.clone() for t in result)
        return result

    engine.model._generate_iterative = spy
    return seen


def test_onnx_and_torch_paths_give_the_same_tokens(models_dir: Path, graphs: dict[str, Path]) -> None:
    onnx_engine = create_engine(settings(models_dir, onnx_bits=32, steps=8))
    torch_engine = create_engine(settings(models_dir, backend="torch", steps=8))
    assert (onnx_engine.backend, torch_engine.backend) == ("onnx", "torch")
    assert isinstance(onnx_engine.model.llm, torch.nn.Identity)  # the graph replaced the torch backbone
    prompt = onnx_engine.prepare(EnrollmentSample(voice(), SR, "en", PASSAGE))
    tokens = []
    for engine in (onnx_engine, torch_engine):
        seen = capture_tokens(engine)
        torch.manual_seed(7)
        (audio,) = engine.synthesize("The washing machine is done.", prompt, SynthesisOptions(language="en"))
        assert audio.dtype == np.float32 and len(audio) > 0.5 * engine.sample_rate
        tokens.append(seen[0])
    assert tokens[0].shape == tokens[1].shape and tokens[0].shape[0] == 8
    assert torch.equal(tokens[0], tokens[1])
    torch.manual_seed(8)
    seen = capture_tokens(torch_engine)
    list(torch_engine.synthesize("The washing machine is done.", prompt, SynthesisOptions(language="en")))
    assert not torch.equal(seen[0], tokens[1])  # another seed, other tokens: the comparison above can fail


def test_int4_graph_runs_through_the_registry(models_dir: Path, graphs: dict[str, Path]) -> None:
    s = settings(models_dir, steps=6)
    assert omnivoice.probe(s.omnivoice, engine_context(s)) is None
    engine = create_engine(s)
    assert engine.name == "omnivoice" and "onnx-int4" in engine.version and "steps6" in engine.version
    assert op_count(graphs["int4"], "MatMulNBits") >= 7 * 2 + 1  # every projection of both layers, and the heads
    assert op_count(graphs["fp32"], "MatMulNBits") == 0
    prompt = VoicePrompt.from_bytes(engine.prepare(EnrollmentSample(voice(), SR, "it", None)).to_bytes())
    assert prompt.meta["transcript"] is False and prompt.meta["ref_text"] == ""
    (audio,) = engine.synthesize("La cena è pronta.", prompt, SynthesisOptions(language="it"))
    assert np.isfinite(audio).all() and len(audio) > 0.3 * engine.sample_rate


def test_auto_takes_omnivoice_when_its_files_are_there(models_dir: Path, graphs: dict[str, Path]) -> None:
    s = load_settings(env={}, overrides={"data_dir": str(models_dir.parent / "d2"), "models_dir": str(models_dir)})
    name, skipped = choose_engine(s)
    assert name == "omnivoice" and [x.split(":")[0] for x in skipped] == ["qwen3", "pocket"]
    specs = registry._ENGINES  # on a CPU after pocket (far slower), on a GPU before it, after qwen3 everywhere
    assert specs["qwen3"].rank("cpu") < specs["pocket"].rank("cpu") < specs["omnivoice"].rank("cpu")
    assert specs["qwen3"].rank("cuda") < specs["omnivoice"].rank("cuda") < specs["pocket"].rank("cuda:0")


def test_a_stale_graph_is_refused(models_dir: Path, graphs: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "models"
    other.mkdir()
    (other / "omnivoice").symlink_to(models_dir / "omnivoice", target_is_directory=True)
    (other / "omnivoice-onnx-int4").symlink_to(graphs["int4"], target_is_directory=True)
    s = settings(other)
    assert omnivoice.probe(s.omnivoice, engine_context(s)) is None
    info = graphs["int4"] / "export.json"
    saved = info.read_text()
    try:
        info.write_text(saved.replace('"checkpoint": "', '"checkpoint": "0'))
        assert "another checkpoint" in (omnivoice.probe(s.omnivoice, engine_context(s)) or "")
    finally:
        info.write_text(saved)


def test_prompt_without_transcript_is_logged(models_dir: Path, graphs: dict[str, Path], caplog) -> None:
    engine = create_engine(settings(models_dir, steps=4, max_prompt_s=5.0))
    with caplog.at_level(logging.WARNING):
        prompt = engine.prepare(EnrollmentSample(voice(20.0), SR, "ru", None))
    assert "without a transcript" in caplog.text
    assert prompt.meta["prompt_seconds"] <= 5.0 + 0.1


def test_cut_prompt_keeps_whole_sentences() -> None:
    sr = 24000
    x = np.zeros(30 * sr, np.float32)
    x[: 29 * sr] = 0.1
    x[int(9.7 * sr) : int(9.95 * sr)] = 0.0  # a pause near where the first three sentences end (56/171 of 30 s)
    transcript = "One two three four. Five six seven eight. Nine ten eleven. " + "More words follow here. " * 5
    audio, text = omnivoice.cut_prompt(x, sr, transcript, 10.0)
    assert text == "One two three four. Five six seven eight. Nine ten eleven."
    assert 9.7 * sr < len(audio) <= 9.95 * sr and float(np.abs(audio[-sr // 100 :]).max()) == 0.0  # cut in the pause
    short, whole = omnivoice.cut_prompt(x[: 5 * sr], sr, "Short.", 10.0)
    assert whole == "Short." and len(short) == 5 * sr
    bare, empty = omnivoice.cut_prompt(x, sr, None, 10.0)
    assert empty == "" and len(bare) == 10 * sr


def test_languages_offered_and_accepted() -> None:
    known = omnivoice.language_ids()
    offered = omnivoice.advertised_languages(known)
    assert len(known) > 600 and offered[:2] == ("en", "zh")
    assert {"it", "ru", "nl", "yue", "ar", "ne"} <= set(offered) and len(offered) < 160
    assert all(len(code) == 2 or code == "yue" for code in offered)
    assert omnivoice.model_language("ar", known) == "arb" and omnivoice.model_language("en-US", known) == "en"
    assert omnivoice.model_language("yue", known) == "yue" and omnivoice.model_language("qq", known) is None
    # Among 130 languages, Cyrillic text without telling words is Russian (not the first Cyrillic code, "be"),
    # unless the voice's own language says otherwise.
    assert LanguageChooser(offered, voice_language="en").choose("Стиральная машина закончила.") == "ru"
    assert LanguageChooser(offered, voice_language="uk").choose("Стиральная машина закончила.") == "uk"
    assert LanguageChooser(offered).choose("洗衣机洗好了。") == "zh"
    chooser = LanguageChooser(offered, also=known, requested="arb")  # any code OmniVoice knows, asked for
    assert chooser.choose("مرحبا") == "arb"
    with pytest.raises(Exception, match=r"tlh"):
        LanguageChooser(offered, also=known, requested="tlh")


def test_planner_packs_sentences_after_the_first() -> None:
    text = "The washing machine is done. Please take the laundry out soon. The dryer is free now as well."
    limits = SpeechSettings()
    plain = TextPlanner(limits, LanguageChooser(("en",)), 1.0).whole(text)
    packed_planner = TextPlanner(limits, LanguageChooser(("en",)), 1.0, pack=True)
    packed = packed_planner.whole(text)
    assert [c.text for c in plain] == [
        "The washing machine is done.",
        "Please take the laundry out soon.",
        "The dryer is free now as well.",
    ]
    assert [c.text for c in packed] == [plain[0].text, plain[1].text + " " + plain[2].text]
    assert packed_planner.chunks == 2
    chinese = TextPlanner(limits, LanguageChooser(("zh", "en")), 1.0, pack=True).whole(
        "洗衣机洗好了。请把衣服拿出来。烘干机也空了。"
    )
    assert [c.text for c in chinese] == ["洗衣机洗好了。", "请把衣服拿出来。烘干机也空了。"]


def test_cli_lists_and_exports(models_dir: Path, graphs: dict[str, Path]) -> None:
    env = {**QUIET_ENV, "VOICECLONE_MODELS_DIR": str(models_dir), "VOICECLONE_DATA_DIR": str(models_dir.parent / "cli")}
    listed = subprocess.run([*CLI, "models", "list"], capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0 and "omnivoice" in listed.stdout and "646 languages" in listed.stdout
    again = subprocess.run(
        [*CLI, "models", "export", "omnivoice"], capture_output=True, text=True, env=env, timeout=300
    )
    assert again.returncode == 0 and "already up to date" in again.stdout
    wrong = subprocess.run(
        [*CLI, "models", "export", "qwen3-tts-0.6b"], capture_output=True, text=True, env=env, timeout=120
    )
    assert wrong.returncode != 0 and "nothing to export" in wrong.stderr


def test_torchaudio_stand_in_resamples() -> None:
    import torchaudio

    from voiceclone_core.engines.torchaudio_compat import real_torchaudio

    if real_torchaudio():
        pytest.skip("a real torchaudio is installed here")
    t = np.arange(24000) / 24000
    wave = torch.from_numpy(np.sin(2 * np.pi * 440 * t).astype(np.float32))[None]
    out = torchaudio.functional.resample(wave, 24000, 16000)
    assert out.shape == (1, 16000) and out.dtype == torch.float32
    spectrum = np.abs(np.fft.rfft(out[0].numpy()))
    assert abs(int(np.argmax(spectrum)) - 440) <= 1
    with pytest.raises(RuntimeError, match="stand-in"):
        torchaudio.compliance.kaldi.fbank(wave)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_torch_bf16_on_cuda(models_dir: Path) -> None:
    s = settings(models_dir, steps=4)
    s.engine.device = "cuda"
    engine = create_engine(s)
    assert engine.backend == "torch" and next(engine.model.llm.parameters()).dtype == torch.bfloat16
    prompt = engine.prepare(EnrollmentSample(voice(), SR, "en", PASSAGE))
    (audio,) = engine.synthesize("The washing machine is done.", prompt, SynthesisOptions(language="zh"))
    assert np.isfinite(audio).all() and len(audio) > 0.3 * engine.sample_rate
