"""English normalisation (US conventions): numbers, times, dates, money, units and symbols as words.

No "and" in cardinals ("one hundred five"); clock times are read in 12-hour form, so 24-hour values get "a m"/"p m"
("19:00" -> "seven p m", "00:15" -> "twelve fifteen a m") and an hour without minutes and without am/pm gets
"o'clock" ("7:00" -> "seven o'clock"). Integers with a leading zero or more than ten digits (phone numbers, codes) are
read digit by digit.
"""

from __future__ import annotations

import re

from voiceclone_core.text.rules import INT, Rule, apply_rules, number_pattern, read_digits, unit_alternation

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
    return _en_digits(digits) if read_digits(int_s) else _en_cardinal(int(digits))


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


_EN_NUM = number_pattern(r"\w")
_AMPM = r"\s?([AaPp])\.?\s?[Mm]\b(?:\.(?=\s+[a-z]|[,;:!?]))?"
_YEAR = r"(1[1-9]\d\d|20\d\d)"
_EN_RULES: list[Rule] = [
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
            rf"(?:(?<![\w)\].])(-))?([$€£¥])\s?{INT}(?:\.(\d+))?(?:\s?(thousand|million|billion|trillion|bn|[kKmMB])\b)?",
            lambda m: _en_money(m[1], m[2], m[3], m[4], m[5]),
        ),
        (
            rf"{_EN_NUM}\s?(USD|EUR|GBP|JPY|[$€£¥])(?![A-Za-z])",
            lambda m: _en_money(m[1], _EN_CURRENCY_CODES[m[4]], m[2], m[3]),
        ),
        (rf"{_EN_NUM}\s?%", lambda m: _en_num(m[1], m[2], m[3]) + " percent"),
        (rf"{_EN_NUM}\s?({unit_alternation(_EN_UNITS)})(?![A-Za-z0-9])", _en_unit),
        (rf"(?<!\d){INT}(st|nd|rd|th)\b", lambda m: _en_ordinal(int(m[1].replace(",", "")))),
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


def normalize_english(text: str) -> str:
    """English rules applied to cleaned-up text."""
    return apply_rules(text, _EN_RULES, pad=True)
