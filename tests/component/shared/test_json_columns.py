"""JSON columns on the pool's connections: Python values in and out, and JSON already
serialised (`JsonText`) written as it is, by parameter, by array and by binary COPY."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.db import Database
from shared.db.batches import copy_rows
from shared.db.pool import JsonText
from tests.strategies import json_values


async def test_json_text_is_written_as_it_is_and_read_back_as_a_value(db: Database) -> None:
    receipt = {"b": [1, 2], "a": "Zoë", "n": None}
    raw = JsonText(json.dumps(receipt, sort_keys=True, ensure_ascii=False).encode())
    async with db.pool.acquire() as conn:
        await conn.execute("CREATE TABLE docs (id int, doc jsonb, plain json)")
        await conn.execute("INSERT INTO docs VALUES (1, $1, $2)", raw, raw)
        await conn.execute(
            "INSERT INTO docs SELECT 2, d, NULL FROM unnest($1::jsonb[]) d", [raw, receipt]
        )
        await copy_rows(conn, "docs", ("id", "doc", "plain"), [(3, raw, receipt)])
        rows = await conn.fetch("SELECT id, doc, plain FROM docs ORDER BY id, doc::text")
        assert [(r["id"], r["doc"]) for r in rows] == [
            (1, receipt),
            (2, receipt),
            (2, receipt),
            (3, receipt),
        ]
        assert rows[0]["plain"] == receipt and rows[3]["plain"] == receipt
        # The json column keeps the text it was given, byte for byte.
        assert await conn.fetchval("SELECT plain::text FROM docs WHERE id = 1") == raw.decode()


TEXT = st.text(st.characters(codec="utf-8"), max_size=6) | st.sampled_from(
    ["Zoe\u0308", "Ａｄａ", "a\u200bb", "\u00a0", '"', "\\", "\x00"]
)  # any Unicode (controls, astral), NFD, full-width, zero-width
VALUES = json_values(TEXT, max_leaves=8, int_bits=80)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(VALUES, min_size=1, max_size=5))
async def test_x1_json_columns_read_back_every_value_as_the_json_module_reads_postgresqls_text(
    db: Database, values: list[Any]
) -> None:
    """X1: what a JSON column holds (big numbers, any Unicode, nesting) reads back as
    the value `json.loads` makes of PostgreSQL's own text of it, for `jsonb` and `json`
    (`shared.db.pool`'s codecs read it with pydantic-core's parser). A NUL is not
    allowed in `jsonb` text, so it is replaced there as PostgreSQL would refuse it."""
    texts = [json.dumps(v) for v in values]
    async with db.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT t::json AS plain, replace(t, '\\u0000', '')::jsonb AS doc,"
            " t::json::text AS plain_text, replace(t, '\\u0000', '')::jsonb::text AS doc_text"
            " FROM unnest($1::text[]) WITH ORDINALITY AS u(t, n) ORDER BY n",
            texts,
        )
    for r in rows:
        assert r["plain"] == json.loads(r["plain_text"])
        assert r["doc"] == json.loads(r["doc_text"])


async def test_x1_a_json_column_holding_a_lone_surrogate_escape_still_reads(
    db: Database,
) -> None:
    """A `json` column keeps its text as given, and `\\ud800` alone is JSON that
    pydantic-core's parser refuses: the codec then reads it as `json.loads` does."""
    async with db.pool.acquire() as conn:
        value = await conn.fetchval("""SELECT '{"a": "\\ud800x"}'::json""")
    assert value == {"a": "\ud800x"}
