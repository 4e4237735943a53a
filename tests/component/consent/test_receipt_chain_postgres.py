"""C16 against the real PostgreSQL: receipts written by the consent use cases through
the PostgreSQL repository, then tampered with in the database the way someone with
write access could (edit a status, delete a row, swap two rows' order, replace a row
with one re-hashed without the chain, edit a history row): `verify` names the first
receipt that fails. An untouched chain of hundreds of acts verifies, and so does a
chain after an erase (P2), which leaves no personal value in the receipts table."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.consent import handlers
from services.consent.adapters.privacy import ConsentPrivacy
from services.consent.adapters.repository import receipt_chain
from services.consent.bootstrap import bootstrap
from services.consent.domain.receipts import digest, verify
from services.consent.ports import Key
from shared.contracts import ConsentCommand, PrivacyRequest
from shared.db import Database
from shared.privacy import subject_hash
from tests.component.repository_backends import migrated_database
from tests.unit.consent.test_handlers import SINGLE
from tests.unit.consent.test_receipts import SECRET

A = "acme"
T0 = datetime.now(UTC) - timedelta(days=2)
EMAIL, PHONE, EVIDENCE = "ada.lovelace@example.org", "+15555550142", "signed form #4711"


def keyed(kind: str, value: str) -> str:
    return subject_hash(SECRET, kind, value)


@pytest.fixture
async def db(stack: Any) -> AsyncIterator[Database]:
    async with migrated_database(stack.dsn, "consent") as database:
        yield database


def cmd(pid: str, n: int, action: str, **kw: Any) -> ConsentCommand:
    return ConsentCommand.model_validate(
        {
            "command_id": f"{pid}-c{n}",
            "account_id": A,
            "profile": {"id": pid, "email": EMAIL, "phone_number": PHONE},
            "action": action,
            "channel": kw.pop("channel", "email"),
            "consented_at": T0 + timedelta(seconds=n),
            **kw,
        }
    )


def acts(pid: str, n: int) -> list[ConsentCommand]:
    """`n` push acts that each apply: unsubscribe, then resubscribe with evidence, and so
    on. (Push: an email or SMS opt-out is also kept for the address or number, I1, and
    folded before every act of a batch, so one batch of them leaves fewer changes.)"""
    return [
        cmd(pid, i, "unsubscribe" if i % 2 == 0 else "resubscribe", evidence=EVIDENCE,
            notice="https://acme.example/privacy#v3", jurisdiction="EU", channel="push")
        for i in range(n)
    ]  # fmt: skip


async def apply(db: Database, commands: list[ConsentCommand], batch: int = 100) -> None:
    for start in range(0, len(commands), batch):
        async with db.uow() as uow:
            requests = [
                handlers.Request(A, c.profile.id, handlers.act_from_command(c), dict(c.profile))
                for c in commands[start : start + batch]
            ]
            await handlers.apply_acts(bootstrap(SINGLE)(uow), requests)
            await uow.commit()


async def check(db: Database, pid: str) -> Any:
    async with db.pool.acquire() as conn:
        chain = await receipt_chain(conn, Key(A, pid))
    return verify(pid, chain.receipts, chain.head, chain.history, keyed)


async def sql(db: Database, statement: str, *args: Any) -> None:
    async with db.pool.acquire() as conn:
        await conn.execute(statement, *args)


async def ids(db: Database, pid: str) -> list[tuple[int, str]]:
    async with db.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT id, receipt_id FROM consent_receipts WHERE account_id = $1"
            " AND profile_id = $2 ORDER BY sequence",
            A,
            pid,
        )
    return [(r["id"], r["receipt_id"]) for r in rows]


async def test_c16_an_untouched_chain_of_hundreds_of_acts_verifies(db: Database) -> None:
    await apply(db, acts("long", 300))
    got = await check(db, "long")
    assert got.ok and got.receipts == 300, got.to_json()


async def test_c15_c16_a_stored_receipt_is_the_text_its_hash_was_taken_over(
    db: Database,
) -> None:
    """The receipt column keeps the canonical bytes that were hashed, as they were: an
    auditor with read access checks every receipt with PostgreSQL alone. (A `jsonb`
    column kept its own form of them, keys reordered, which hashes to something else.)"""
    await apply(db, [*acts("plain", 5), cmd("plain", 9, "subscribe", evidence="naïve café ✓")])
    async with db.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT hash, encode(sha256(convert_to(receipt::text, 'UTF8')), 'hex') AS text_hash,"
            " receipt FROM consent_receipts WHERE account_id = $1 AND profile_id = 'plain'"
            " ORDER BY sequence",
            A,
        )
    assert len(rows) == 6
    assert [r["text_hash"] for r in rows] == [r["hash"] for r in rows]
    assert [r["hash"] for r in rows] == [digest(r["receipt"]) for r in rows]


async def test_c16_each_tampering_in_the_database_is_detected_and_named(db: Database) -> None:
    pids = ["edit", "delete", "swap", "rehash", "history", "tail"]
    await apply(db, [c for p in pids for c in acts(p, 6)])
    for p in pids:
        assert (await check(db, p)).ok

    # A receipt's status edited.
    (_, r3) = (await ids(db, "edit"))[2]
    await sql(
        db,
        "UPDATE consent_receipts"
        " SET receipt = jsonb_set(receipt::jsonb, '{status}', '\"subscribed\"')::json"
        " WHERE receipt_id = $1",
        r3,
    )
    f = (await check(db, "edit")).failure
    assert (f.receipt_id, f.sequence) == (r3, 3) and "edited" in f.reason

    # A row deleted.
    (_, r2), (_, r3) = (await ids(db, "delete"))[1:3]
    await sql(db, "DELETE FROM consent_receipts WHERE receipt_id = $1", r2)
    f = (await check(db, "delete")).failure
    assert (f.receipt_id, f.sequence) == (r3, 2) and "removed" in f.reason

    # Two rows' order swapped.
    (i2, r2), (i3, r3) = (await ids(db, "swap"))[1:3]
    await sql(
        db,
        "UPDATE consent_receipts SET sequence = CASE id WHEN $1 THEN 3 ELSE 2 END"
        " WHERE id IN ($1, $2)",
        i2,
        i3,
    )
    f = (await check(db, "swap")).failure
    assert (f.receipt_id, f.sequence) == (r3, 2) and "reordered" in f.reason

    # A row replaced by one re-hashed without the chain: the next one names it.
    async with db.pool.acquire() as conn:
        body = await conn.fetchval(
            "SELECT receipt FROM consent_receipts WHERE account_id = $1 AND profile_id = $2"
            " AND sequence = 4",
            A,
            "rehash",
        )
    body = {**body, "status": "subscribed", "method": "import"}
    await sql(
        db,
        "UPDATE consent_receipts SET receipt = $1::json, hash = $2 WHERE account_id = $3"
        " AND profile_id = 'rehash' AND sequence = 4",
        body,
        digest(body),
        A,
    )
    (_, r5) = (await ids(db, "rehash"))[4]
    f = (await check(db, "rehash")).failure
    assert (f.receipt_id, f.sequence) == (r5, 5) and "receipt 4" in f.reason

    # The last receipt re-hashed: the head kept apart names it.
    async with db.pool.acquire() as conn:
        body = await conn.fetchval(
            "SELECT receipt FROM consent_receipts WHERE profile_id = 'tail' AND sequence = 6"
        )
    body = {**body, "status": "unsubscribed"}
    await sql(
        db,
        "UPDATE consent_receipts SET receipt = $1::json, hash = $2 WHERE profile_id = 'tail'"
        " AND sequence = 6",
        body,
        digest(body),
    )
    f = (await check(db, "tail")).failure
    assert f.sequence == 6 and "head" in f.reason

    # A history row's status edited: named by the receipt that records it.
    (_, r2) = (await ids(db, "history"))[1]
    await sql(
        db,
        "UPDATE consent_history SET status = 'never_subscribed' WHERE receipt_id = $1",
        r2,
    )
    f = (await check(db, "history")).failure
    assert (f.receipt_id, f.sequence) == (r2, 2) and "history" in f.reason


async def test_c16_p2_after_an_erase_the_chain_verifies_and_no_personal_value_stays(
    db: Database,
) -> None:
    await apply(
        db, [*acts("gone", 5), cmd("gone", 9, "subscribe", channel="sms", evidence=EVIDENCE)]
    )
    before = await check(db, "gone")
    assert before.ok and before.receipts == 6
    async with db.pool.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT string_agg(t::text, ' ') FROM consent_receipts t WHERE profile_id = 'gone'"
        )
    assert EVIDENCE in stored and EMAIL in stored  # beside the receipts until erased
    request = PrivacyRequest(
        request_id="erase-1", account_id=A, profile_id="gone", action="erase",
        requested_at=datetime.now(UTC),
    )  # fmt: skip
    async with db.uow() as uow:
        await ConsentPrivacy(SECRET).erase(uow.conn, request, ["gone"])
        await uow.commit()
    after = await check(db, "gone")
    assert after.ok and after.receipts == 6 and after.head == before.head, after.to_json()
    async with db.pool.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT string_agg(t::text, ' ') FROM consent_receipts t WHERE profile_id = 'gone'"
        )
        heads = await conn.fetchval("SELECT count(*) FROM consent_receipt_heads")
    # "#4711", not "4711": the rows' hex hashes hold any four digits now and then.
    for value in (EMAIL, PHONE, PHONE.removeprefix("+"), EVIDENCE, "lovelace", "#4711"):
        assert value not in stored, value
    assert keyed("email", EMAIL) in stored and heads >= 1
    # The export (P3) carries the receipts.
    async with db.pool.acquire() as conn:
        exported = await ConsentPrivacy(SECRET).export(conn, A, ["gone"])
    assert [r["sequence"] for r in exported["receipts"]] == [1, 2, 3, 4, 5, 6]
    assert all(r["personal"] is None for r in exported["receipts"])
    json.dumps(exported, default=str)


async def test_c15_p3_the_export_carries_receipts_with_their_personal_values(
    db: Database,
) -> None:
    await apply(db, acts("kept", 2))
    async with db.pool.acquire() as conn:
        exported = await ConsentPrivacy(SECRET).export(conn, A, ["kept"])
    first = exported["receipts"][0]
    assert first["personal"]["evidence"] == EVIDENCE and first["hash"]
    assert first["notice"] == "https://acme.example/privacy#v3" and first["jurisdiction"] == "EU"


async def test_c15_c16_receipts_keep_every_character_as_written(db: Database) -> None:
    """The receipts are written by COPY in text format: ids, notice, actor and evidence
    with tabs, newlines, backslashes, quotes, `\\N` and non-ASCII text come back as
    written, in order, and the chain verifies."""
    awkward = 'a\tb\nc\\N\\d"e\r\u00e9\u2028\U0001f600 '
    pid = f"p{awkward}x"
    commands = [
        ConsentCommand.model_validate(
            {
                "command_id": f"c{i}{awkward}",
                "account_id": A,
                "profile": {"id": pid, "email": EMAIL, "phone_number": PHONE},
                "action": "unsubscribe" if i % 2 == 0 else "resubscribe",
                "channel": "push",
                "evidence": f"form {awkward}",
                "notice": f"https://acme.example/{awkward}",
                "actor": awkward,
                "consented_at": T0 + timedelta(seconds=i),
            }
        )
        for i in range(4)
    ]
    await apply(db, commands, batch=4)
    async with db.pool.acquire() as conn:
        chain = await receipt_chain(conn, Key(A, pid))
    assert [r.sequence for r in chain.receipts] == [1, 2, 3, 4]
    assert [r.body["act_id"] for r in chain.receipts] == [c.command_id for c in commands]
    assert {r.body["notice"] for r in chain.receipts} == {commands[0].notice}
    assert {r.body["actor"] for r in chain.receipts} == {awkward}
    assert {r.personal["evidence"] for r in chain.receipts} == {commands[0].evidence}
    assert all(r.profile_id == pid and digest(r.body) == r.hash for r in chain.receipts)
    got = verify(pid, chain.receipts, chain.head, chain.history, keyed)
    assert got.ok and got.receipts == 4, got.to_json()
