"""Tests for voiceclone_core.text (normalisation, chunking and the streaming SentenceBuffer)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voiceclone_core.text import (
    SentenceBuffer,
    language_family,
    normalization,
    normalize,
    register_normalizer,
    split_chunks,
)

# ----------------------------------------------------------------------------------------- normalisation

EN_CASES = [
    ("1,234", "one thousand two hundred thirty-four"),
    ("It is 42.", "It is forty-two."),
    ("-5", "minus five"),
    ("1000000", "one million"),
    ("1,000,000,000", "one billion"),
    ("101", "one hundred one"),
    ("3.5", "three point five"),
    ("3.14", "three point one four"),
    ("1st", "first"),
    ("22nd", "twenty-second"),
    ("3rd", "third"),
    ("12th and 101st", "twelfth and one hundred first"),
    ("7:30", "seven thirty"),
    ("7:05", "seven oh five"),
    ("7:00", "seven o'clock"),
    ("19:00", "seven p m"),
    ("19:45", "seven forty-five p m"),
    ("00:15", "twelve fifteen a m"),
    ("7:30 am", "seven thirty a m"),
    ("7:30pm", "seven thirty p m"),
    ("Meet at 7 p.m. on Friday", "Meet at seven p m on Friday"),
    ("2024-05-01", "May first, twenty twenty-four"),
    ("in 1999", "in nineteen ninety-nine"),
    ("2005", "two thousand five"),
    ("2010", "twenty ten"),
    ("1905", "nineteen oh five"),
    ("1900", "nineteen hundred"),
    ("the 1990s", "the nineteen nineties"),
    ("1990-1999", "nineteen ninety to nineteen ninety-nine"),
    ("50%", "fifty percent"),
    ("$5", "five dollars"),
    ("$1", "one dollar"),
    ("$3.50", "three dollars fifty cents"),
    ("$0.50", "fifty cents"),
    ("$5 million", "five million dollars"),
    ("€10", "ten euros"),
    ("10€", "ten euros"),
    ("£3.50", "three pounds fifty pence"),
    ("5 kg", "five kilograms"),
    ("5kg", "five kilograms"),
    ("1 kg", "one kilogram"),
    ("20 °C", "twenty degrees Celsius"),
    ("20°C", "twenty degrees Celsius"),
    ("-5°C", "minus five degrees Celsius"),
    ("1 °C", "one degree Celsius"),
    ("3 km", "three kilometers"),
    ("10 min", "ten minutes"),
    ("1 min", "one minute"),
    ("100 W", "one hundred watts"),
    ("2 kWh", "two kilowatt hours"),
    ("5 cm", "five centimeters"),
    ("1.5 l", "one point five liters"),
    ("60 km/h", "sixty kilometers per hour"),
    ("30 mph", "thirty miles per hour"),
    ("6 ft", "six feet"),
    ("Salt & pepper", "Salt and pepper"),
    ("2 + 2 = 4", "two plus two equals four"),
    ("45°", "forty-five degrees"),
    ("#5", "number five"),
    ("FY2024", "FY twenty twenty-four"),
    ("007", "zero zero seven"),
    ("version 1.2.3", "version one dot two dot three"),
    ("5 mice", "five mice"),
    ("  lots   of\n\tspace  ", "lots of space"),
    (
        "Set the heating to 21°C at 6:30 am, then 18°C at 22:00.",
        "Set the heating to twenty-one degrees Celsius at six thirty a m, then eighteen degrees Celsius at ten p m.",
    ),
]

ZH_CASES = [
    ("10050", "一万零五十"),
    ("3", "三"),
    ("10", "十"),
    ("12", "十二"),
    ("110", "一百一十"),
    ("1010", "一千零一十"),
    ("100000", "十万"),
    ("100010000", "一亿零一万"),
    ("2000", "两千"),
    ("3.5", "三点五"),
    ("-5", "负五"),
    ("50%", "百分之五十"),
    ("2024年", "二零二四年"),
    ("2024-05-01", "二零二四年五月一日"),
    ("7:30", "七点三十分"),
    ("7:05", "七点零五分"),
    ("7:00", "七点"),
    ("2:00", "两点"),
    ("5kg", "五千克"),
    ("20°C", "二十摄氏度"),
    ("3km", "三公里"),
    ("¥5", "五元"),
    ("5元", "五元"),
    ("¥3.50", "三元五角"),
    ("$5", "五美元"),
    ("我有3个苹果", "我有三个苹果"),
    ("我有2个苹果", "我有两个苹果"),
    ("2月", "二月"),
    ("10年", "十年"),
    ("3~5天", "三到五天"),
    ("1+1=2", "一加一等于二"),
    ("电话13800138000", "电话一三八零零一三八零零零"),
    ("７：３０", "七点三十分"),
    ("今天是2024年5月1日，气温25°C。", "今天是二零二四年五月一日，气温二十五摄氏度。"),
]


@pytest.mark.parametrize(("raw", "expected"), EN_CASES)
def test_normalize_english(raw: str, expected: str) -> None:
    assert normalize(raw, "en_US") == expected


@pytest.mark.parametrize(("raw", "expected"), ZH_CASES)
def test_normalize_chinese(raw: str, expected: str) -> None:
    assert normalize(raw, "zh-CN") == expected


def test_normalize_default_language_is_english() -> None:
    assert normalize("I have 3 cats") == "I have three cats"
    assert normalize("I have 3 cats", None) == "I have three cats"


def test_unknown_language_only_cleans_up() -> None:
    assert normalize("  Ich  habe 3 Äpfel\u200b & 2 Birnen\n", "de-DE") == "Ich habe 3 Äpfel & 2 Birnen"
    assert normalize("ｘ１２", "fr") == "x12"  # full-width forms folded, digits kept


@pytest.mark.parametrize(
    ("language", "family"),
    [
        ("en_US", "en"),
        ("en-GB", "en"),
        ("EN", "en"),
        ("zh-CN", "zh"),
        ("zh_Hans", "zh"),
        ("ZH", "zh"),
        (None, "en"),
        ("", "en"),
        ("  de-AT ", "de"),
        ("fr_FR.UTF-8", "fr"),
        ("cmn", "zh"),
    ],
)
def test_language_family(language: str | None, family: str) -> None:
    assert language_family(language) == family


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(normalization, "_NORMALIZERS", dict(normalization._NORMALIZERS))


@pytest.mark.usefixtures("isolated_registry")
def test_register_normalizer_for_new_language() -> None:
    assert normalize("eins 1", "xx") == "eins 1"
    register_normalizer("xx_YY", lambda t: t.replace("1", " one "))
    assert normalize("eins 1", "xx-ZZ") == "eins one"  # whole family, whitespace collapsed afterwards
    assert normalize("eins 1", "en") == "eins one"  # other families untouched


@pytest.mark.usefixtures("isolated_registry")
def test_register_normalizer_overrides_builtin() -> None:
    register_normalizer("fr", lambda t: normalize(t, "en").replace("five", "cinq"))  # delegating extension
    assert normalize("appel 5", "fr") == "appel cinq"
    register_normalizer("en", str.upper)
    assert normalize("call 5", "en-GB") == "CALL 5"
    assert normalize("appel 5", "fr") == "APPEL 5"


def test_register_normalizer_rejects_non_callable() -> None:
    with pytest.raises(TypeError):
        register_normalizer("xx", "nope")  # type: ignore[arg-type]


def test_builtins_restored_after_isolated_tests() -> None:
    assert normalize("5", "en") == "five"


# ----------------------------------------------------------------------------------------- split_chunks


def test_split_latin_sentences() -> None:
    chunks = split_chunks("Hello there. How are you? I'm fine!")
    assert chunks == ["Hello there.", "How are you?", "I'm fine!"]


def test_split_cjk_sentences() -> None:
    chunks = split_chunks("你好。今天天气很好！我们去公园吧？")
    assert chunks == ["你好。", "今天天气很好！", "我们去公园吧？"]
    assert split_chunks("你好!我是小明.") == ["你好!", "我是小明."]


def test_no_split_inside_numbers_or_abbreviations() -> None:
    text = "Mr. Smith saw Dr. Jones at 7:30, e.g. after lunch. It cost 3.5 dollars, i.e. 1,234 cents."
    assert split_chunks(text, max_chars=180, first_max_chars=180) == [
        "Mr. Smith saw Dr. Jones at 7:30, e.g. after lunch.",
        "It cost 3.5 dollars, i.e. 1,234 cents.",
    ]


def test_list_numbers_stay_with_their_item() -> None:
    chunks = split_chunks("1. Preheat the oven. 2. Mix the flour.")
    assert chunks == ["1. Preheat the oven.", "2. Mix the flour."]


def test_closing_quote_stays_with_sentence() -> None:
    assert split_chunks('He said "Hi." Then he left.') == ['He said "Hi."', "Then he left."]


def test_long_sentence_splits_at_clauses() -> None:
    text = "When the sun goes down, the lights in the hall turn on; the heating drops to eighteen degrees."
    assert split_chunks(text, max_chars=40, first_max_chars=40) == [
        "When the sun goes down,",
        "the lights in the hall turn on;",
        "the heating drops to eighteen degrees.",
    ]


def test_long_cjk_sentence_splits_at_clauses() -> None:
    text = "今天天气很好，我们去公园散步，然后去超市买东西，最后回家做饭。"
    chunks = split_chunks(text, max_chars=20, first_max_chars=10)
    assert chunks == ["今天天气很好，", "我们去公园散步，然后去超市买东西，", "最后回家做饭。"]


def test_first_chunk_is_short() -> None:
    text = "This is the first sentence, and it is rather long for a first chunk. Second one."
    chunks = split_chunks(text, max_chars=180, first_max_chars=30)
    assert len(chunks[0]) <= 30
    assert chunks == [
        "This is the first sentence,",
        "and it is rather long for a first chunk.",
        "Second one.",
    ]


def test_whitespace_then_hard_cut() -> None:
    words = " ".join(["word"] * 20)
    chunks = split_chunks(words, max_chars=22, first_max_chars=22)
    assert all(len(c) <= 22 for c in chunks) and " ".join(chunks) == words
    assert chunks[0] == "word word word word"
    assert split_chunks("a" * 25, max_chars=10, first_max_chars=5) == ["aaaaa", "aaaaaaaaaa", "aaaaaaaaaa"]


def test_empty_whitespace_and_punctuation_only() -> None:
    for text in ["", "   \n\t", "...!?", "。。！", " , ; "]:
        assert split_chunks(text) == []


def test_punctuation_only_sentence_is_merged() -> None:
    assert split_chunks("Really!! ?! Yes.") == ["Really!! ?!", "Yes."]


def test_cap_arguments() -> None:
    with pytest.raises(ValueError):
        split_chunks("hi", max_chars=0)
    text = "x" * 30
    # first_max_chars never raises the first cap above max_chars; 0 means "same as max_chars"
    assert split_chunks(text, max_chars=20, first_max_chars=100) == ["x" * 20, "x" * 10]
    assert split_chunks(text, max_chars=20, first_max_chars=0) == ["x" * 20, "x" * 10]


# ----------------------------------------------------------------------------------------- SentenceBuffer


def test_buffer_latin_period_waits_for_whitespace() -> None:
    buf = SentenceBuffer()
    assert buf.feed("Hello there.") == []
    assert buf.feed(" How are") == ["Hello there."]
    assert buf.feed(" you? I") == ["How are you?"]
    assert buf.feed("t costs 3.") == []
    assert buf.feed("5 dollars.") == []
    assert buf.flush() == ["It costs 3.5 dollars."]


def test_buffer_cjk_terminator_released_at_once() -> None:
    buf = SentenceBuffer()
    assert buf.feed("你好。") == ["你好。"]
    assert buf.feed("今天天气") == []
    assert buf.feed("很好！我们") == ["今天天气很好！"]
    assert buf.flush() == ["我们"]


def test_buffer_releases_clauses_when_over_cap() -> None:
    buf = SentenceBuffer(max_chars=30, first_max_chars=12)
    out = buf.feed("Turn on the lights, then the heating, ")
    assert out and len(out[0]) <= 12 and all(len(c) <= 30 for c in out)
    out += buf.feed("and after that play some music")
    out += buf.flush()
    assert " ".join(out) == "Turn on the lights, then the heating, and after that play some music"


def test_buffer_punctuation_only() -> None:
    buf = SentenceBuffer()
    assert buf.feed("...") == []
    assert buf.feed(" !? ") == []
    assert buf.flush() == []


def test_buffer_flush_resets_first_cap() -> None:
    buf = SentenceBuffer(max_chars=40, first_max_chars=10)
    text = "Alpha beta gamma delta epsilon."
    first = buf.feed(text + " ")
    assert len(first[0]) <= 10
    assert buf.flush() == []
    assert buf.feed(text + " ") == first


def test_buffer_matches_split_chunks_on_plain_text() -> None:
    text = "Mr. Smith arrived at 7:30. 你好。今天天气很好！It costs $3.50, e.g. a coffee. Bye."
    buf = SentenceBuffer()
    out = [c for ch in text for c in buf.feed(ch)] + buf.flush()
    assert out == split_chunks(text)


# ----------------------------------------------------------------------------------------- properties

_ALPHABET = "abcXYZ019 你好世界。！？；：，、…!?.,;:'\"”」（）\n\t"
_TOKENS = ["Mr.", "e.g.", "3.5", "7:30", "1,234", "...", "……", ". ", "! ", "? ", ", ", "。", "\u3000", "1. "]
texts = st.lists(
    st.one_of(st.sampled_from(_TOKENS), st.text(alphabet=_ALPHABET, max_size=12), st.text(max_size=3)),
    max_size=25,
).map("".join)
max_caps = st.integers(min_value=1, max_value=60)
first_caps = st.integers(min_value=0, max_value=60)
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _squash(s: str) -> str:
    return "".join(c for c in s if not c.isspace())


def _check_chunks(chunks: list[str], text: str, max_chars: int, first_max_chars: int) -> None:
    first_cap = min(first_max_chars, max_chars) if first_max_chars > 0 else max_chars
    for i, chunk in enumerate(chunks):
        assert chunk and chunk.strip() == chunk
        assert len(chunk) <= (first_cap if i == 0 else max_chars)
    if any(c.isalnum() for c in text):
        assert _squash("".join(chunks)) == _squash(text)
    else:
        assert chunks == []


def _stream(text: str, cuts: list[int], max_chars: int, first_max_chars: int) -> list[str]:
    buf = SentenceBuffer(max_chars=max_chars, first_max_chars=first_max_chars)
    bounds = [0, *sorted(cuts), len(text)]
    out = [chunk for a, b in itertools.pairwise(bounds) for chunk in buf.feed(text[a:b])]
    return out + buf.flush()


@PROPERTY_SETTINGS
@given(texts, max_caps, first_caps)
def test_split_chunks_properties(text: str, max_chars: int, first_max_chars: int) -> None:
    _check_chunks(split_chunks(text, max_chars, first_max_chars), text, max_chars, first_max_chars)


@PROPERTY_SETTINGS
@given(st.data(), texts, max_caps, first_caps)
def test_sentence_buffer_properties(data: st.DataObject, text: str, max_chars: int, first_max_chars: int) -> None:
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(text)), max_size=12))
    out = _stream(text, cuts, max_chars, first_max_chars)
    _check_chunks(out, text, max_chars, first_max_chars)
    assert _squash("".join(out)) == _squash("".join(split_chunks(text, max_chars, first_max_chars)))


@settings(max_examples=100, deadline=None)
@given(texts, st.sampled_from(["en", "zh", "de"]))
def test_normalize_is_total_and_collapsed(text: str, language: str) -> None:
    out = normalize(text, language)
    assert out == out.strip() and "  " not in out
