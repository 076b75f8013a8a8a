"""From a request's text to speakable chunks: cut, language chosen, normalised, length-checked.

Whole texts and streamed pieces take the same path (a whole text is one piece), so the same text gives the same
chunks, and the same audio, whichever way it arrives — except for an engine that asks for packed sentences
(``packs_sentences``): a whole text's sentences after the first are then joined into chunks of up to
``speech.chunk_chars``, since such an engine pays for its voice prompt once per chunk.
"""

from __future__ import annotations

from voiceclone_core import text
from voiceclone_core.config import SpeechSettings
from voiceclone_core.engines.base import SynthesisOptions
from voiceclone_core.service.errors import InvalidRequest, NothingToSay
from voiceclone_core.service.languages import LanguageChooser
from voiceclone_core.service.scheduler import Chunk


class TextPlanner:
    """Chunks of one request's text, in order; ``languages`` lists the languages chosen so far."""

    def __init__(self, limits: SpeechSettings, chooser: LanguageChooser, speed: float, pack: bool = False) -> None:
        self._buffer = text.SentenceBuffer(limits.chunk_chars, limits.first_chunk_chars)
        self._pack = limits.chunk_chars if pack else 0
        self._chooser = chooser
        self._speed = speed
        self._limit = limits.max_text_chars
        self._chars = 0
        self.chunks = 0
        self.languages: list[str] = []

    def whole(self, words: str) -> list[Chunk]:
        """All chunks of a text known at once (:class:`NothingToSay` when it has nothing to speak)."""
        if not words.strip():
            raise NothingToSay("nothing to say: the text is empty")
        if len(words) > self._limit:
            raise InvalidRequest(f"text too long: {len(words)} characters (limit {self._limit})")
        chunks = self.feed(words) + self.flush()
        if not chunks:
            raise NothingToSay("nothing to say: the text has no words")
        if self._pack:
            chunks = pack(chunks, self._pack)
            self.chunks = len(chunks)
        return chunks

    def feed(self, piece: str) -> list[Chunk]:
        """The chunks a new piece of text completes."""
        if not isinstance(piece, str):
            raise InvalidRequest(f"text must be a string, not {type(piece).__name__}")
        self._chars += len(piece)
        if self._chars > self._limit:
            raise InvalidRequest(f"text too long: more than {self._limit} characters (limit {self._limit})")
        return self._ready(self._buffer.feed(piece))

    def flush(self) -> list[Chunk]:
        """The chunks of whatever text is left at the end."""
        return self._ready(self._buffer.flush())

    def _ready(self, pieces: list[str]) -> list[Chunk]:
        chunks = []
        for piece in pieces:
            language = self._chooser.choose(piece)
            words = text.normalize(piece, language)
            if not words:
                continue
            chunks.append(Chunk(words, SynthesisOptions(language=language, speed=self._speed)))
            if language not in self.languages:
                self.languages.append(language)
        self.chunks += len(chunks)
        return chunks


def pack(chunks: list[Chunk], max_chars: int) -> list[Chunk]:
    """The first chunk alone, then neighbours in the same language joined while they fit in ``max_chars``."""
    out = chunks[:1]
    for chunk in chunks[1:]:
        last = out[-1]
        glue = "" if text.is_cjk(last.text[-1:]) or text.is_cjk(chunk.text[:1]) else " "
        if len(out) > 1 and last.options == chunk.options and len(last.text) + len(glue) + len(chunk.text) <= max_chars:
            out[-1] = Chunk(last.text + glue + chunk.text, last.options)
        else:
            out.append(chunk)
    return out
