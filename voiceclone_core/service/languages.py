"""The one language policy, used by every door through the service.

Each piece of a request is spoken in: the language the request asks for › the language detected from the text ›
the voice's enrollment language › the configured default › the engine's own default. A voice speaks every language
its engine speaks, whatever language it was enrolled in (cross-lingual cloning): Nonna, enrolled from an Italian
recording, announces "dinner is ready" in English. Only a language the engine truly cannot speak is an error — asked
for explicitly, or recognised in the text — and the error names it and what is available.
"""

from __future__ import annotations

import re

from voiceclone_core import text
from voiceclone_core.service.errors import InvalidRequest, LanguageUnavailable, ServiceUnavailable

_TAG = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")


def check_tag(language: object) -> str:
    """A language tag as given (``en``, ``zh-CN``, ``pt_BR``), or :class:`InvalidRequest`."""
    if not isinstance(language, str) or not _TAG.fullmatch(language.strip()):
        raise InvalidRequest(f"invalid language {language!r}: use a language code such as 'en' or 'zh-CN'")
    return language.strip()


# ISO 639-1 (every two-letter language code), plus "sh" and the old codes some systems still send (in, iw, ji, jw, mo).
_ISO_639_1 = frozenset(
    re.findall(
        r"[a-z]{2}",
        """
        aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz ee
        el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik io is
        it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms
        mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk
        sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi
        yo za zh zu sh in iw ji jw mo
        """,
    )
)
# Three-letter codes that name no language: uncoded, multiple, undetermined, no linguistic content (and qaa-qtz, local).
_NOT_A_LANGUAGE = frozenset({"mis", "mul", "und", "zxx"})


def check_enrollment_tag(language: object) -> str:
    """The language a recording is in, as given, when it is a language at all; else :class:`InvalidRequest`.

    A voice speaks every language its engine speaks whatever it was enrolled in, so any real language is accepted;
    what is refused is a tag that names none: malformed (``klingon``, ``<script>``), a two-letter code that is not
    ISO 639-1 (``xx``), or a three-letter code reserved for "no language" (``und``, ``zxx``, ``qaa``-``qtz``). ISO 639-3
    has some 7,900 three-letter codes; those are taken on trust rather than listed here.
    """
    tag = check_tag(language)
    primary = re.split(r"[-_]", tag, maxsplit=1)[0].lower()
    if (len(primary) == 2 and primary not in _ISO_639_1) or (
        len(primary) == 3 and (primary in _NOT_A_LANGUAGE or "qaa" <= primary <= "qtz")
    ):
        raise InvalidRequest(f"unknown language {tag!r}: use a language code such as 'en' or 'zh-CN'")
    return tag


class LanguageChooser:
    """Picks the language of each chunk of one request (see the module docstring for the order).

    Text that says nothing about its language (digits, a name, "OK") keeps the previous chunk's language, so a
    request does not flip languages mid-way on a word. ``also``: codes the engine speaks without advertising them,
    accepted when asked for explicitly.
    """

    def __init__(
        self,
        engine_languages: tuple[str, ...],
        *,
        also: frozenset[str] | set[str] = frozenset(),
        requested: str | None = None,
        voice_language: str | None = None,
        default_language: str | None = None,
    ) -> None:
        self.available = tuple(dict.fromkeys(text.language_family(lang) for lang in engine_languages))
        if not self.available:
            raise ServiceUnavailable("the speech engine speaks no language")
        self._fixed: str | None = None
        if requested:
            family = text.language_family(check_tag(requested))
            if family not in self.available and family not in also:
                raise LanguageUnavailable(requested, self.available)
            self._fixed = family
        preferred = [text.language_family(lang) for lang in (voice_language, default_language) if lang]
        self._preferred = [lang for lang in preferred if lang in self.available]
        self._last: str | None = None

    def choose(self, chunk: str) -> str:
        """The language family ``chunk`` is spoken in (:class:`LanguageUnavailable` for a language not spoken)."""
        if self._fixed is not None:
            return self._fixed
        found = text.identify(chunk, self.available)
        if found.foreign is not None:
            raise LanguageUnavailable(found.foreign, self.available, detected=True)
        choice = found.language
        if choice is None:
            fits = found.fits or self.available
            order = [self._last, *self._preferred, found.likely, *fits]
            choice = next(lang for lang in order if lang in fits)
        self._last = choice
        return choice


def voice_languages(voice_language: str, engine_languages: tuple[str, ...]) -> list[str]:
    """The languages a voice is offered in: its own tag first (e.g. ``en_GB``) when the engine speaks it, then every
    other language the engine speaks."""
    own = voice_language.replace("-", "_")
    own_family = text.language_family(own)
    others = [lang for lang in engine_languages if lang != own_family]
    return ([own] if own_family in engine_languages else []) + others


def enrollment_language(requested: str | None, transcript: str | None, default_language: str) -> str:
    """The language a recording is in: as given (a real language: :func:`check_enrollment_tag`), else recognised from
    its transcript, else the configured default."""
    if requested:
        return check_enrollment_tag(requested)
    guessed = text.guess_language(transcript) if transcript else None
    return guessed or default_language
