"""End to end: the four services as separate processes on the real broker, PostgreSQL and
SMTP capture. A flow with an internal alert is saved, its recipient confirms through the
emailed link, a matching event makes the executor request the alert, and the dispatcher
mails the confirmed recipient and publishes the outcome."""

from __future__ import annotations

import base64
import re
import urllib.request
import uuid

import asyncpg
import pytest

from shared.contracts import topics
from tests.conftest import Kafka, eventually, mail_to

pytestmark = pytest.mark.e2e

LINK = re.compile(r"(http://127\.0\.0\.1:\d+/links/[^\s\"<>]+)")


@pytest.fixture(scope="module")
def services(stack):
    stack.start_services()
    try:
        yield stack
    finally:
        stack.stop_services()


def flow(account: str, flow_id: str, recipients: list[str], version: int = 1, **step) -> dict:
    return {
        "account_id": account,
        "flow_id": flow_id,
        "version": version,
        "name": "NPS detractors",
        "trigger": {
            "type": "metric",
            "metric": "Left NPS Score",
            "filter": {"property": "score", "op": "lte", "value": 6},
        },
        "profile_filter": None,
        "steps": [
            {"id": "wait", "type": "delay", "seconds": 0, "next": "alert"},
            {
                "id": "alert",
                "type": "internal_alert",
                "mode": "live",
                "recipients": recipients,
                "from_email": "alerts@acme.test",
                "from_name": "Acme alerts",
                "subject": "Detractor: {{ person.email }}",
                "body": "{{ person.first_name }} scored {{ event.score }}",
                "next": None,
                **step,
            },
        ],
    }


def event(account: str, score: int = 3, event_id: str | None = None) -> dict:
    pid = f"p-{uuid.uuid4().hex[:8]}"
    return {
        "event_id": event_id or f"e-{uuid.uuid4().hex}",
        "account_id": account,
        "metric": "Left NPS Score",
        "profile": {"id": pid, "email": f"{pid}@example.com", "first_name": "Ada"},
        "properties": {"score": score},
        "time": "2026-11-23T10:00:00Z",
    }


def _body(mail) -> str:
    part = mail.get_body(preferencelist=("plain",))
    return part.get_content() if part else mail.get_content()


def click(url: str, method: str = "GET") -> int:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


async def saved_by_executor(stack, account: str, flow_id: str) -> None:
    """Wait until the executor stores the flow: topics are consumed independently, so an
    event published right after its flow could otherwise be read first."""

    async def stored() -> bool:
        conn = await asyncpg.connect(stack.dsn)
        try:
            return bool(
                await conn.fetchval(
                    "SELECT 1 FROM flow_executor.flows WHERE account_id = $1 AND flow_id = $2",
                    account,
                    flow_id,
                )
            )
        finally:
            await conn.close()

    await eventually(stored)


async def outcomes_for(kafka: Kafka, account: str) -> list[dict]:
    return [
        v
        for _, v in await kafka.read_all(topics.ALERT_OUTCOMES)
        if v and v["account_id"] == account
    ]


async def test_a5_confirmed_recipient_gets_alert_and_unconfirmed_is_skipped(
    services, kafka: Kafka, account: str
) -> None:
    lead = f"cx-lead-{account}@acme.test"
    await kafka.send(
        topics.FLOW_DEFINITIONS, f"{account}:nps", flow(account, "nps", [lead.upper()])
    )

    # A2/A3: one confirmation email with a signed link; A4: the click confirms.
    confirmations = await eventually(lambda: _async(mail_to(services, lead)))
    assert len(confirmations) == 1
    confirm_url = LINK.search(_body(confirmations[0])).group(1)
    assert "/links/recipients/confirm" in confirm_url
    assert click(confirm_url, "POST") == 200
    assert click(confirm_url, "POST") == 200  # idempotent
    assert click(confirm_url[:-3] + "AAA", "POST") == 400  # tampered token changes nothing

    # F2 + A5: a matching event makes the dispatcher mail the confirmed recipient.
    await saved_by_executor(services, account, "nps")
    ev = event(account, score=3)
    await kafka.send(topics.PROFILE_EVENTS, ev["profile"]["id"], ev)
    sent = await eventually(lambda: outcomes_for(kafka, account))
    assert sent[0]["type"] == "sent"
    assert sent[0]["recipients"] == [lead]
    assert sent[0]["profile_id"] == ev["profile"]["id"]
    alerts = [m for m in mail_to(services, lead) if "Detractor" in str(m["Subject"])]
    assert len(alerts) == 1
    mail = alerts[0]
    assert str(mail["Subject"]) == f"Detractor: {ev['profile']['email']}"
    assert "Ada scored 3" in _body(mail)
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/links/recipients/unsubscribe" in mail["List-Unsubscribe"]

    # A non-matching event (score 9 fails the trigger filter) produces nothing.
    await kafka.send(topics.PROFILE_EVENTS, "p-x", event(account, score=9))

    # A5: a flow whose recipient never confirmed: no mail, outcome skipped.
    other = f"nobody-{account}@acme.test"
    await kafka.send(
        topics.FLOW_DEFINITIONS,
        f"{account}:nps2",
        flow(account, "nps2", [other]) | {"trigger": {"type": "metric", "metric": "Left Review"}},
    )
    await eventually(lambda: _async(mail_to(services, other)))  # its confirmation, unclicked
    await saved_by_executor(services, account, "nps2")
    ev2 = event(account) | {"metric": "Left Review"}
    await kafka.send(topics.PROFILE_EVENTS, ev2["profile"]["id"], ev2)

    async def skipped():
        return [o for o in await outcomes_for(kafka, account) if o["type"] == "skipped"]

    skip = (await eventually(skipped))[0]
    assert skip["reason"] == "Skipped: no confirmed recipients"
    assert skip["recipients"] == []
    assert [m for m in mail_to(services, other) if "Detractor" in str(m["Subject"])] == []
    assert len(await outcomes_for(kafka, account)) == 2


async def test_x1_malformed_event_is_dead_lettered_and_next_is_processed(
    services, kafka: Kafka, account: str
) -> None:
    lead = f"lead-{account}@acme.test"
    await kafka.send(topics.FLOW_DEFINITIONS, f"{account}:nps", flow(account, "nps", [lead]))
    confirmation = (await eventually(lambda: _async(mail_to(services, lead))))[0]
    assert click(LINK.search(_body(confirmation)).group(1), "POST") == 200

    await saved_by_executor(services, account, "nps")
    bad = b'{"event_id": "bad-1", "account_id": "' + account.encode() + b'", "metric": 42'
    await kafka.send(topics.PROFILE_EVENTS, "p-bad", bad)
    ev = event(account)
    await kafka.send(topics.PROFILE_EVENTS, ev["profile"]["id"], ev)

    async def letters():
        return [
            v
            for _, v in await kafka.read_all(topics.dlq(topics.PROFILE_EVENTS))
            if v and v.get("original") and base64.b64decode(v["original"]) == bad
        ]

    letter = (await eventually(letters))[0]
    assert letter["source_topic"] == topics.PROFILE_EVENTS
    assert letter["source_offset"] >= 0
    assert "invalid" in letter["error"].lower()
    sent = await eventually(lambda: outcomes_for(kafka, account))
    assert [o["type"] for o in sent] == ["sent"]
    assert sent[0]["recipients"] == [lead]


async def _async(value):
    return value
