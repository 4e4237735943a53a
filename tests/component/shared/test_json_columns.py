"""JSON columns on the pool's connections: Python values in and out, and JSON already
serialised (`JsonText`) written as it is, by parameter, by array and by binary COPY."""

from __future__ import annotations

import json

from shared.db import Database
from shared.db.batches import copy_rows
from shared.db.pool import JsonText


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
