"""Machinery shared by the per-language normalisers: ordered regex rules and the shared number patterns."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial

Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]


def apply_rules(text: str, rules: list[Rule], pad: bool) -> str:
    """Apply each rule once, in order; ``pad`` keeps replaced words apart from adjacent letters and digits."""
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
INT = r"(\d{1,3}(?:,\d{3})+(?!\d)|\d+)"
MAX_CARDINAL_DIGITS = 10


def number_pattern(sign_guard: str) -> str:
    """Sign, integer and decimals as groups 1-3; no minus sign directly after a character in ``sign_guard``."""
    return rf"(?:(?<![{sign_guard})\].])(-))?(?<!\d){INT}(?:\.(\d+))?"


def unit_alternation(units: dict[str, str]) -> str:
    """A regex alternation of the unit symbols, longest first."""
    return "|".join(re.escape(u) for u in sorted(units, key=len, reverse=True))


def read_digits(int_s: str) -> bool:
    """True when an integer is read digit by digit (leading zero, or too long for a cardinal)."""
    digits = int_s.replace(",", "")
    return (len(digits) > 1 and digits[0] == "0") or (len(digits) > MAX_CARDINAL_DIGITS and "," not in int_s)
