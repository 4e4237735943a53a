"""Sets of text pairs (account and profile, account and act id, ...) that a statement
joins on, given as one JSON parameter."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic_core import to_json


def json_pairs(name: str, first: str, second: str) -> str:
    """SQL for a set of text pairs given as one JSON parameter (`pairs_param`), as the
    relation `name(first, second)`: in place of `unnest` over two text arrays, whose
    every element asyncpg checks in Python (two ABC checks each) before encoding it."""
    return (
        f"(SELECT e->>0 AS {first}, e->>1 AS {second}"
        f" FROM json_array_elements($1::text::json) AS e) AS {name}"
    )


def pairs_param(values: Iterable[tuple[str, str]]) -> str:
    """The pairs of a `json_pairs` relation, as JSON text (`[[a, b], ...]`, one C call)."""
    return to_json(list(values)).decode()
