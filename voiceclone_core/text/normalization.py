"""Per-language normalisation: what TTS engines stumble on (numbers, times, dates, currency, units, symbols) as words.

Normalisation is table-driven: each language family has an ordered list of ``(regex, replacement)`` rules applied one
pass each. English and Chinese are built in; other families get only generic cleanup unless a normaliser is
registered with :func:`register_normalizer`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from voiceclone_core.text.chinese import normalize_chinese
from voiceclone_core.text.english import normalize_english
from voiceclone_core.text.language import language_family

Normalizer = Callable[[str], str]

_TRANSLATE = str.maketrans(
    {
        **{chr(0xFF10 + i): str(i) for i in range(10)},
        **{chr(0xFF21 + i): chr(0x41 + i) for i in range(26)},
        **{chr(0xFF41 + i): chr(0x61 + i) for i in range(26)},
        "％": "%",
        "−": "-",
        "℃": "°C",
        "℉": "°F",
        "\u200b": None,
        "\u200c": None,
        "\u200d": None,
        "\u2060": None,
        "\ufeff": None,
        "\u00ad": None,
    }
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DIGIT_COLON = re.compile(r"(?<=\d)：(?=\d)")
_DIGIT_DOT = re.compile(r"(?<=\d)．(?=\d)")
_SPACES = re.compile(r"\s+")


def _cleanup(text: str) -> str:
    text = _CONTROL.sub(" ", text.translate(_TRANSLATE))
    return _DIGIT_DOT.sub(".", _DIGIT_COLON.sub(":", text))


# ----------------------------------------------------------------------------------------- registry

_NORMALIZERS: dict[str, Normalizer] = {"en": normalize_english, "zh": normalize_chinese}


def register_normalizer(language: str, fn: Normalizer) -> None:
    """Per-language hook: fn replaces/extends normalisation for that language family.

    ``fn`` replaces the built-in rules of ``language_family(language)``; it receives text after the
    generic cleanup, and whitespace is collapsed after it runs.  It may delegate to another family's
    rules with ``normalize(text, other)`` to extend rather than replace.
    """
    if not callable(fn):
        raise TypeError("normalizer must be callable")
    _NORMALIZERS[language_family(language)] = fn


def normalize(text: str, language: str | None = "en") -> str:
    """Expand what TTS engines stumble on (numbers, times, dates, currency, units, symbols) for ``language``.

    Unknown languages: only whitespace/symbol cleanup, digits left as-is.  If language is not 'zh' but the
    text is mostly CJK, the given language is still used (the caller decides).
    """
    text = _cleanup(text)
    fn = _NORMALIZERS.get(language_family(language))
    if fn is not None:
        text = fn(text)
    return _SPACES.sub(" ", text).strip()
