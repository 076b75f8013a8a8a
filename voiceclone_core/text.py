"""Text handling for TTS engines: per-language normalisation and speakable chunking.

Normalisation is table-driven: each language family has an ordered list of ``(regex, replacement)``
rules applied one pass each.  English and Chinese are built in; other families get only generic
cleanup unless a normaliser is registered with :func:`register_normalizer`.

English conventions (US): no "and" in cardinals ("one hundred five"); clock times are read in
12-hour form, so 24-hour values get "a m"/"p m" ("19:00" -> "seven p m", "00:15" -> "twelve fifteen
a m") and an hour without minutes and without am/pm gets "o'clock" ("7:00" -> "seven o'clock").
Integers with a leading zero or more than ten digits (phone numbers, codes) are read digit by digit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import partial

__all__ = [
    "Normalizer",
    "SentenceBuffer",
    "language_family",
    "normalize",
    "register_normalizer",
    "split_chunks",
]

Normalizer = Callable[[str], str]
_Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]

# ----------------------------------------------------------------------------------------- languages

_ALIASES = {"eng": "en", "english": "en", "cmn": "zh", "zho": "zh", "chi": "zh", "chinese": "zh"}


def language_family(language: str | None) -> str:
    """'en_US', 'en-GB', 'EN' -> 'en'; 'zh-CN', 'zh_Hans' -> 'zh'; None/'' -> 'en'."""
    family = re.split(r"[-_.@\s]", (language or "").strip().lower(), maxsplit=1)[0]
    return _ALIASES.get(family, family) or "en"


# ----------------------------------------------------------------------------------------- cleanup

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


def _apply(text: str, rules: list[_Rule], pad: bool) -> str:
    for pattern, fn in rules:
        text = pattern.sub(partial(_replace, fn, pad), text)
    return text


def _replace(fn: Callable[[re.Match[str]], str], pad: bool, m: re.Match[str]) -> str:
    out = fn(m)
    if pad and out != m.group(0):  # keep words apart from adjacent letters/digits: "FY2024" -> "FY twenty..."
        src = m.string
        if m.start() > 0 and src[m.start() - 1].isalnum() and out[:1].isalnum():
            out = " " + out
        if m.end() < len(src) and src[m.end()].isalnum() and out[-1:].isalnum():
            out += " "
    return out


# Shared number pieces: optional sign, integer with optional thousands separators, optional decimals.
_INT = r"(\d{1,3}(?:,\d{3})+(?!\d)|\d+)"
_MAX_CARDINAL_DIGITS = 10


def _num(sign_guard: str) -> str:
    return rf"(?:(?<![{sign_guard})\].])(-))?(?<!\d){_INT}(?:\.(\d+))?"


def _unit_alternation(units: dict[str, str]) -> str:
    return "|".join(re.escape(u) for u in sorted(units, key=len, reverse=True))


def _read_digits(int_s: str) -> bool:
    digits = int_s.replace(",", "")
    return (len(digits) > 1 and digits[0] == "0") or (len(digits) > _MAX_CARDINAL_DIGITS and "," not in int_s)


# ----------------------------------------------------------------------------------------- English

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ["", " thousand", " million", " billion", " trillion"]
_ORDINAL_IRREGULAR = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def _en_below_1000(n: int) -> str:
    hundreds, rest = divmod(n, 100)
    words = [f"{_ONES[hundreds]} hundred"] if hundreds else []
    if rest >= 20:
        words.append(_TENS[rest // 10] + (f"-{_ONES[rest % 10]}" if rest % 10 else ""))
    elif rest:
        words.append(_ONES[rest])
    return " ".join(words)


def _en_cardinal(n: int) -> str:
    if n < 0:
        return "minus " + _en_cardinal(-n)
    if n == 0:
        return "zero"
    if n >= 1000 ** len(_SCALES):
        return _en_digits(str(n))
    parts, scale = [], 0
    while n:
        n, rest = divmod(n, 1000)
        if rest:
            parts.insert(0, _en_below_1000(rest) + _SCALES[scale])
        scale += 1
    return " ".join(parts)


def _en_ordinal(n: int) -> str:
    words = _en_cardinal(n)
    cut = max(words.rfind(" "), words.rfind("-")) + 1
    head, last = words[:cut], words[cut:]
    if last in _ORDINAL_IRREGULAR:
        return head + _ORDINAL_IRREGULAR[last]
    return head + (last[:-1] + "ieth" if last.endswith("y") else last + "th")


def _en_year(y: int) -> str:
    hi, lo = divmod(y, 100)
    if 2000 <= y <= 2009:
        return _en_cardinal(y)
    if lo == 0:
        return f"{_en_cardinal(hi)} hundred"
    return f"{_en_cardinal(hi)} {'oh ' + _ONES[lo] if lo < 10 else _en_cardinal(lo)}"


def _en_digits(digits: str) -> str:
    return " ".join(_ONES[int(d)] for d in digits)


def _en_int(int_s: str) -> str:
    digits = int_s.replace(",", "")
    return _en_digits(digits) if _read_digits(int_s) else _en_cardinal(int(digits))


def _en_num(sign: str | None, int_s: str, frac: str | None = None) -> str:
    words = _en_int(int_s) + (f" point {_en_digits(frac)}" if frac else "")
    return "minus " + words if sign else words


def _is_one(int_s: str, frac: str | None) -> bool:
    return int_s == "1" and not frac


def _en_time(h: int, minute: int, sec: int | None, ampm: str | None) -> str | None:
    if h > 23 or (ampm and h == 0):
        return None
    suffix = f" {ampm.lower()} m" if ampm else ""
    if h == 0 or h > 12:
        suffix = suffix or (" a m" if h == 0 else " p m")
        h = h - 12 if h > 12 else 12
    if minute == 0:
        words = _ONES[h] + ("" if suffix else " o'clock")
    else:
        words = f"{_ONES[h]} {'oh ' + _ONES[minute] if minute < 10 else _en_cardinal(minute)}"
    words += suffix
    if sec:
        words += f" and {_en_cardinal(sec)} second{'s' if sec != 1 else ''}"
    return words


def _en_clock(m: re.Match[str]) -> str:
    sec = int(m[3]) if m[3] else None
    return _en_time(int(m[1]), int(m[2]), sec, m[4]) or m.group(0)


def _en_hour_ampm(m: re.Match[str]) -> str:
    h = int(m[1])
    return f"{_ONES[h]} {m[2].lower()} m" if 1 <= h <= 12 else m.group(0)


def _en_date(m: re.Match[str]) -> str:
    y, mo, d = int(m[1]), int(m[2]), int(m[3])
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return m.group(0)
    return f"{_MONTHS[mo - 1]} {_en_ordinal(d)}, {_en_year(y)}"


def _plural_last(words: str) -> str:
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


_EN_CURRENCY = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "¥": ("yen", "yen", "", ""),
}
_EN_CURRENCY_CODES = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "$": "$", "€": "€", "£": "£", "¥": "¥"}
_EN_SCALE_WORDS = {
    "k": "thousand",
    "K": "thousand",
    "m": "million",
    "M": "million",
    "bn": "billion",
    "B": "billion",
}


def _en_money(sign: str | None, sym: str, int_s: str, frac: str | None, scale: str | None = None) -> str:
    one, many, sub_one, sub_many = _EN_CURRENCY[sym]
    minus = "minus " if sign else ""
    if scale:
        return f"{minus}{_en_num(None, int_s, frac)} {_EN_SCALE_WORDS.get(scale, scale)} {many}"
    if frac and (len(frac) > 2 or not sub_one):
        return f"{minus}{_en_num(None, int_s, frac)} {many}"
    whole, cents = int(int_s.replace(",", "")), int(frac.ljust(2, "0")) if frac else 0
    parts = [f"{_en_int(int_s)} {one if whole == 1 else many}"] if whole or not cents else []
    if cents:
        parts.append(f"{_en_cardinal(cents)} {sub_one if cents == 1 else sub_many}")
    return minus + " ".join(parts)


_EN_UNITS = {
    "km/h": "kilometer{s} per hour",
    "kph": "kilometer{s} per hour",
    "mph": "mile{s} per hour",
    "m/s": "meter{s} per second",
    "kWh": "kilowatt hour{s}",
    "Wh": "watt hour{s}",
    "mAh": "milliamp hour{s}",
    "kW": "kilowatt{s}",
    "MW": "megawatt{s}",
    "W": "watt{s}",
    "V": "volt{s}",
    "Hz": "hertz",
    "kHz": "kilohertz",
    "MHz": "megahertz",
    "GHz": "gigahertz",
    "kg": "kilogram{s}",
    "g": "gram{s}",
    "mg": "milligram{s}",
    "lb": "pound{s}",
    "lbs": "pound{s}",
    "oz": "ounce{s}",
    "km": "kilometer{s}",
    "m": "meter{s}",
    "cm": "centimeter{s}",
    "mm": "millimeter{s}",
    "mi": "mile{s}",
    "ft": "foot|feet",
    "l": "liter{s}",
    "L": "liter{s}",
    "ml": "milliliter{s}",
    "mL": "milliliter{s}",
    "°C": "degree{s} Celsius",
    "°F": "degree{s} Fahrenheit",
    "°": "degree{s}",
    "ms": "millisecond{s}",
    "s": "second{s}",
    "sec": "second{s}",
    "min": "minute{s}",
    "h": "hour{s}",
    "hr": "hour{s}",
    "hrs": "hour{s}",
    "kB": "kilobyte{s}",
    "KB": "kilobyte{s}",
    "MB": "megabyte{s}",
    "GB": "gigabyte{s}",
    "TB": "terabyte{s}",
    "dB": "decibel{s}",
}


def _en_unit(m: re.Match[str]) -> str:
    name = _EN_UNITS[m[4]]
    one = _is_one(m[2], m[3])
    name = name.split("|")[0 if one else 1] if "|" in name else name.format(s="" if one else "s")
    return f"{_en_num(m[1], m[2], m[3])} {name}"


_EN_NUM = _num(r"\w")
_AMPM = r"\s?([AaPp])\.?\s?[Mm]\b(?:\.(?=\s+[a-z]|[,;:!?]))?"
_YEAR = r"(1[1-9]\d\d|20\d\d)"
_EN_RULES: list[_Rule] = [
    (re.compile(p), f)
    for p, f in [
        (r"(?<![\d-])(\d{4})-(\d{2})-(\d{2})(?![\d-])", _en_date),
        (
            rf"(?<![\d.,]){_YEAR}\s?[-–]\s?{_YEAR}(?!\d)",
            lambda m: f"{_en_year(int(m[1]))} to {_en_year(int(m[2]))}",
        ),
        (r"(?<![\d.,])(1[1-9]\d0|20\d0)s\b", lambda m: _plural_last(_en_year(int(m[1])))),
        (rf"(?<![\d:.])(\d{{1,2}}):([0-5]\d)(?::([0-5]\d))?(?:{_AMPM})?(?![\d:])", _en_clock),
        (rf"(?<![\d:.,])(\d{{1,2}}){_AMPM}", _en_hour_ampm),
        (
            rf"(?:(?<![\w)\].])(-))?([$€£¥])\s?{_INT}(?:\.(\d+))?(?:\s?(thousand|million|billion|trillion|bn|[kKmMB])\b)?",
            lambda m: _en_money(m[1], m[2], m[3], m[4], m[5]),
        ),
        (
            rf"{_EN_NUM}\s?(USD|EUR|GBP|JPY|[$€£¥])(?![A-Za-z])",
            lambda m: _en_money(m[1], _EN_CURRENCY_CODES[m[4]], m[2], m[3]),
        ),
        (rf"{_EN_NUM}\s?%", lambda m: _en_num(m[1], m[2], m[3]) + " percent"),
        (rf"{_EN_NUM}\s?({_unit_alternation(_EN_UNITS)})(?![A-Za-z0-9])", _en_unit),
        (rf"(?<!\d){_INT}(st|nd|rd|th)\b", lambda m: _en_ordinal(int(m[1].replace(",", "")))),
        (r"(?<![\w&])#\s?(\d+)", lambda m: "number " + _en_int(m[1])),
        (r"(?<![\d.])\d+(?:\.\d+){2,}(?!\.?\d)", lambda m: " dot ".join(_en_int(p) for p in m[0].split("."))),
        (r"(?<=\d)\s?\+\s?(?=\d)", lambda m: " plus "),
        (r"(?<![\w)])\+(?=\d)", lambda m: "plus "),
        (r"(?<=\d)\s?×\s?(?=\d)", lambda m: " times "),
        (r"~\s?(?=\d)", lambda m: "about "),
        (rf"(?<![\d.,\-]){_YEAR}(?!\d|[.,]\d)", lambda m: _en_year(int(m[1]))),
        (r"(?<![\w.])\.(\d+)", lambda m: "point " + _en_digits(m[1])),
        (_EN_NUM, lambda m: _en_num(m[1], m[2], m[3])),
        (r"\s*&\s*", lambda m: " and "),
        (r"\s*=+\s*", lambda m: " equals "),
        (
            r"\s*°(?:\s?([CF])\b)?",
            lambda m: " degrees" + {"C": " Celsius", "F": " Fahrenheit", None: ""}[m[1]],
        ),
        (r"\s*%", lambda m: " percent"),
        (r"\s+@\s+", lambda m: " at "),
    ]
]


def _normalize_en(text: str) -> str:
    return _apply(text, _EN_RULES, pad=True)


# ----------------------------------------------------------------------------------------- Chinese

_ZH_DIGITS = "零一二三四五六七八九"
_ZH_SECTIONS = ["", "万", "亿", "万亿"]
_ZH_MEASURES = "个只本条张件位次天年种台辆杯瓶块元岁倍把双家间周斤项部首篇句点分名人回遍"


def _zh_section(n: int) -> str:
    out, zero = "", False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        d = n // value % 10
        if d == 0:
            zero = zero or bool(out)
        else:
            out += ("零" if zero else "") + _ZH_DIGITS[d] + unit
            zero = False
    return out


def _zh_cardinal(n: int) -> str:
    if n < 0:
        return "负" + _zh_cardinal(-n)
    if n == 0:
        return "零"
    if n >= 10000 ** len(_ZH_SECTIONS):
        return _zh_digits(str(n))
    sections = []
    while n:
        n, rest = divmod(n, 10000)
        sections.append(rest)
    out, gap = "", False
    for idx in range(len(sections) - 1, -1, -1):
        sec = sections[idx]
        if sec == 0:
            gap = gap or bool(out)
            continue
        if out and (gap or sec < 1000):
            out += "零"
        out += _zh_section(sec) + _ZH_SECTIONS[idx]
        gap = False
    if out.startswith("一十"):
        out = out[1:]
    if out[:2] in ("二千", "二万", "二亿"):
        out = "两" + out[1:]
    return out


def _zh_digits(digits: str) -> str:
    return "".join(_ZH_DIGITS[int(d)] for d in digits)


def _zh_int(int_s: str, count: bool = False) -> str:
    digits = int_s.replace(",", "")
    if _read_digits(int_s):
        return _zh_digits(digits)
    return "两" if count and digits == "2" else _zh_cardinal(int(digits))


def _zh_num(sign: str | None, int_s: str, frac: str | None = None, count: bool = False) -> str:
    words = _zh_int(int_s, count and not frac) + (f"点{_zh_digits(frac)}" if frac else "")
    return "负" + words if sign else words


def _zh_clock(m: re.Match[str]) -> str:
    h, minute = int(m[1]), int(m[2])
    if h > 24:
        return m.group(0)
    out = ("两" if h == 2 else _zh_cardinal(h)) + "点"
    if minute:
        out += ("零" + _ZH_DIGITS[minute] if minute < 10 else _zh_cardinal(minute)) + "分"
    if m[3] and int(m[3]):
        sec = int(m[3])
        out += ("零" + _ZH_DIGITS[sec] if sec < 10 else _zh_cardinal(sec)) + "秒"
    return out


def _zh_date(m: re.Match[str]) -> str:
    mo, d = int(m[2]), int(m[3])
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return m.group(0)
    return f"{_zh_digits(m[1])}年{_zh_cardinal(mo)}月{_zh_cardinal(d)}日"


_ZH_CURRENCY = {"¥": "元", "￥": "元", "$": "美元", "€": "欧元", "£": "英镑"}


def _zh_money(m: re.Match[str]) -> str:
    sign, name, int_s, frac = m[1], _ZH_CURRENCY[m[2]], m[3], m[4]
    neg = "负" if sign else ""
    if name != "元" or not frac or len(frac) > 2:
        return neg + _zh_num(None, int_s, frac, count=True) + name
    jiao, fen = int(frac[0]), int(frac[1:] or 0)
    whole = int(int_s.replace(",", ""))
    out = _zh_int(int_s, count=True) + "元" if whole else ""
    if jiao:
        out += _ZH_DIGITS[jiao] + "角"
    elif fen and whole:
        out += "零"
    if fen:
        out += _ZH_DIGITS[fen] + "分"
    return neg + (out or "零元")


_ZH_UNITS = {
    "km/h": "公里每小时",
    "m/s": "米每秒",
    "kWh": "千瓦时",
    "kW": "千瓦",
    "W": "瓦",
    "V": "伏",
    "Hz": "赫兹",
    "kg": "千克",
    "g": "克",
    "mg": "毫克",
    "lb": "磅",
    "lbs": "磅",
    "km": "公里",
    "m": "米",
    "cm": "厘米",
    "mm": "毫米",
    "l": "升",
    "L": "升",
    "ml": "毫升",
    "mL": "毫升",
    "°C": "摄氏度",
    "°F": "华氏度",
    "°": "度",
    "h": "小时",
    "min": "分钟",
    "s": "秒",
    "ms": "毫秒",
}


def _zh_unit(m: re.Match[str]) -> str:
    return _zh_num(m[1], m[2], m[3], count=not m[4].startswith("°")) + _ZH_UNITS[m[4]]


_ZH_NUM = _num("0-9A-Za-z")
_ZH_RULES: list[_Rule] = [
    (re.compile(p), f)
    for p, f in [
        (r"(?<!\d)(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?![\d.])", _zh_date),
        (r"(?<![\d:.])(\d{1,2}):([0-5]\d)(?::([0-5]\d))?(?![\d:])", _zh_clock),
        (r"(?<![\d.])(\d{4})(?=\s?年)", lambda m: _zh_digits(m[1])),
        (rf"(?:(?<![0-9A-Za-z)\].])(-))?([¥￥$€£])\s?{_INT}(?:\.(\d+))?", _zh_money),
        (rf"{_ZH_NUM}\s?%", lambda m: ("负" if m[1] else "") + "百分之" + _zh_num(None, m[2], m[3])),
        (rf"{_ZH_NUM}\s?({_unit_alternation(_ZH_UNITS)})(?![A-Za-z0-9])", _zh_unit),
        (r"(?<=\d)\s?[~～]\s?(?=\d)", lambda m: "到"),
        (r"(?<=\d)\s?\+\s?(?=\d)", lambda m: "加"),
        (r"(?<=\d)\s?[×*]\s?(?=\d)", lambda m: "乘"),
        (rf"(?<![\d.,])2(?=\s?[{_ZH_MEASURES}])", lambda m: "两"),
        (_ZH_NUM, lambda m: _zh_num(m[1], m[2], m[3])),
        (r"\s*&\s*", lambda m: "和"),
        (r"\s*=+\s*", lambda m: "等于"),
        (r"°", lambda m: "度"),
    ]
]


def _normalize_zh(text: str) -> str:
    return _apply(text, _ZH_RULES, pad=False)


# ----------------------------------------------------------------------------------------- registry

_NORMALIZERS: dict[str, Normalizer] = {"en": _normalize_en, "zh": _normalize_zh}


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


# ----------------------------------------------------------------------------------------- chunking

_LATIN_TERM = ".!?…"
_CJK_TERM = "。！？｡"
_TERMS = _LATIN_TERM + _CJK_TERM
_CLOSERS = "\"')]}»”’」』）》〉】"
_OPENERS = "\"'([{«“‘「『（《〈【"
_LATIN_CLAUSE = ",;:"
_CJK_CLAUSE = "，、；：…"
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "mt",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "cf",
        "approx",
        "fig",
        "a.m",
        "p.m",
        "u.s",
        "u.k",
        "dept",
        "est",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
    ]
)


def _is_cjk(ch: str) -> bool:
    return (
        "\u2e80" <= ch <= "\u9fff"
        or "\uac00" <= ch <= "\ud7af"
        or "\uf900" <= ch <= "\ufaff"
        or "\uff00" <= ch <= "\uffef"
        or "\U00020000" <= ch <= "\U0003134f"
    )


def _has_alnum(text: str) -> bool:
    return any(c.isalnum() for c in text)


def _no_break(text: str, sent_start: int | None, i: int, j: int) -> bool:
    """True when the single '.' at text[i] ends an abbreviation, an initial or a leading list number."""
    if text[i:j].rstrip(_CLOSERS) != ".":
        return False
    k = i
    while k > (sent_start or 0) and not text[k - 1].isspace():
        k -= 1
    token = text[k:i].lstrip(_OPENERS).lower()
    if token in _ABBREVIATIONS or (len(token) == 1 and token.isascii() and token.isalpha()):
        return True
    is_number = token.isascii() and token.isdigit() and len(token) <= 3
    return is_number and sent_start is not None and not text[sent_start:k].strip()


def _sentence_ends(text: str, at_start: bool = True) -> Iterator[int]:
    """Offsets just after each sentence end that later text cannot move.

    A CJK terminator ends a sentence at once; a Latin one only when followed by whitespace or a CJK
    character (so '3.5', 'e.g.' and 'Mr. X' are not split).  ``at_start`` says text[0] starts a sentence.
    """
    n, i = len(text), 0
    sent_start: int | None = 0 if at_start else None
    while i < n:
        if text[i] not in _TERMS:
            i += 1
            continue
        j = i
        while j < n and text[j] in _TERMS:
            j += 1
        while j < n and text[j] in _CLOSERS:
            j += 1
        cjk = any(c in _CJK_TERM for c in text[i:j])
        follows = j < n and (text[j].isspace() or _is_cjk(text[j]))
        if cjk or (follows and not _no_break(text, sent_start, i, j)):
            yield j
            sent_start = j
        i = j


def _clause_cuts(text: str, s: int, e: int) -> list[int]:
    cuts = []
    for i in range(s, e - 1):
        ch = text[i]
        if ch in _CJK_CLAUSE or ch in _LATIN_CLAUSE:
            j = i + 1
            while j < e and text[j] in _CLOSERS:
                j += 1
            if ch in _CJK_CLAUSE or (j < e and (text[j].isspace() or _is_cjk(text[j]))):
                cuts.append(j)
    return sorted(c for c in set(cuts) if s < c < e)


def _word_cuts(text: str, s: int, e: int) -> list[int]:
    return [p for p in range(s + 1, e) if text[p - 1].isspace() and not text[p].isspace()]


_SPLITTERS = (_clause_cuts, _word_cuts)
_Span = tuple[int, int]


def _trim(text: str, s: int, e: int) -> _Span:
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    return s, e


def _emit(text: str, s: int, e: int, caps: _Span, out: list[_Span], first: bool, level: int = 0) -> None:
    """Append spans of text[s:e] to out, splitting at clauses, then words, then hard cuts to fit the caps."""
    s, e = _trim(text, s, e)
    cap = caps[0] if first and not out else caps[1]
    if e - s <= cap:
        if s < e:
            out.append((s, e))
        return
    if level >= len(_SPLITTERS):
        while s < e:
            cap = caps[0] if first and not out else caps[1]
            out.append(_trim(text, s, min(s + cap, e)))
            s = _trim(text, min(s + cap, e), e)[0]
        return
    start, prev = s, None
    for cut in [*_SPLITTERS[level](text, s, e), e]:
        cap = caps[0] if first and not out else caps[1]
        lo, hi = _trim(text, start, cut)
        if prev is not None and hi - lo > cap:
            _emit(text, start, prev, caps, out, first, level + 1)
            start = prev
        prev = cut
    _emit(text, start, e, caps, out, first, level + 1)


def _split_spans(text: str, caps: _Span, first: bool, at_start: bool = True) -> list[_Span]:
    out: list[_Span] = []
    start = 0
    for end in _sentence_ends(text, at_start):
        _emit(text, start, end, caps, out, first)
        start = end
    _emit(text, start, len(text), caps, out, first)
    return _merge_punctuation(text, out, caps, first)


def _merge_punctuation(text: str, spans: list[_Span], caps: _Span, first: bool) -> list[_Span]:
    """Fold punctuation-only chunks into a neighbour when the cap allows it."""

    def cap(index: int) -> int:
        return caps[0] if first and index == 0 else caps[1]

    out: list[_Span] = []
    for s, e in spans:
        if out and not _has_alnum(text[s:e]) and e - out[-1][0] <= cap(len(out) - 1):
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    for i in range(len(out) - 2, -1, -1):
        s, e = out[i]
        if not _has_alnum(text[s:e]) and out[i + 1][1] - s <= cap(i):
            out[i : i + 2] = [(s, out[i + 1][1])]
    return out


def _caps(max_chars: int, first_max_chars: int) -> _Span:
    if max_chars < 1:
        raise ValueError("max_chars must be >= 1")
    return (min(first_max_chars, max_chars) if first_max_chars > 0 else max_chars), max_chars


def split_chunks(text: str, max_chars: int = 180, first_max_chars: int = 50) -> list[str]:
    """Split into speakable chunks: sentences, then clauses, then whitespace, then hard cuts, within the caps.

    The first chunk is capped at first_max_chars (short first chunk = early first audio), later ones at
    max_chars; first_max_chars <= 0 means "same as max_chars", and it never exceeds max_chars.  Sentences
    end at Latin . ! ? … (followed by whitespace or CJK) and CJK 。！？; clauses at , ; : (followed by
    whitespace) and ，、；：….  Numbers like 3.5 or 7:30 and abbreviations like 'Mr.' / 'e.g.' are not split.
    Each sentence is its own chunk; clauses and words are packed greedily up to the cap.  Chunks are
    stripped substrings of ``text``, never empty; input without letters/digits/CJK yields [].
    """
    caps = _caps(max_chars, first_max_chars)
    if not _has_alnum(text):
        return []
    return [text[s:e] for s, e in _split_spans(text, caps, first=True)]


class SentenceBuffer:
    """Incremental splitter for text that arrives in pieces (LLM streaming).

    feed(piece) returns the chunks that are complete: a sentence end followed by whitespace, a CJK
    terminator, or clauses that make the pending text exceed the cap.  flush() returns the rest and
    resets the buffer.  Everything returned, concatenated, has the characters of split_chunks() on the
    whole text: none lost or reordered.  A CJK terminator (。！？) ending a piece is released at once; a
    Latin '.' ending a piece once the next piece starts with whitespace (or on flush).  Punctuation-only
    text is held back and joins the next sentence.
    """

    def __init__(self, max_chars: int = 180, first_max_chars: int = 50) -> None:
        self._caps = _caps(max_chars, first_max_chars)
        self._pending = ""
        self._emitted = False  # has any chunk been released since the last flush?
        self._at_start = True  # does the pending text begin at a sentence start?

    def feed(self, piece: str) -> list[str]:
        """Add a piece of text; return the chunks that are now complete."""
        text = self._pending + piece
        self._pending = text
        if not self._emitted and not _has_alnum(text):
            return []
        first, out, start = not self._emitted, [], 0
        for end in _sentence_ends(text, self._at_start):
            if _has_alnum(text[start:end]):
                _emit(text, start, end, self._caps, out, first)
                start, self._at_start = end, True
        tail = len(out)
        _emit(text, start, len(text), self._caps, out, first)
        if len(out) - tail > 1:  # the unfinished sentence overflows its cap: release all but its last piece
            start, self._at_start = out[-1][0], False
        if len(out) > tail:
            out.pop()
        self._pending = text[start:]
        self._emitted = self._emitted or bool(out)
        return [text[s:e] for s, e in out]

    def flush(self) -> list[str]:
        """Return whatever is pending as chunks and reset the buffer."""
        text, first, at_start = self._pending, not self._emitted, self._at_start
        self._pending, self._emitted, self._at_start = "", False, True
        if first and not _has_alnum(text):
            return []
        return [text[s:e] for s, e in _split_spans(text, self._caps, first, at_start)]
