"""C13: which texts are SMS keywords. A message is a keyword when, after Unicode
compatibility normalisation, removing zero-width and format characters, trimming and
dropping trailing punctuation, it equals the keyword in any letter case, hyphens and
spaces between the two words of OPT OUT and STOP ALL not counting. Pure."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from services.consent.domain.keywords import keyword

# The carrier keywords of SPEC C13, as a person may send them.
KEYWORDS = {
    "STOP": "stop",
    "STOPALL": "stop",
    "STOP ALL": "stop",
    "UNSUBSCRIBE": "stop",
    "CANCEL": "stop",
    "END": "stop",
    "QUIT": "stop",
    "REVOKE": "stop",
    "OPTOUT": "stop",
    "OPT OUT": "stop",
    "START": "start",
    "UNSTOP": "start",
    "YES": "start",
    "HELP": "help",
    "INFO": "help",
}

VARIANTS = [
    # punctuation at the end
    ("Stop.", "stop"),
    ("STOP!", "stop"),
    ("stop!!!", "stop"),
    ("Stop?!", "stop"),
    ("STOP …", "stop"),
    ('"STOP"', None),  # the opening quote is punctuation at the start
    ("STOP.\u200b", "stop"),
    ("Opt-out.", "stop"),
    ("Cancel,", "stop"),
    ("Help?", "help"),
    ("Info:", "help"),
    ("yes!", "start"),
    ("Unstop.", "start"),
    ("STOP\uff01", "stop"),  # full-width exclamation mark
    # spacing and hyphens between the two words
    ("STOP ALL", "stop"),
    ("stop all", "stop"),
    ("Stop-All", "stop"),
    ("STOP  \t ALL", "stop"),
    ("STOP\u00a0ALL", "stop"),
    ("STOP\u3000ALL", "stop"),
    ("opt out", "stop"),
    ("Opt-out", "stop"),
    ("OPT - OUT", "stop"),
    ("opt--out", "stop"),
    ("OPT\u2010OUT", "stop"),  # U+2010 HYPHEN
    ("OPTOUT", "stop"),
    ("optout", "stop"),
    # width
    ("ＳＴＯＰ", "stop"),
    ("ｓｔｏｐ", "stop"),
    ("ＯＰＴ－ＯＵＴ", "stop"),
    ("ＨＥＬＰ", "help"),
    # case
    ("stop", "stop"),
    ("sToP", "stop"),
    ("Revoke", "stop"),
    ("unsubscribe", "stop"),
    ("start", "start"),
    ("Yes", "start"),
    ("info", "help"),
    # zero-width, format and other ignorable characters
    ("STOP\u200b", "stop"),
    ("\ufeffSTOP", "stop"),
    ("S\u200dT\u2060O\u00adP", "stop"),
    ("STOP\u200e", "stop"),
    ("\u202eSTOP\u202c", "stop"),
    ("STOP\ufe0f", "stop"),
    ("STOP\u3164", "stop"),
    # trimming
    (" stop \n", "stop"),
    ("\t\r\nSTART  ", "start"),
    ("\u3000HELP\u3000", "help"),
    # not keywords
    ("STOPS", None),
    ("S TOP", None),
    ("ST-OP", None),
    ("don't stop", None),
    ("STOP me", None),
    ("stop please", None),
    ("please stop", None),
    ("¿STOP", None),
    ("-STOP", None),
    ("STOP 🙂", None),
    ("STOP STOP", None),
    ("STOP, HELP", None),
    ("OPT", None),
    ("OUT", None),
    ("ALL", None),
    ("OUT OPT", None),
    ("ALL STOP", None),
    ("STOP ALL OUT", None),
    ("OPT OUT ALL", None),
    ("STÖP", None),
    ("STOP\u0301", None),  # a combining mark on the P is part of the word
    ("", None),
    (" ", None),
    ("\u200b", None),
    ("!", None),
    ("1STOP", None),
    ("STOP2", None),
]


@pytest.mark.parametrize(("text", "expected"), VARIANTS, ids=[repr(t) for t, _ in VARIANTS])
def test_c13_carrier_keywords_and_their_variants(text: str, expected: str | None) -> None:
    assert keyword(text) == expected


@pytest.mark.parametrize(("text", "expected"), KEYWORDS.items())
def test_c13_every_carrier_keyword(text: str, expected: str) -> None:
    assert keyword(text) == expected
    assert keyword(text.lower()) == expected


# --- Hypothesis: decorations of table keywords are the keyword --------------------------

WHITESPACE = [chr(p) for p in range(0x110000) if chr(p).isspace()]
# Format characters and Default_Ignorable code points a phone or a gateway may insert.
IGNORABLE = st.one_of(
    st.characters(categories=["Cf"]),
    st.sampled_from(
        [
            "\u00ad",
            "\u034f",
            "\u061c",
            "\u115f",
            "\u1160",
            "\u17b4",
            "\u180b",
            "\u180e",
            "\u200b",
            "\u200c",
            "\u200d",
            "\u200e",
            "\u2060",
            "\u2066",
            "\u3164",
            "\ufe0f",
            "\ufeff",
            "\uffa0",
            "\U0001d173",
            "\U000e0001",
            "\U000e0100",
        ]
    ),
)
# Punctuation that is still punctuation after NFKC (U+203E OVERLINE and its kin become a
# space and a combining mark, which are no punctuation).
PUNCTUATION = st.characters(categories=["P"]).filter(
    lambda c: all(
        unicodedata.category(x).startswith("P") or x.isspace()
        for x in unicodedata.normalize("NFKC", c)
    )
)
HYPHENS = ["-", "\u2010", "\u2011", "\ufe63", "\uff0d"]


@st.composite
def decorated(draw: st.DrawFn) -> tuple[str, str]:
    """A table keyword as a person might send it, and the keyword it is."""
    written, expected = draw(st.sampled_from(sorted(KEYWORDS.items())))
    out: list[str] = []
    for char in written:
        if char == " ":
            run = draw(st.lists(st.sampled_from([" ", "\u00a0", "\t", *HYPHENS]), min_size=1))
            out.extend(run)
            continue
        char = draw(st.sampled_from([char, char.lower()]))
        if draw(st.booleans()):
            char = chr(ord(char) - 0x21 + 0xFF01)  # the full-width form
        out.append(char)
    for _ in range(draw(st.integers(0, 4))):
        out.insert(draw(st.integers(0, len(out))), draw(IGNORABLE))
    lead = draw(st.lists(st.sampled_from(WHITESPACE), max_size=3))
    tail = draw(st.lists(st.one_of(PUNCTUATION, st.sampled_from(WHITESPACE)), max_size=5))
    return "".join(lead + out + tail), expected


@given(decorated())
@example(("STOP\u2e3a", "stop"))  # TWO-EM DASH: punctuation, not a letter
def test_c13_decorated_keywords_are_the_keyword(case: tuple[str, str]) -> None:
    text, expected = case
    assert keyword(text) == expected


# --- Hypothesis: non-keywords are no keyword ---------------------------------------------

HANGUL_FILLERS = "\u115f\u1160\u3164\uffa0"  # letters (Lo) that show nothing
LETTERS_AND_DIGITS = st.characters(categories=["L", "N"]).filter(lambda c: c not in HANGUL_FILLERS)
WORDS = {w.replace(" ", "").lower() for w in KEYWORDS}


def looks_like_a_keyword(text: str) -> bool:
    """An independent, deliberately loose reading: the letters and digits of the text
    (after NFKC, case-folded, Hangul fillers left out) spell a keyword. Whatever the
    matcher accepts passes this; many texts it refuses do too."""
    kept = "".join(
        c
        for c in unicodedata.normalize("NFKC", text).casefold()
        if c.isalnum() and c not in HANGUL_FILLERS
    )
    return kept in WORDS


@given(st.sampled_from(sorted(KEYWORDS)), LETTERS_AND_DIGITS, st.integers(min_value=0))
def test_c13_a_keyword_with_a_letter_or_digit_added_is_no_keyword(
    written: str, extra: str, at: int
) -> None:
    at %= len(written) + 1
    text = written[:at] + extra + written[at:]
    if not looks_like_a_keyword(text):
        assert keyword(text) is None


@given(
    st.sampled_from(sorted(KEYWORDS)),
    st.sampled_from(sorted(KEYWORDS)),
    st.sampled_from(["", " ", "-", ", ", ". ", " - ", "\n", "\u200b"]),
)
def test_c13_two_keywords_together_are_no_keyword(first: str, second: str, between: str) -> None:
    assert keyword(first + between + second) is None


TEXT_ALPHABET = st.one_of(
    st.sampled_from("STOPALUNBCIEDQVKRYHFstopalunbciedqvkryhf"),
    st.sampled_from([" ", "-", ".", "!", "¿", "'", "1", "\u200b", "\u3000", "Ｓ"]),
    st.characters(),
)


@given(st.text(TEXT_ALPHABET, max_size=14))
def test_c13_text_that_does_not_spell_a_keyword_is_no_keyword(text: str) -> None:
    if not looks_like_a_keyword(text):
        assert keyword(text) is None


def test_c13_overline_at_the_end_is_no_punctuation_after_normalisation() -> None:
    """U+203E OVERLINE (and U+2017, U+FE49–U+FE4C) is punctuation as typed, but NFKC
    makes it a space and a combining mark: not dropped, so the text is no keyword."""
    assert keyword("STOP\u203e") is None
    assert keyword("STOP\u2017") is None


def test_c13_a_letter_that_normalises_to_a_space_splits_the_word() -> None:
    """U+037A GREEK YPOGEGRAMMENI is a space and a combining mark after NFKC."""
    assert keyword("S\u037aTOP") is None
    assert keyword("STOP\u037a") is None
