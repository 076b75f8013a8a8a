"""Texts the house reads: the passage a family member reads aloud at enrollment, and the preview sentence.

The embedded engine's base voice reads the same passage to learn its own statistics, so the two stay one text.
"""

from __future__ import annotations

from voiceclone_core.text.language import language_family

READING = {
    "en": (
        "The kitchen lights are on, and the washing machine has finished its cycle. Please remember to take the "
        "laundry out before dinner. Tomorrow morning it will be cold and windy, so wear a warm coat when you walk "
        "the dog. The front door is locked and the garage is closed. Your package arrived this afternoon and is "
        "waiting on the porch. Good night, sleep well, and see you at breakfast."
    ),
    "zh": "厨房的灯开着，洗衣机已经洗完了。晚饭前请记得把衣服拿出来晾干。明天早上又冷又有风，遛狗的时候要穿暖和一点。"
    "前门已经锁好了，车库也关上了。你的包裹今天下午到了，放在门廊上。晚安，明天早餐见。",
}
PREVIEW = {
    "en": "Hello! This is how I sound now. The washing machine is done.",
    "zh": "你好！这是我现在的声音。洗衣机洗好了。",
}


def reading_passage(language: str | None) -> tuple[str, str]:
    """The passage to read aloud in ``language`` (English where there is none): (language, text)."""
    family = language_family(language)
    return (family, READING[family]) if family in READING else ("en", READING["en"])


def preview_sentence(language: str | None) -> str:
    """A short sentence that shows off a voice in ``language`` (English where there is none)."""
    return PREVIEW.get(language_family(language), PREVIEW["en"])
