"""C11: evidence is at least one visible character after Unicode normalisation;
whitespace, zero-width, format and other invisible characters alone are no evidence."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.text import default_ignorable, strip_invisible, visible

# Default_Ignorable_Code_Point as listed in DerivedCoreProperties.txt, written out here
# independently of the module's table.
IGNORABLE_POINTS = frozenset(
    point
    for first, last in [
        (0x00AD, 0x00AD),
        (0x034F, 0x034F),
        (0x061C, 0x061C),
        (0x115F, 0x1160),
        (0x17B4, 0x17B5),
        (0x180B, 0x180F),
        (0x200B, 0x200F),
        (0x202A, 0x202E),
        (0x2060, 0x206F),
        (0x3164, 0x3164),
        (0xFE00, 0xFE0F),
        (0xFEFF, 0xFEFF),
        (0xFFA0, 0xFFA0),
        (0xFFF0, 0xFFF8),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0000, 0xE0FFF),
    ]
    for point in range(first, last + 1)
)

INVISIBLE = {
    "empty": "",
    "space": " ",
    "tab and line breaks": "\t\r\n",
    "zero-width space": "\u200b",
    "zero-width joiner and non-joiner": "\u200d\u200c",
    "word joiner": "\u2060",
    "byte order mark": "\ufeff",
    "no-break space": "\u00a0",
    "ideographic space": "\u3000",
    "Hangul filler": "\u3164",
    "halfwidth Hangul filler": "\uffa0",
    "Hangul choseong and jungseong fillers": "\u115f\u1160",
    "soft hyphen": "\u00ad",
    "combining grapheme joiner": "\u034f",
    "combining mark alone": "\u0301",
    "combining marks on a space": " \u0301\u0308",
    "right-to-left override": "\u202e",
    "variation selector": "\ufe0f",
    "tag characters": "\U000e0041\U000e007f",
    "braille pattern blank": "\u2800",
    "null and bell": "\x00\x07",
    "line and paragraph separators": "\u2028\u2029",
    "private use": "\ue000",
    "unassigned": "\u0378",
    "mixed": " \u200b\u3000\u2060\ufeff\u00a0\u3164\n",
}
VISIBLE = {
    "letter": "a",
    "digit": "1",
    "check mark": "✓",
    "corner brackets": "「」",
    "letter among invisible ones": "\u200b\u3000x\ufeff",
    "full-width letter": "Ａ",
    "accented letter, decomposed": "e\u0301",
    "dot": ".",
    "emoji": "🙂",
    "Han": "同意",
    "spacing acute accent": "´",
    "Greek ypogegrammeni": "\u037a",
}


@pytest.mark.parametrize("text", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_c11_invisible_text_is_no_evidence(text: str) -> None:
    assert not visible(text)


def test_c11_missing_text_is_no_evidence() -> None:
    assert not visible(None)


@pytest.mark.parametrize("text", VISIBLE.values(), ids=VISIBLE.keys())
def test_c11_visible_text_is_evidence(text: str) -> None:
    assert visible(text)


@pytest.mark.parametrize(
    ("text", "stripped"),
    [
        (" \u200bＳＴＯＰ\u2060 \n", "STOP"),
        ("\ufeffopt\u00a0out\u3000", "opt out"),
        ("S\u00adT\u200dOP", "STOP"),
        ("\u3164", ""),
        ("a\tb", "a\tb"),
        ("e\u200b\u0301", "é"),
    ],
)
def test_c11_strip_invisible_normalises_removes_and_trims(text: str, stripped: str) -> None:
    assert strip_invisible(text) == stripped


def test_c11_default_ignorable_table_is_unicodes() -> None:
    found = [p for p in range(0x110000) if default_ignorable(chr(p))]
    assert found == sorted(IGNORABLE_POINTS)


invisible_chars = st.one_of(
    st.characters(categories=["Zs", "Zl", "Zp", "Cc", "Cf", "Co", "Cn", "Cs", "Mn", "Mc", "Me"]),
    st.sampled_from(sorted(chr(p) for p in IGNORABLE_POINTS)),
    st.just("\u2800"),
)
invisible_text = st.lists(invisible_chars, max_size=12).map("".join)


def _shows_independently(char: str) -> bool:
    return (
        unicodedata.category(char)[0] in "LN"
        and ord(char) not in IGNORABLE_POINTS
        and char != "\u2800"
    )


@given(invisible_text)
def test_c11_text_of_invisible_characters_only_is_never_evidence(text: str) -> None:
    assert not visible(text)


@given(
    invisible_text,
    st.characters(categories=["L", "N"]).filter(_shows_independently),
    st.integers(min_value=0),
)
def test_c11_one_letter_or_number_among_invisible_ones_is_evidence(
    text: str, char: str, at: int
) -> None:
    at %= len(text) + 1
    assert visible(text[:at] + char + text[at:])
