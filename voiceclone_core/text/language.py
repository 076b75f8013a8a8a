"""Language tags, and which language a piece of text is written in.

:func:`language_family` reduces a tag to its family (``en_US`` -> ``en``). :func:`identify` tells, among the
languages an engine can speak, which one a text is in: first by script (Latin, Cyrillic, Han, kana, Hangul, …), then,
where several languages share the script, by frequent function words and letters particular to one language. It
answers "don't know" rather than guess when the text gives no evidence (digits only, a name, a tie).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_ALIASES = {"eng": "en", "english": "en", "cmn": "zh", "zho": "zh", "chi": "zh", "chinese": "zh"}


def language_family(language: str | None) -> str:
    """'en_US', 'en-GB', 'EN' -> 'en'; 'zh-CN', 'zh_Hans' -> 'zh'; None/'' -> 'en'."""
    family = re.split(r"[-_.@\s]", (language or "").strip().lower(), maxsplit=1)[0]
    return _ALIASES.get(family, family) or "en"


# ----------------------------------------------------------------------------------------- scripts

# (first, last code point, script); anything alphabetic outside these ranges is "other".
_RANGES = (
    (0x0041, 0x024F, "latin"),
    (0x0370, 0x03FF, "greek"),
    (0x0400, 0x052F, "cyrillic"),
    (0x0590, 0x05FF, "hebrew"),
    (0x0600, 0x06FF, "arabic"),
    (0x0750, 0x077F, "arabic"),
    (0x0900, 0x097F, "devanagari"),
    (0x0E00, 0x0E7F, "thai"),
    (0x1100, 0x11FF, "hangul"),
    (0x1E00, 0x1EFF, "latin"),
    (0x1F00, 0x1FFF, "greek"),
    (0x3040, 0x30FF, "kana"),
    (0x3130, 0x318F, "hangul"),
    (0x31F0, 0x31FF, "kana"),
    (0x3400, 0x4DBF, "han"),
    (0x4E00, 0x9FFF, "han"),
    (0xAC00, 0xD7AF, "hangul"),
    (0xF900, 0xFAFF, "han"),
    (0xFB50, 0xFDFF, "arabic"),
    (0xFE70, 0xFEFF, "arabic"),
    (0xFF21, 0xFF5A, "latin"),
    (0xFF66, 0xFF9F, "kana"),
    (0x20000, 0x3134F, "han"),
)
# The script each language is written in (the rest of the world's languages here: Latin).
_LANGUAGE_SCRIPT = {
    "zh": "han",
    "yue": "han",
    "wuu": "han",
    "ja": "japanese",
    "ko": "hangul",
    "el": "greek",
    "he": "hebrew",
    "yi": "hebrew",
    "ar": "arabic",
    "fa": "arabic",
    "ur": "arabic",
    "ps": "arabic",
    "hi": "devanagari",
    "mr": "devanagari",
    "ne": "devanagari",
    "th": "thai",
    **dict.fromkeys(("ru", "uk", "be", "bg", "sr", "mk", "kk", "ky", "mn", "tg"), "cyrillic"),
}
# Which language a script most likely means when nothing else tells (used to name what cannot be spoken).
_SCRIPT_DEFAULT = {
    "han": "zh",
    "japanese": "ja",
    "hangul": "ko",
    "greek": "el",
    "hebrew": "he",
    "arabic": "ar",
    "devanagari": "hi",
    "thai": "th",
    "cyrillic": "ru",
}
_KANA_SHARE = 0.1  # Han text with at least this share of kana is Japanese


def is_cjk(ch: str) -> bool:
    """True for Chinese, Japanese and Korean characters and full-width forms."""
    return (
        "\u2e80" <= ch <= "\u9fff"
        or "\uac00" <= ch <= "\ud7af"
        or "\uf900" <= ch <= "\ufaff"
        or "\uff00" <= ch <= "\uffef"
        or "\U00020000" <= ch <= "\U0003134f"
    )


def _char_script(ch: str) -> str | None:
    if not ch.isalpha():
        return None
    code = ord(ch)
    for first, last, script in _RANGES:
        if first <= code <= last:
            return script
    return "other"


def text_script(text: str) -> str | None:
    """The script most letters of ``text`` are written in (Han with enough kana counts as ``japanese``).

    None when the text has no letters.
    """
    counts: dict[str, int] = {}
    for ch in text:
        script = _char_script(ch)
        if script is not None:
            counts[script] = counts.get(script, 0) + 1
    kana = counts.pop("kana", 0)
    han = counts.get("han", 0)
    if kana and kana >= _KANA_SHARE * (kana + han):
        counts["japanese"] = counts.pop("han", 0) + kana
    elif kana:
        counts["han"] = han + kana
    if not counts:
        return None
    return max(counts, key=lambda s: counts[s])


def language_script(language: str) -> str:
    """The script a language family is written in (``latin`` unless known otherwise)."""
    return _LANGUAGE_SCRIPT.get(language_family(language), "latin")


def _fits(language: str, script: str) -> bool:
    own = language_script(language)
    return own == script or (script == "han" and own == "japanese")  # kanji-only text can be Japanese


# ----------------------------------------------------------------------------------------- words and letters

_WORDS: dict[str, frozenset[str]] = {
    lang: frozenset(words.split())
    for lang, words in {
        "en": "the and is are was were to of you your that this with for have has be not please what my will "
        "it's don't i'm there here from they we he she his her would could should been done which when",
        "de": "der die das und ist nicht ein eine ich du sie es mit auf für den dem zu bitte nein wir sind hat auch "
        "noch ist's wird haben kein keine sehr gut jetzt",
        "fr": "le la les et est un une des du je tu il elle nous vous ne pas que qui pour avec dans sur c'est ce au "
        "sont bonjour merci oui très être avoir",
        "es": "el la los las y es un una que en no por para con está son hola gracias sí muy del al lo se su "
        "estoy tengo hay pero cómo",
        "it": "il lo la gli le e è un una di che non per con sono ciao grazie del della nel ho ha anche più questo "
        "sei siamo molto bene cena pronta",
        "pt": "o os a as e é um uma de que não por para com está são olá obrigado obrigada do da no na em você "
        "sim muito bem",
        "nl": "de het een en is niet ik je jij wij zijn van met op voor dat die dit er maar ook nog hallo dank "
        "wordt heeft geen",
        "ca": "el la els les i és un una de que no per amb està són hola gràcies molt del al",
        "pl": "i w nie na jest to że się z do jak ale czy tak dzień dobry dziękuję proszę",
        "cs": "a je v na se že to s do jak ale jsem není dobrý den děkuji prosím",
        "sv": "och är det att en ett jag du inte på med för som har vi hej tack",
        "da": "og er det at en et jeg du ikke på med for som har vi hej tak",
        "nb": "og er det at en et jeg du ikke på med for som har vi hei takk",
        "fi": "ja on ei se että hän minä sinä me te he kiitos hei",
        "tr": "ve bir bu da de için ile ne çok var yok merhaba teşekkürler",
        "ro": "și este un o de la în nu cu pe că sunt bună mulțumesc",
        "hu": "a az és egy nem hogy van is meg de szia köszönöm",
        "id": "dan yang di ini itu dengan untuk tidak ada saya anda terima kasih",
        "vi": "và là của có không một những được cho này xin chào cảm ơn",
        "ru": "и в не на я что он она мы вы они это как но да нет привет спасибо пожалуйста",
        "uk": "і в не на я що він вона ми ви вони це як але так ні привіт дякую будь ласка",
        "bg": "и в не на аз че той тя ние вие те това как но да здравей благодаря",
    }.items()
}
# Letters that point to one language among those sharing its script.
_LETTERS = {
    "de": "ßäöü",
    "es": "ñ¿¡",
    "fr": "çœêûëî",
    "it": "òì",
    "pt": "ãõ",
    "pl": "ąęłńśźż",
    "cs": "ěřů",
    "sv": "åä",
    "da": "æøå",
    "nb": "æøå",
    "fi": "äö",
    "tr": "ğış",
    "ro": "ășțâ",
    "hu": "őű",
    "vi": "ơưđạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ",
    "ru": "ыэё",
    "uk": "іїєґ",
    "bg": "ъ",
}
_LETTER_WEIGHT = 0.5
_TOKEN = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")


def _scores(text: str, languages: Iterable[str]) -> dict[str, float]:
    lower = text.lower()
    tokens = [t.replace("’", "'") for t in _TOKEN.findall(lower)]
    scores: dict[str, float] = {}
    for lang in languages:
        fam = language_family(lang)
        words = _WORDS.get(fam, frozenset())
        letters = _LETTERS.get(fam, "")
        scores[lang] = sum(t in words for t in tokens) + _LETTER_WEIGHT * sum(lower.count(c) for c in letters)
    return scores


def _best(scores: dict[str, float]) -> str | None:
    ranked = sorted(scores.values(), reverse=True)
    if not ranked or ranked[0] <= 0 or (len(ranked) > 1 and ranked[0] == ranked[1]):
        return None
    return max(scores, key=lambda k: scores[k])


# ----------------------------------------------------------------------------------------- identification


@dataclass(frozen=True)
class Identification:
    """What a text says about its language, among some candidate languages.

    ``language``: the candidate it is written in, or None when the text does not tell. ``fits``: the candidates
    whose script matches the text (all of them when the text has no letters). ``foreign``: when no candidate can
    write the text, the language it most likely is (None otherwise).
    """

    language: str | None
    fits: tuple[str, ...]
    foreign: str | None = None
    likely: str | None = None  # when ``language`` is None: the candidate its script most often means, if any


def identify(text: str, candidates: Sequence[str]) -> Identification:
    """Which of ``candidates`` (language families) ``text`` is written in."""
    script = text_script(text)
    if script is None:
        return Identification(None, tuple(candidates))
    fits = tuple(c for c in candidates if _fits(c, script))
    if not fits:
        return Identification(None, (), guess_language(text, script))
    if len(fits) == 1:
        return Identification(fits[0], fits)
    best = _best(_scores(text, fits))
    if best is None:  # Han text with Chinese and Japanese both possible: the script's own language
        native = [c for c in fits if language_script(c) == script]
        best = native[0] if len(native) == 1 else None
    default = _SCRIPT_DEFAULT.get(script)
    return Identification(best, fits, likely=default if best is None and default in fits else None)


def guess_language(text: str, script: str | None = None) -> str | None:
    """The most likely language of ``text`` among every language known here (None without evidence)."""
    script = script or text_script(text)
    if script is None:
        return None
    known = [lang for lang in {*_WORDS, *_LETTERS} if _fits(lang, script)]
    return _best(_scores(text, known)) or _SCRIPT_DEFAULT.get(script)
