"""End to end: data-subject requests (P1–P3) across the four services as processes.

One person goes through every path (double opt-in, SMS keywords, flows with a live
alert, a held review, a pending delay and a mail to the profile, a hard bounce); an
export returns their data from all four services; an erase by email leaves none of
their values in any table of any schema, in what the product publishes afterwards or
in the service logs; a later import of the same address is held until it carries
evidence of new consent.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from email import message_from_bytes
from email.policy import default as default_policy
from html.parser import HTMLParser
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.contracts import topics
from tests.conftest import Kafka, eventually, mail_to
from tests.e2e.support import call, services_for

pytestmark = pytest.mark.e2e

LINK = re.compile(r"(http://127\.0\.0\.1:\d+/links/[^\s\"<>]+)")
ACCOUNT = f"acct-priv-{uuid.uuid4().hex[:8]}"
KEY = f"key-{uuid.uuid4().hex}"
METRIC = "Privacy Checked"


services = services_for(ACCOUNT, KEY)


def api(stack, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """Call the consent service's API as the test account."""
    return call(stack.services["consent"].base_url, KEY, method, path, body)


class _Form(HTMLParser):
    """The first POST form of a page: its action and hidden fields."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.found = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form" and not self.found and (a.get("method") or "").lower() == "post":
            self.found, self.action = True, a.get("action")
        elif tag == "input" and self.found and a.get("type") == "hidden" and a.get("name"):
            self.fields[a["name"] or ""] = a.get("value") or ""


def follow(url: str) -> int:
    """Act on a link as the person does: open it, and press the page's button if it has
    one (pages act on POST only)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            page = r.read().decode(errors="replace")
            status = r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    form = _Form()
    form.feed(page)
    if not form.found:
        return status
    target = urllib.parse.urljoin(url, form.action) if form.action else url
    body = urllib.parse.urlencode(form.fields).encode()
    req = urllib.request.Request(target, data=body, method="POST")
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _text(mail) -> str:
    part = mail.get_body(preferencelist=("plain",))
    return part.get_content() if part else str(mail)


def person() -> dict[str, Any]:
    tag = uuid.uuid4().hex[:10]
    digits = str(int(tag, 16))[-7:].rjust(7, "7")
    return {
        "id": f"p-{tag}",
        "email": f"zelda.{tag}@example.org",
        "phone_number": f"+1555{digits}",
        "first_name": f"Zelda{tag[:4]}",
        "last_name": f"Quorn{tag[4:8]}",
        "properties": {"favourite": f"fav-{tag}"},
    }


def flow(flow_id: str, recipient: str, steps: list[dict]) -> dict:
    return {
        "account_id": ACCOUNT,
        "flow_id": flow_id,
        "version": 1,
        "name": flow_id,
        "trigger": {"type": "metric", "metric": METRIC},
        "profile_filter": None,
        "steps": steps,
    }


def alert(step_id: str, recipient: str, mode: str = "live", nxt: str | None = None) -> dict:
    return {
        "id": step_id,
        "type": "internal_alert",
        "mode": mode,
        "recipients": [recipient],
        "from_email": "alerts@acme.test",
        "subject": "About {{ person.email }}",
        "body": "{{ person.first_name }} {{ person.last_name }} said {{ event.note }}",
        "next": nxt,
    }


async def sql(stack, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(stack.dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def until(probe, timeout_s: float = 45.0):
    return await eventually(probe, timeout_s=timeout_s)


async def everything_published(stack) -> bool:
    rows = await sql(
        stack,
        "SELECT (SELECT count(*) FROM consent.outbox) + (SELECT count(*) FROM"
        " suppression.outbox) + (SELECT count(*) FROM flow_executor.outbox)"
        " + (SELECT count(*) FROM alert_dispatcher.outbox) AS n",
    )
    return rows[0]["n"] == 0


async def request_done(stack, request_id: str) -> dict:
    async def probe():
        status, body = api(stack, "GET", f"/accounts/{ACCOUNT}/privacy-requests/{request_id}")
        return body if status == 200 and body["status"] == "done" else None

    return await until(probe)


async def tables_holding(stack, values: list[str]) -> list[str]:
    """Every (schema.table, value) where a row's text or a bytea column holds a value;
    mail bodies are decoded (quoted-printable, base64) before searching."""
    found = []
    tables = await sql(
        stack,
        "SELECT table_schema, table_name FROM information_schema.tables"
        " WHERE table_type = 'BASE TABLE'"
        " AND table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
    byteas = await sql(
        stack,
        "SELECT table_schema, table_name, column_name FROM information_schema.columns"
        " WHERE data_type = 'bytea' AND table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
    for t in tables:
        name = f'"{t["table_schema"]}"."{t["table_name"]}"'
        for value in values:
            rows = await sql(
                stack, f"SELECT count(*) AS n FROM {name} x WHERE x::text ILIKE $1", f"%{value}%"
            )
            if rows[0]["n"]:
                found.append(f"{name}: {value}")
    for c in byteas:
        name = f'"{c["table_schema"]}"."{c["table_name"]}"'
        for r in await sql(stack, f'SELECT "{c["column_name"]}" AS v FROM {name}'):
            raw = bytes(r["v"] or b"")
            texts = [raw.decode(errors="replace")]
            if c["column_name"] == "content" and raw:
                mail = message_from_bytes(raw, policy=default_policy)
                texts += [
                    p.get_content() for p in mail.walk() if p.get_content_maintype() == "text"
                ]
                texts.append(str(mail.get("Subject", "")))
            for value in values:
                if any(value.lower() in t.lower() for t in texts):
                    found.append(f"{name}.{c['column_name']}: {value}")
    return found


async def end_offsets(bootstrap: str, names: list[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        parts = [
            TopicPartition(t, p) for t in names for p in consumer.partitions_for_topic(t) or ()
        ]
        return await consumer.end_offsets(parts) if parts else {}
    finally:
        await consumer.stop()


async def written_since(bootstrap: str, since: dict[TopicPartition, int]) -> list[bytes]:
    """Every record value published after `since` (end offsets taken earlier)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = list(since)
        consumer.assign(parts)
        end = await consumer.end_offsets(parts)
        out: list[bytes] = []
        for tp in parts:
            if end[tp] > since[tp]:
                consumer.seek(tp, since[tp])
        remaining = {tp for tp in parts if end[tp] > since[tp]}
        for tp in set(parts) - remaining:
            consumer.pause(tp)
        deadline = time.monotonic() + 15
        while remaining and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                for r in records:
                    out.append((r.key or b"") + b" " + (r.value or b""))
                    if r.offset + 1 >= end[tp]:
                        remaining.discard(tp)
                        consumer.pause(tp)
        assert not remaining, f"could not read {remaining}"
        return out
    finally:
        await consumer.stop()


async def test_p2_erase_leaves_no_trace_and_p3_export_covers_all_four_services(
    services, kafka: Kafka
) -> None:
    stack = services
    who = person()
    pid, email, phone = who["id"], who["email"], who["phone_number"]
    note = f"note-{uuid.uuid4().hex[:10]}"
    lead = f"lead-{uuid.uuid4().hex[:8]}@acme.test"
    other = f"other-{uuid.uuid4().hex[:8]}@acme.test"
    now = "2026-11-24T10:00:00Z"

    # Flows: a live alert then a mail to the profile; a held review; a long delay.
    flows = [
        flow(
            "live",
            lead,
            [
                alert("alert", lead, nxt="mail"),
                {"id": "mail", "type": "email", "subject": "Hello", "next": None},
            ],
        ),
        flow("held", lead, [alert("alert", other, mode="manual")]),
        flow(
            "later",
            lead,
            [
                {"id": "wait", "type": "delay", "seconds": 3600, "next": "alert"},
                alert("alert", other),
            ],
        ),
    ]
    for f in flows:
        await kafka.send(topics.FLOW_DEFINITIONS, f"{ACCOUNT}:{f['flow_id']}", f)
    await until(
        lambda: _async_rows(
            stack,
            "SELECT 1 FROM alert_dispatcher.flow_versions WHERE account_id = $1"
            " HAVING count(*) = 3",
            ACCOUNT,
        )
    )
    await until(lambda: everything_published(stack))
    invites = await until(lambda: _async(mail_to(stack, lead)))
    assert 200 in [follow(LINK.search(_text(m)).group(1)) for m in invites]

    # Double opt-in for email, SMS consent then STOP by keyword.
    await kafka.send(
        topics.CONSENT_COMMANDS,
        pid,
        {
            "command_id": f"c-{uuid.uuid4().hex}",
            "account_id": ACCOUNT,
            "profile": who,
            "action": "subscribe",
            "channel": "email",
            "method": "form",
            "consented_at": now,
        },
    )
    confirm = (await until(lambda: _async(mail_to(stack, email))))[0]
    assert follow(LINK.search(_text(confirm)).group(1)) == 200
    await kafka.send(
        topics.CONSENT_COMMANDS,
        pid,
        {
            "command_id": f"c-{uuid.uuid4().hex}",
            "account_id": ACCOUNT,
            "profile": who,
            "action": "subscribe",
            "channel": "sms",
            "method": "form",
            "evidence": f"signed form of {who['first_name']}",
            "consented_at": now,
        },
    )

    await until(
        lambda: _async(
            any(
                h["slot"].startswith("sms") and h["result"] == "applied"
                for h in api(stack, "GET", f"/accounts/{ACCOUNT}/profiles/{pid}/consent/history")[
                    1
                ]["history"]
            )
        )
    )
    await kafka.send(
        topics.SMS_INBOUND,
        phone,
        {
            "message_id": f"sms-{uuid.uuid4().hex}",
            "account_id": ACCOUNT,
            "phone_number": phone,
            "body": " stop ",
            "received_at": "2026-11-24T11:00:00Z",
        },
    )
    # An event into all three flows, then a hard bounce.
    for f in flows:
        await until(
            lambda f=f: _async_rows(
                stack,
                "SELECT 1 FROM flow_executor.flows WHERE account_id = $1 AND flow_id = $2",
                ACCOUNT,
                f["flow_id"],
            )
        )
    await kafka.send(
        topics.PROFILE_EVENTS,
        pid,
        {
            "event_id": f"e-{uuid.uuid4().hex}",
            "account_id": ACCOUNT,
            "metric": METRIC,
            "profile": who,
            "properties": {"note": note},
            "time": now,
        },
    )
    alert_mail = await until(
        lambda: _async([m for m in mail_to(stack, lead) if "About" in str(m["Subject"])])
    )
    assert note in _text(alert_mail[0])
    await until(
        lambda: _async_rows(
            stack,
            "SELECT 1 FROM flow_executor.reviews WHERE account_id = $1 AND status = 'in_review'",
            ACCOUNT,
        )
    )
    await kafka.send(
        topics.SUPPRESSION_COMMANDS,
        pid,
        {
            "command_id": f"s-{uuid.uuid4().hex}",
            "account_id": ACCOUNT,
            "profile": who,
            "action": "suppress",
            "reason": "hard_bounce",
            "occurred_at": "2026-11-24T12:00:00Z",
        },
    )
    await until(
        lambda: _async_rows(
            stack,
            "SELECT 1 FROM flow_executor.reachability WHERE account_id = $1 AND profile_id = $2"
            " AND jsonb_array_length(suppressions) > 0",
            ACCOUNT,
            pid,
        )
    )
    await until(
        lambda: _async_rows(
            stack,
            "SELECT 1 FROM consent.consent_history WHERE account_id = $1 AND profile_id = $2"
            " AND method = 'keyword'",
            ACCOUNT,
            pid,
        )
    )
    await until(lambda: everything_published(stack))

    # P3: one export document with the parts of all four services.
    status, filed = api(
        stack,
        "POST",
        f"/accounts/{ACCOUNT}/privacy-requests",
        {"action": "export", "profile_id": pid},
    )
    assert status == 202, filed
    done = await request_done(stack, filed["request_id"])
    doc = done["document"]
    assert doc["profile_ids"] == [pid]
    assert doc["consent"]["profiles"][0]["profile"]["email"] == email
    assert any(h["method"] == "keyword" for h in doc["consent"]["history"])
    assert [s["reason"] for s in doc["suppression"]["suppressions"]] == ["hard_bounce"]
    assert {r["flow_id"] for r in doc["flow_executor"]["runs"]} == {"live", "held", "later"}
    assert doc["flow_executor"]["reviews"][0]["status"] == "in_review"
    assert doc["alert_dispatcher"]["alerts"][0]["status"] == "sent"

    # P2: erase by email; then nothing of the person anywhere (the search does find
    # them before).
    await until(lambda: everything_published(stack))
    assert len(await tables_holding(stack, [email, note, who["last_name"]])) >= 5
    every = topics.INPUT_TOPICS + topics.OUTPUT_TOPICS
    outputs = [*topics.OUTPUT_TOPICS, *(topics.dlq(t) for t in every)]
    before = await end_offsets(stack.broker.bootstrap, outputs)
    status, filed = api(
        stack, "POST", f"/accounts/{ACCOUNT}/privacy-requests", {"action": "erase", "email": email}
    )
    assert status == 202
    done = await request_done(stack, filed["request_id"])
    assert set(done["services"]) == {"consent", "suppression", "flow_executor", "alert_dispatcher"}
    assert all(part["profile_ids"] == [pid] for part in done["services"].values())
    await until(lambda: everything_published(stack))

    values = [
        email,
        phone,
        phone[2:],
        who["first_name"],
        who["last_name"],
        who["properties"]["favourite"],
        note,
    ]
    assert await tables_holding(stack, values) == []
    later = await written_since(stack.broker.bootstrap, before)
    assert later, "the erase results were published"
    assert [v for v in later if any(x.lower().encode() in v.lower() for x in values)] == []
    logs = b"".join(p.read_bytes() for p in (stack.root / "logs").glob("*.log"))
    assert [x for x in values if x.lower().encode() in logs.lower()] == []

    # The audit trail is kept, anonymised; the erase is in it.
    history = api(stack, "GET", f"/accounts/{ACCOUNT}/profiles/{pid}/consent/history")[1]
    assert any(h["method"] == "keyword" for h in history["history"])
    assert history["history"][-1]["action"] == "erase"

    # A later import of the same address, as a new profile: held without evidence...
    newcomer = {"id": f"p-new-{uuid.uuid4().hex[:8]}", "email": email.upper()}
    mails_before = len(mail_to(stack, email))
    await kafka.send(
        topics.CONSENT_COMMANDS,
        newcomer["id"],
        {
            "command_id": f"c-{uuid.uuid4().hex}",
            "account_id": ACCOUNT,
            "profile": newcomer,
            "action": "subscribe",
            "channel": "email",
            "method": "import",
            "historical_import": True,
            "consented_at": "2026-11-24T13:00:00Z",
        },
    )
    held = await until(
        lambda: _async_rows(
            stack,
            "SELECT result FROM consent.consent_history WHERE account_id = $1 AND profile_id = $2",
            ACCOUNT,
            newcomer["id"],
        )
    )
    assert [r["result"] for r in held] == ["held_erased"]
    _, state = api(stack, "GET", f"/accounts/{ACCOUNT}/profiles/{newcomer['id']}/consent")
    assert "subscribed" not in json.dumps(state).replace("never_subscribed", "")
    # ...and applied once it carries evidence of new consent.
    await kafka.send(
        topics.CONSENT_COMMANDS,
        newcomer["id"],
        {
            "command_id": f"c-{uuid.uuid4().hex}",
            "account_id": ACCOUNT,
            "profile": newcomer,
            "action": "subscribe",
            "channel": "email",
            "method": "form",
            "evidence": "signed paper form 2026-11-24",
            "consented_at": "2026-11-24T14:00:00Z",
        },
    )
    await until(lambda: _async(len(mail_to(stack, email)) > mails_before))


async def _async(value):
    return value


async def _async_rows(stack, query: str, *args: Any):
    return await sql(stack, query, *args)
