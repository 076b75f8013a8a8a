"""The embedded engine clones a voice from a recording in another language, without a transcript, and the clone
still says the words: speaker similarity by resemblyzer, intelligibility by pocketsphinx (the quality benchmark's
judges, from the ``quality`` extra that scripts/setup.sh installs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.quality import Judge, cosine, word_errors
from voiceclone_core import audio
from voiceclone_core.engines import conversion as cv
from voiceclone_core.engines.base import EnrollmentSample

from .conftest import espeak

ITALIAN = (
    "La lavatrice ha finito e i panni sono pronti da stendere. Per favore chiudi la porta del garage prima di "
    "andare a letto. La nonna viene a pranzo domenica, quindi dobbiamo comprare il pane fresco. Il riscaldamento "
    "si accende alle sei del mattino, e la cena è pronta alle otto."
)
ENGLISH = [
    "The washing machine is done.",
    "Dinner is ready in the kitchen.",
    "Please take the bins out tonight.",
    "The front door is still open.",
    "It will rain this afternoon, so take an umbrella.",
    "The heating is switched off.",
    "Your parcel was left with the neighbours.",
    "The living room lights will turn off at midnight.",
    "Remember to feed the cat before you leave.",
    "The car is charged and ready to go.",
    "Someone is at the front gate.",
    "The dishwasher needs more salt.",
    "School starts late tomorrow morning.",
    "The garden sprinklers will run for ten minutes.",
    "The washing is dry, you can bring it in.",
    "Grandma is coming for lunch on Sunday.",
    "The bathroom window is open.",
    "Turn the oven off in five minutes.",
    "The baby is asleep upstairs.",
    "There is a storm warning for tonight.",
    "The fridge door was left open.",
    "Your train leaves at half past seven.",
    "The battery in the smoke alarm is low.",
    "Breakfast is on the table.",
    "The post has just arrived.",
    "Please water the plants on the balcony.",
    "The music in the kitchen will stop now.",
    "It is time to go to bed.",
]


@pytest.fixture(scope="module")
def judge() -> Judge:
    pytest.importorskip("pocketsphinx")
    pytest.importorskip("resemblyzer")
    return Judge()


def test_an_italian_recording_without_transcript_gives_an_english_voice_that_is_hers_and_understood(
    classic_engine, judge: Judge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = classic_engine.bases["en"]
    monkeypatch.setattr(base, "noise_scale", 0.0)  # Piper without sampling: the same reading every run,
    monkeypatch.setattr(base, "noise_w", 0.0)
    monkeypatch.setattr(classic_engine, "_readings", {})  # the reading passage's too, not one kept from before

    sr = classic_engine.sample_rate
    wav = espeak(ITALIAN, tmp_path / "nonna.wav", voice="it+f3", speed=140)
    clean, csr, _ = audio.clean_for_enrollment(wav, target_sr=sr)
    prompt = classic_engine.prepare(EnrollmentSample(clean, csr, "it", None))
    assert prompt.meta["reference"] == "passage" and prompt.meta["base_voice"] == "en"

    her = judge.embed(clean, sr)
    errors = {"base": [0, 0], "clone": [0, 0]}
    similarity: dict[str, list[float]] = {"base": [], "clone": []}
    model = cv.ConversionModel.from_arrays(prompt.arrays)
    for sentence in ENGLISH:  # the clone converts the very audio the base voice made
        pieces = list(base.speak(sentence))
        outs = {
            "base": np.concatenate(pieces),
            "clone": np.concatenate([y for x in pieces for y in classic_engine._convert_streaming(x, model)]),
        }
        for kind, y in outs.items():
            similarity[kind].append(cosine(judge.embed(y, sr), her))
            e, n = word_errors(sentence, judge.transcribe(y, sr))
            errors[kind][0] += e
            errors[kind][1] += n
    base_sim, clone_sim = np.mean(similarity["base"]), np.mean(similarity["clone"])
    base_wer, clone_wer = (e / n for e, n in errors.values())

    assert clone_sim > base_sim + 0.1, (base_sim, clone_sim)  # sounds like her, not like the base voice
    assert clone_wer <= base_wer + 0.05, (base_wer, clone_wer)  # and still says the words (the goal)
