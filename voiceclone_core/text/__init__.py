"""Text for the engines: which language it is in, per-language normalisation, and speakable chunks.

``language`` (tags and identification), ``normalization`` (with ``english``, ``chinese`` and the shared ``rules``),
``chunking`` (whole texts and streamed pieces) and ``passages`` (texts the house itself reads).
"""

from voiceclone_core.text.chunking import SentenceBuffer, split_chunks
from voiceclone_core.text.language import (
    Identification,
    guess_language,
    identify,
    is_cjk,
    language_family,
    text_script,
)
from voiceclone_core.text.normalization import Normalizer, normalize, register_normalizer
from voiceclone_core.text.passages import preview_sentence, reading_passage

__all__ = [
    "Identification",
    "Normalizer",
    "SentenceBuffer",
    "guess_language",
    "identify",
    "is_cjk",
    "language_family",
    "normalize",
    "preview_sentence",
    "reading_passage",
    "register_normalizer",
    "split_chunks",
    "text_script",
]
