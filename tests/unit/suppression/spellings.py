"""Hypothesis strategies for I1: one email address (or phone number) in the many
spellings that name it. Every spelling drawn for an address has the same
`email_identity` (`phone_identity`) as the address; the tests built on them check that
whatever is recorded under one spelling holds under every other."""

from __future__ import annotations

import unicodedata

import idna
from hypothesis import strategies as st

LOCAL = "abcdelnorsäåñü0123456789"
LABELS = ["bücher", "ålesund", "mañana", "example", "straat", "köln"]
TLDS = ["de", "test", "no"]
BLANKS = st.sampled_from(["", " ", "  "])

# (local part, domain) of one address, in lower case NFC.
ADDRESSES = st.tuples(
    st.text(alphabet=LOCAL, min_size=1, max_size=12),
    st.builds(lambda label, tld: f"{label}.{tld}", st.sampled_from(LABELS), st.sampled_from(TLDS)),
)


@st.composite
def spelling(draw: st.DrawFn, address: tuple[str, str]) -> str:
    """One spelling of `address`: each letter's case, NFC or NFD, the domain in Unicode
    or in IDNA (punycode) form, blanks around it."""
    local, domain = address
    if draw(st.booleans()):
        domain = idna.encode(domain, uts46=True).decode("ascii")
    text = "".join(ch.upper() if draw(st.booleans()) else ch for ch in f"{local}@{domain}")
    text = unicodedata.normalize(draw(st.sampled_from(["NFC", "NFD"])), text)
    return draw(BLANKS) + text + draw(BLANKS)


def spellings(n: int = 2) -> st.SearchStrategy[list[str]]:
    """`n` spellings of one drawn address."""
    return ADDRESSES.flatmap(lambda a: st.lists(spelling(a), min_size=n, max_size=n))


# One number, as producers write it: E.164 or the international form with blanks,
# dashes and brackets.
@st.composite
def phone_spelling(draw: st.DrawFn, line: int) -> str:
    digits = f"{line:04d}"
    form = draw(
        st.sampled_from(
            [
                "+1212555{d}",
                "+1 212 555 {d}",
                "+1 (212) 555-{d}",
                "+1-212-555-{d}",
                " +1 212.555.{d} ",
            ]
        )
    )
    return form.format(d=digits)


PHONE_SPELLINGS = st.integers(100, 199).flatmap(
    lambda line: st.lists(phone_spelling(line), min_size=2, max_size=2)
)
