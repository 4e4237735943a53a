"""F3 on PostgreSQL: the profile rows written from one JSON document per batch
(`PostgresFlowRepository.upsert_profiles`, with the records' profile dicts) are the rows
the general path wrote (four `unnest` arrays, each profile as its JSON text), whatever
the data and the order: several profiles per account, Unicode in every form (NFD,
zero-width, full-width), nested custom properties, big numbers, nulls, equal and
older timestamps, every arrival order, several batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic_core import to_json

from services.flow_executor.adapters import repository
from services.flow_executor.adapters.repository import PostgresFlowRepository
from services.flow_executor.ports import Observed
from shared.db.batches import rounds
from tests.strategies import json_values

T0 = datetime(2026, 11, 23, 10, tzinfo=UTC)


async def reference_upsert(conn: Any, rows: list[Observed]) -> None:
    """The general path's statement: the facts as four `unnest` arrays, each profile as
    its JSON text (`Profile.model_dump_json()`, as `messages.event_profiles` gives it)."""
    merged, changes = repository._MERGED_PROFILE, repository._CHANGES
    new, at = repository._NEW, repository._AT
    for batch in rounds(rows, repository._by_profile):
        await conn.execute(
            "WITH u AS (SELECT a, p, j::jsonb AS j, t FROM unnest($1::text[],"
            " $2::text[], $3::text[], $4::timestamptz[]) AS x(a, p, j, t)),"
            " changed AS (SELECT u.* FROM u LEFT JOIN profiles"
            " ON profiles.account_id = u.a AND profiles.profile_id = u.p"
            " WHERE profiles.profile_id IS NULL OR NOT (profiles.seen_at >= u.t"
            " AND profiles.profile = u.j)"
            f" AND {changes.format(new='u.j', at='u.t')})"
            " INSERT INTO profiles (account_id, profile_id, profile, seen_at)"
            " SELECT a, p, j, t FROM changed"
            " ON CONFLICT (account_id, profile_id) DO UPDATE"
            f" SET profile = {merged.format(new=new, at=at)},"
            " seen_at = greatest(profiles.seen_at, EXCLUDED.seen_at)"
            f" WHERE {changes.format(new=new, at=at)}",
            *repository._fact_columns(batch),
        )


TEXT = st.sampled_from(
    ["Ada", "Zoë", "Zoe\u0308", "Ａｄａ", "a\u200bb", " ", "", "ß", "\u00a0x", "日本", '"q"\\']
)
VALUES = json_values(TEXT, max_leaves=5)


@st.composite
def facts(draw: st.DrawFn) -> list[tuple[str, dict[str, Any], datetime]]:
    out = []
    for _ in range(draw(st.integers(1, 12))):
        pid = draw(st.sampled_from(["p-1", "p-2", "p\u0308", "ｐ-1"]))
        profile = {
            "id": pid,
            "email": draw(st.sampled_from([None, "ada@example.com", "zoë@bücher.example"])),
            "phone_number": draw(st.sampled_from([None, "+12125550100"])),
            "first_name": draw(st.none() | TEXT),
            "last_name": draw(st.none() | TEXT),
            "properties": draw(st.dictionaries(TEXT, VALUES, max_size=3)),
        }
        at = T0 + timedelta(seconds=draw(st.sampled_from([-60, 0, 0, 1, 30])))
        out.append((pid, profile, at))
    return out


async def _rows_after(pool: Any, batches: list[list[Observed]], fast: bool) -> list[Any]:
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            for batch in batches:
                if fast:
                    await PostgresFlowRepository(conn).upsert_profiles(batch)
                else:
                    await reference_upsert(conn, batch)
            return [
                tuple(r)
                for r in await conn.fetch(
                    "SELECT account_id, profile_id, profile::text, seen_at FROM profiles"
                    " WHERE account_id = 'prop' ORDER BY profile_id"
                )
            ]
        finally:
            await tx.rollback()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(facts(), st.randoms(use_true_random=False), st.integers(1, 3))
async def test_f3_profile_rows_from_one_document_are_the_general_paths_rows(
    pool: Any, found: list[tuple[str, dict[str, Any], datetime]], rnd: Any, parts: int
) -> None:
    rnd.shuffle(found)  # any arrival order
    cut = max(1, len(found) // parts)
    chunks = [found[i : i + cut] for i in range(0, len(found), cut)]
    as_dicts = [[Observed("prop", p, d, t) for p, d, t in c] for c in chunks]
    as_text = [[Observed("prop", p, to_json(d).decode(), t) for p, d, t in c] for c in chunks]
    expected = await _rows_after(pool, as_text, fast=False)
    assert await _rows_after(pool, as_dicts, fast=True) == expected
    # JSON text given to the repository (consent changes' profiles) lands the same.
    assert await _rows_after(pool, as_text, fast=True) == expected


async def test_f3_a_nan_in_a_profile_is_stored_as_null_as_the_general_path_stores_it(
    pool: Any,
) -> None:
    """The general path wrote `Profile.model_dump_json()`, where NaN and infinities are
    null; a record's dict still holds the float."""
    data = {"id": "p-1", "email": None, "properties": {"x": float("nan"), "y": float("inf")}}
    text = to_json(data, inf_nan_mode="null").decode()
    expected = await _rows_after(pool, [[Observed("prop", "p-1", text, T0)]], fast=False)
    assert await _rows_after(pool, [[Observed("prop", "p-1", data, T0)]], fast=True) == expected
    assert '"x": null' in expected[0][2]
