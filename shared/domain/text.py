"""What a person can see in a text (C11 evidence, C13 keywords). Pure.

One definition of the characters that show nothing, shared by `visible` (is there
evidence at all, C11) and `strip_invisible` (the text a keyword is matched on, C13):

- ignorable: Unicode's Default_Ignorable_Code_Point (`DEFAULT_IGNORABLE`, from
  DerivedCoreProperties.txt: soft hyphen, zero-width space and joiners, bidi marks and
  embeddings, word joiner, invisible operators, Hangul fillers, variation selectors, the
  byte order mark, tags…), every format character (category Cf), every control character
  (Cc) that is not whitespace, and U+2800 BRAILLE PATTERN BLANK;
- whitespace (Python's `str.isspace`: the Z* categories, tab, line breaks) shows nothing
  either, but it separates words, so `strip_invisible` keeps it inside the text and trims
  it at the ends;
- combining marks (M*), unassigned (Cn), private-use (Co) and surrogate (Cs) code points
  are not removed (a mark belongs to its letter; an unassigned code point may be a newer
  emoji), but they never count as visible on their own.

Visible: a letter, number, punctuation mark or symbol (L*, N*, P*, S*) that is not
ignorable.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_right
from itertools import chain

# Default_Ignorable_Code_Point, Unicode 14.0 (Python 3.11's unicodedata) to 17.0: the
# ranges of DerivedCoreProperties.txt, merged where adjacent. Inclusive.
DEFAULT_IGNORABLE: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD),  # SOFT HYPHEN
    (0x034F, 0x034F),  # COMBINING GRAPHEME JOINER
    (0x061C, 0x061C),  # ARABIC LETTER MARK
    (0x115F, 0x1160),  # HANGUL CHOSEONG FILLER..HANGUL JUNGSEONG FILLER
    (0x17B4, 0x17B5),  # KHMER VOWEL INHERENT AQ..AA
    (0x180B, 0x180F),  # MONGOLIAN FREE VARIATION SELECTORS, VOWEL SEPARATOR
    (0x200B, 0x200F),  # ZERO WIDTH SPACE..RIGHT-TO-LEFT MARK
    (0x202A, 0x202E),  # LEFT-TO-RIGHT EMBEDDING..RIGHT-TO-LEFT OVERRIDE
    (0x2060, 0x206F),  # WORD JOINER..NOMINAL DIGIT SHAPES (invisible operators, isolates)
    (0x3164, 0x3164),  # HANGUL FILLER
    (0xFE00, 0xFE0F),  # VARIATION SELECTOR-1..16
    (0xFEFF, 0xFEFF),  # ZERO WIDTH NO-BREAK SPACE (byte order mark)
    (0xFFA0, 0xFFA0),  # HALFWIDTH HANGUL FILLER
    (0xFFF0, 0xFFF8),  # reserved
    (0x1BCA0, 0x1BCA3),  # SHORTHAND FORMAT LETTER OVERLAP..UP STEP
    (0x1D173, 0x1D17A),  # MUSICAL SYMBOL BEGIN BEAM..END PHRASE
    (0xE0000, 0xE0FFF),  # tags, VARIATION SELECTOR-17..256, reserved
)
_STARTS = tuple(start for start, _ in DEFAULT_IGNORABLE)
BRAILLE_BLANK = "\u2800"


def default_ignorable(char: str) -> bool:
    """Whether `char` is a Default_Ignorable_Code_Point."""
    point = ord(char)
    at = bisect_right(_STARTS, point) - 1
    return at >= 0 and point <= DEFAULT_IGNORABLE[at][1]


def ignorable(char: str) -> bool:
    """A character that shows nothing and separates nothing: removed before matching."""
    category = unicodedata.category(char)
    return (
        category == "Cf"
        or (category == "Cc" and not char.isspace())
        or char == BRAILLE_BLANK
        or default_ignorable(char)
    )


def _shows(char: str) -> bool:
    return unicodedata.category(char)[0] in "LNPS" and not ignorable(char)


def _drop_ignorable(text: str) -> str:
    return "".join(c for c in text if not ignorable(c))


def strip_invisible(text: str) -> str:
    """`text` in Unicode compatibility form (NFKC: full-width letters and spaces become
    plain ones), with every ignorable character removed and the whitespace at both ends
    trimmed. Whitespace inside is kept."""
    # Removed before NFKC too, so that a character the removal brings together with its
    # neighbour composes as it would have without the ignorable between them.
    return _drop_ignorable(unicodedata.normalize("NFKC", _drop_ignorable(text))).strip()


def visible(text: str | None) -> bool:
    """Whether `text` has at least one visible character (C11 evidence): a letter,
    number, punctuation mark or symbol that is not ignorable, after Unicode
    normalisation. Whitespace, control, format, ignorable, unassigned, private-use and
    surrogate code points and combining marks alone are no evidence.

    A character also counts as typed: NFKC turns a few visible ones (spacing accents
    such as ´ ¨ ˜ ゛, the isolated forms of Arabic vowel signs) into a space and a
    combining mark, and they still show."""
    if not text:
        return False
    return any(_shows(c) for c in chain(text, strip_invisible(text)))
