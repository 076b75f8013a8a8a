"""Stand-in "family" voices for benchmarks: festival and espeak-ng read a fixed script (cached on disk).

Sentences 0-19 are the enrollment script, 20-29 are held out for evaluation.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voiceclone_core import audio

SENTENCES = [
    "The washing machine has finished and the clothes are ready to hang up.",
    "Please close the garage door before you go to bed tonight.",
    "Grandma is coming for lunch on Sunday, so we need to buy fresh bread.",
    "The heating will switch on at six in the morning.",
    "Somebody left the back door open and the cat walked out into the garden.",
    "Remember to water the tomatoes on the balcony when it gets hot.",
    "The dishwasher is empty, so you can put the dirty plates inside.",
    "Your train leaves in twenty minutes from platform three.",
    "It is going to rain this afternoon, take an umbrella with you.",
    "The living room lights will turn off when the movie ends.",
    "Dinner is almost ready, please come downstairs and set the table.",
    "The battery of the smoke detector in the hallway is running low.",
    "Tomorrow we are driving to the lake to see the fireworks.",
    "A parcel was delivered and is waiting next to the front door.",
    "The freezer door has been open for more than five minutes.",
    "Good night everyone, sleep well and see you at breakfast.",
    "The children should finish their homework before playing video games.",
    "Someone is ringing the doorbell, could you please check who it is.",
    "The robot vacuum got stuck under the sofa again.",
    "Turn down the music a little, the baby is sleeping upstairs.",
    "The bathroom window is still open and it is getting cold inside.",
    "Please feed the fish and clean the water bowl for the dog.",
    "The oven has reached the right temperature, you can put the cake in.",
    "Your friend called and said she will be a little late tonight.",
    "The porch light will stay on until everyone is back home.",
    "We are out of milk, eggs and butter, add them to the shopping list.",
    "The air in the bedroom is dry, maybe switch on the humidifier.",
    "Do not forget the dentist appointment on Thursday morning.",
    "The car needs fuel before the long drive to the mountains.",
    "Happy birthday, we made your favourite chocolate cake.",
]
# Read only by the base and cloned voices, to measure word error over more words (about 330 in all).
WER_ONLY = [
    "The kettle has boiled, would you like a cup of tea.",
    "Your sister sent a message asking about the weekend.",
    "Please bring the bicycles inside before the storm arrives.",
    "The pharmacy closes at eight, so leave a little early.",
    "There is a leak under the kitchen sink again.",
    "The garden sprinklers will run for fifteen minutes.",
    "The school bus is five minutes away from the corner.",
    "Lock the windows upstairs, the wind is getting stronger.",
    "The bread in the oven needs another ten minutes.",
    "Someone left the refrigerator door open in the garage.",
    "The new light bulbs are in the drawer next to the stove.",
    "Your meeting with the plumber is tomorrow at noon.",
    "The baby monitor battery is almost empty.",
    "Dinner tonight is pasta with tomato sauce and salad.",
    "The mailman brought three letters and a small box.",
    "Please take the recycling bins to the street tonight.",
    "The temperature outside has dropped below freezing.",
    "The laundry basket in the bedroom is full.",
    "Grandpa called to say he arrived home safely.",
    "The front gate did not close properly this evening.",
]
ENROLL = range(0, 20)
HELD_OUT = range(20, 30)


@dataclass(frozen=True)
class Speaker:
    name: str
    kind: str  # festival | espeak
    voice: str


SPEAKERS = {
    "kal": Speaker("kal", "festival", "kal_diphone"),
    "ked": Speaker("ked", "festival", "ked_diphone"),
    "slt": Speaker("slt", "festival", "cmu_us_slt_arctic_hts"),
    "espeak_f": Speaker("espeak_f", "espeak", "en-us+f3"),
}


def _render(speaker: Speaker, sentence: str, out: Path) -> None:
    if speaker.kind == "festival":
        if shutil.which("text2wave") is None:
            raise RuntimeError("festival is not installed (apt-get install festival festvox-kallpc16k ...)")
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write(sentence)
        subprocess.run(
            ["text2wave", "-eval", f"(voice_{speaker.voice})", f.name, "-o", str(out)],
            check=True,
            capture_output=True,
        )
        Path(f.name).unlink()
    else:
        if shutil.which("espeak-ng") is None:
            raise RuntimeError("espeak-ng is not installed")
        subprocess.run(
            ["espeak-ng", "-v", speaker.voice, "-s", "150", "-w", str(out), sentence],
            check=True,
            capture_output=True,
        )


def utterance(speaker: str, index: int, cache_dir: Path) -> tuple[np.ndarray, int]:
    """Sentence ``index`` read by ``speaker`` (rendered once, then cached)."""
    spk = SPEAKERS[speaker]
    path = cache_dir / spk.name / f"{index:02d}.wav"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.wav")
        _render(spk, SENTENCES[index], tmp)
        tmp.replace(path)
    return audio.decode(path)


def enrollment_recording(
    speaker: str, cache_dir: Path, count: int = 20, pause_s: float = 0.4
) -> tuple[np.ndarray, int, str]:
    """The first ``count`` enrollment sentences as one recording with pauses, plus its transcript."""
    parts, rate = [], None
    for i in list(ENROLL)[:count]:
        x, sr = utterance(speaker, i, cache_dir)
        rate = rate or sr
        if sr != rate:
            x = audio.resample(x, sr, rate)
        parts += [x, np.zeros(int(pause_s * rate), np.float32)]
    transcript = " ".join(SENTENCES[i] for i in list(ENROLL)[:count])
    return np.concatenate(parts), int(rate), transcript
