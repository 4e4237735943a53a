"""Hypothesis strategies shared by tests of different packages."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st


def json_values(
    text: st.SearchStrategy[str], max_leaves: int = 6, int_bits: int = 70
) -> st.SearchStrategy[Any]:
    """Any JSON value: nulls, booleans, integers beyond 64 bits, finite floats and `text`,
    nested in lists and objects keyed by `text`."""
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**int_bits), max_value=2**int_bits)
        | st.floats(allow_nan=False, allow_infinity=False, width=64)
        | text,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
        max_leaves=max_leaves,
    )
