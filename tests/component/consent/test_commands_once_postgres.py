"""X2 for `consent-commands` on the real PostgreSQL, without an inbox row per command:
the batch consumer the service declares (parser, handler, outbox) is fed records
directly. A command applied before (redelivered in a later batch, also after its
profile was erased, P2) and a second copy in one batch change nothing more, publish
nothing more and add no history or receipt; a bad record is dead-lettered alone (X1).
Each applied act writes four rows: its consent row, one history row, one receipt and
its change in the outbox."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from services.consent.adapters.privacy import ConsentPrivacy
from services.consent.entrypoints import kafka
from services.consent.handlers import COMMANDS
from shared.contracts import PrivacyRequest, topics
from shared.db import Database
from shared.messaging.batches import BatchApplier, json_parser
from shared.privacy import hash_secret
from tests.component.repository_backends import migrated_database
from tests.unit.consent.test_handlers import SINGLE

A = "acme"


@pytest.fixture
async def db(stack: Any) -> AsyncIterator[Database]:
    async with migrated_database(stack.dsn, "consent") as database:
        yield database


class _Edge:
    """Keeps the `consent-commands` subscription as the service declares it."""

    def __init__(self) -> None:
        self.kw: dict[str, Any] = {}

    def publishes(self, *args: Any, **kw: Any) -> None:
        pass

    def subscribe(self, topic: str, payload: type, use_case: Any, **kw: Any) -> None:
        if topic == topics.CONSENT_COMMANDS:
            self.kw = {"payload": payload, "use_case": use_case, **kw}


def consumer(db: Database) -> BatchApplier:
    from services.consent.bootstrap import bootstrap

    edge = _Edge()
    kafka.declare(edge, bootstrap(SINGLE))  # type: ignore[arg-type]
    return BatchApplier(
        name=edge.kw["consumer"],
        db=db,
        parse=json_parser(edge.kw["payload"]),
        handler=edge.kw["use_case"],
        message_id=edge.kw.get("message_id"),
        topic=topics.CONSENT_COMMANDS,
        work=edge.kw["work"],
    )


def record(offset: int, value: dict[str, Any] | bytes) -> ConsumerRecord:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return ConsumerRecord(topics.CONSENT_COMMANDS, 0, offset, 0, 0, b"k", raw, None, 1, 1, [])


def command(n: int, pid: str, **kw: Any) -> dict[str, Any]:
    return {
        "command_id": f"cmd-{n}",
        "account_id": A,
        "profile": {"id": pid, "phone_number": f"+1555000{n:04d}"},
        "action": "subscribe",
        "channel": "sms",
        "method": "form",
        "consented_at": "2026-11-23T10:00:00Z",
        **kw,
    }


async def counts(db: Database) -> dict[str, int]:
    async with db.pool.acquire() as conn:
        return {
            "changes": await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE topic = $1", topics.CONSENT_CHANGES
            ),
            "dead": await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE topic = $1", topics.dlq(topics.CONSENT_COMMANDS)
            ),
            "history": await conn.fetchval("SELECT count(*) FROM consent_history"),
            "receipts": await conn.fetchval("SELECT count(*) FROM consent_receipts"),
            "states": await conn.fetchval("SELECT count(*) FROM consent_state"),
            "inbox": await conn.fetchval(
                "SELECT count(*) FROM processed_messages WHERE consumer = $1", COMMANDS
            ),
        }


async def test_x2_a_redelivered_batch_and_a_copy_within_a_batch_change_nothing_more(
    db: Database,
) -> None:
    apply = consumer(db)
    batch = (
        record(0, command(1, "p1")),
        record(1, command(2, "p2")),
        record(2, command(1, "p1")),  # the same command again in the batch
        record(3, b"{not json"),  # X1: dead-lettered alone
    )
    await apply.handle(batch)
    first = await counts(db)
    assert first == {
        "changes": 2, "dead": 1, "history": 2, "receipts": 2, "states": 2, "inbox": 0,
    }  # fmt: skip
    await apply.handle(batch[:3])  # redelivered after a restart
    await apply.handle((record(9, command(2, "p2")),))  # and alone
    assert await counts(db) == first


async def test_x2_p2_a_command_applied_before_its_profile_was_erased_is_not_applied_again(
    db: Database,
) -> None:
    apply = consumer(db)
    batch = (record(0, command(7, "gone", evidence="signed form #7")),)
    await apply.handle(batch)
    request = PrivacyRequest(
        request_id="erase-1", account_id=A, profile_id="gone", action="erase",
        requested_at=datetime.now(UTC),
    )  # fmt: skip
    async with db.uow() as uow:
        await ConsentPrivacy(hash_secret(SINGLE)).erase(uow.conn, request, ["gone"])
        await uow.commit()
    before = await counts(db)
    await apply.handle(batch)
    assert await counts(db) == before  # no state, history, receipt or change again
    assert before["states"] == 0
