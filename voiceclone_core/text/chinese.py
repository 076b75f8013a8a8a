"""Chinese normalisation: numbers, times, dates, money and units as Chinese numerals and words."""

from __future__ import annotations

import re

from voiceclone_core.text.rules import INT, Rule, apply_rules, number_pattern, read_digits, unit_alternation

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
    if read_digits(int_s):
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


_ZH_NUM = number_pattern("0-9A-Za-z")
_ZH_RULES: list[Rule] = [
    (re.compile(p), f)
    for p, f in [
        (r"(?<!\d)(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?![\d.])", _zh_date),
        (r"(?<![\d:.])(\d{1,2}):([0-5]\d)(?::([0-5]\d))?(?![\d:])", _zh_clock),
        (r"(?<![\d.])(\d{4})(?=\s?年)", lambda m: _zh_digits(m[1])),
        (rf"(?:(?<![0-9A-Za-z)\].])(-))?([¥￥$€£])\s?{INT}(?:\.(\d+))?", _zh_money),
        (rf"{_ZH_NUM}\s?%", lambda m: ("负" if m[1] else "") + "百分之" + _zh_num(None, m[2], m[3])),
        (rf"{_ZH_NUM}\s?({unit_alternation(_ZH_UNITS)})(?![A-Za-z0-9])", _zh_unit),
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


def normalize_chinese(text: str) -> str:
    """Chinese rules applied to cleaned-up text."""
    return apply_rules(text, _ZH_RULES, pad=False)
