"""I1 and P1/P2 in the suppression service against the real PostgreSQL (and, for the
first test, the real broker with the consent service reading `suppression-changes`):
one address, however spelled, is one person."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import UTC, datetime, timedelta

from aiokafka import ConsumerRecord

from services.suppression import handlers
from services.suppression.adapters.privacy import SuppressionPrivacy
from services.suppression.bootstrap import bootstrap
from shared.contracts import PrivacyRequest, SuppressionCommand, topics
from shared.received import Received, Trace
from shared.settings import Settings
from tests.component.consent.support import Api, Tail, headers, suppression_cmd
from tests.component.repository_backends import migrated_database
from tests.conftest import Kafka, eventually

NFC = "Ada@Bücher.de"
NFD = unicodedata.normalize("NFD", " ADA@BÜCHER.DE ")
PUNY = "ada@xn--bcher-kva.de"


async def test_i1_a_bounce_of_one_profile_blocks_every_profile_carrying_the_address(
    services, api: Api, kafka: Kafka, tail: Tail, acct: str
) -> None:
    local = f"i1-{uuid.uuid4().hex[:6]}"
    known, bounced, later = (f"s-{uuid.uuid4().hex[:8]}" for _ in range(3))
    spelled = {
        known: f"{local}@xn--bcher-kva.de",
        bounced: f"{local.upper()}@Bücher.de",
        later: unicodedata.normalize("NFD", f"{local}@BÜCHER.DE"),
    }

    def command(pid: str, action: str, reason: str) -> dict:
        c = suppression_cmd(acct, pid, action, reason)
        c["profile"]["email"] = spelled[pid]
        return c

    await kafka.send(topics.SUPPRESSION_COMMANDS, known, command(known, "suppress", "delivered"))

    async def seen() -> bool:
        r = await api.suppression.get(
            f"/accounts/{acct}/profiles/{known}/suppressions", headers=headers(acct)
        )
        return r.status_code == 200

    await eventually(seen, timeout_s=20)
    await kafka.send(
        topics.SUPPRESSION_COMMANDS, bounced, command(bounced, "suppress", "hard_bounce")
    )

    async def blocked(pid: str):
        async def probe():
            s = await api.state(acct, pid)
            return s if s and not s["channels"]["email"]["can_receive"] else None

        return await eventually(probe, timeout_s=20)

    state = await blocked(known)
    assert state["channels"]["email"]["suppressions"]
    changes = await eventually(lambda: _of(tail, acct, known, 1), timeout_s=20)
    assert [c["reason"] for c in changes] == ["hard_bounce"]
    # A profile first seen afterwards, under a third spelling, inherits the bounce.
    await kafka.send(topics.SUPPRESSION_COMMANDS, later, command(later, "suppress", "delivered"))
    await blocked(later)
    # Lifting the address under one spelling lifts it for every profile.
    await kafka.send(
        topics.SUPPRESSION_COMMANDS, later, command(later, "unsuppress", "hard_bounce")
    )
    for pid in (known, bounced, later):

        async def reachable(pid: str = pid):
            s = await api.state(acct, pid)
            return s if s and s["channels"]["email"]["can_receive"] else None

        await eventually(reachable, timeout_s=20)
    got = await eventually(lambda: _of(tail, acct, None, 6), timeout_s=20)
    ids = [c["change_id"] for c in got]
    assert len(ids) == len(set(ids)) == 6


async def _of(tail: Tail, acct: str, pid: str | None, n: int) -> list[dict]:
    match = {"account_id": acct} | ({"profile_id": pid} if pid else {})
    got = tail.of(topics.SUPPRESSION_CHANGES, **match)
    return got if len(got) >= n else []


SETTINGS = Settings(soft_bounce_limit=7)


def _received(message, topic: str) -> Received:
    record = ConsumerRecord(topic, 0, 1, 0, 0, b"k", message.to_bytes(), None, 1, 1, [])
    return Received(message, record, Trace(correlation_id=uuid.uuid4().hex))


async def _store(db, pid: str, email: str | None, phone: str | None) -> None:
    profile = {"id": pid, "email": email, "phone_number": phone, "first_name": "Ada"}
    c = SuppressionCommand.model_validate(
        {
            "command_id": uuid.uuid4().hex,
            "account_id": "acme",
            "profile": profile,
            "action": "suppress",
            "reason": "manual",
            "channel": "sms" if phone and not email else "email",
            "occurred_at": datetime.now(UTC) - timedelta(minutes=1),
        }
    )
    async with db.uow() as uow:
        work = bootstrap(SETTINGS)(uow)
        await handlers.on_commands([_received(c, topics.SUPPRESSION_COMMANDS)], work)
        await uow.commit()


def _request(action: str, **named: str) -> PrivacyRequest:
    return PrivacyRequest.model_validate(
        {
            "request_id": uuid.uuid4().hex,
            "account_id": "acme",
            "action": action,
            "requested_at": datetime.now(UTC),
            **named,
        }
    )


async def test_p1_p2_a_request_finds_the_person_by_any_spelling(stack) -> None:
    privacy = SuppressionPrivacy()
    async with migrated_database(stack.dsn, "suppression") as db:
        await _store(db, "p-nfc", NFC, None)
        await _store(db, "p-puny", PUNY, None)
        await _store(db, "p-phone", None, "+12125550142")
        await _store(db, "p-other", "ada@example.test", "+12125550143")
        async with db.pool.acquire() as conn:
            for spelling in (NFC, NFD, PUNY, "  aDa@bücher.DE"):
                found = await privacy.resolve(conn, _request("export", email=spelling))
                assert found == ["p-nfc", "p-puny"], spelling
            for spelling in ("+1 (212) 555-0142", " +1 212 555 0142 ", "+1-212-555-0142"):
                found = await privacy.resolve(conn, _request("export", phone_number=spelling))
                assert found == ["p-phone"], spelling
            # A row not saved since migration 0003 keeps a Unicode domain in its key.
            await conn.execute(
                "UPDATE suppression_profiles SET email_key = 'ada@bücher.de'"
                " WHERE profile_id = 'p-nfc'"
            )
            assert await privacy.resolve(conn, _request("export", email=NFD)) == [
                "p-nfc",
                "p-puny",
            ]
            request = _request("erase", email=NFD)
            ids = await privacy.resolve(conn, request)
            await privacy.erase(conn, request, ids)
            rows = await conn.fetch(
                "SELECT profile_id, profile, email_key FROM suppression_profiles"
                " ORDER BY profile_id"
            )
        erased = {r["profile_id"]: r for r in rows if r["profile_id"] in ("p-nfc", "p-puny")}
        assert all(r["email_key"] is None and "email" not in r["profile"] for r in erased.values())
        kept = [r for r in rows if r["profile_id"] == "p-other"]
        assert kept[0]["email_key"] == "ada@example.test"
