"""Speakable chunks: sentences, then clauses, then words, within length caps; whole texts and streamed pieces alike."""

from __future__ import annotations

from collections.abc import Iterator

from voiceclone_core.text.language import is_cjk

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
        follows = j < n and (text[j].isspace() or is_cjk(text[j]))
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
            if ch in _CJK_CLAUSE or (j < e and (text[j].isspace() or is_cjk(text[j]))):
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
