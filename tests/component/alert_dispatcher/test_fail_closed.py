"""No single input stops, jams or fools the alert dispatcher: template bombs (A7), header
injection, mails the SMTP client refuses, an outbox row the broker refuses, removed
recipients (A5), confirmations and the sending limit (A8). Each case checks that another
account's alert still goes out and that the service keeps running."""

from __future__ import annotations

import base64
import time
import uuid
from email import message_from_bytes
from typing import Any

import asyncpg
import httpx

from services.alert_dispatcher.handlers import REMOVED
from shared.contracts import topics
from tests.component.alert_dispatcher.conftest import (
    NAME,
    alerts_to,
    auth,
    confirmations_to,
    confirmed_recipients,
    flow,
    outcome_of,
    request,
    save_flow,
)
from tests.conftest import Kafka, eventually


async def _still_serving(stack: Any, api: httpx.AsyncClient) -> None:
    assert stack.services[NAME].proc.poll() is None, "the dispatcher exited"
    assert (await api.get("/healthz")).status_code == 200


async def _control_alert_goes_out(stack, kafka, api, account: str) -> None:
    """Another account's alert, sent after the attack, is delivered."""
    lead = f"lead-{account}@acme.test"
    await confirmed_recipients(stack, kafka, api, account, [lead])
    sent = request(account, [lead])
    await kafka.send(topics.ALERT_REQUESTS, sent.profile_id, sent)
    assert (await outcome_of(kafka, account, sent.alert_id))["type"] == "sent"
    await eventually(lambda: _async(alerts_to(stack, lead)), 20)


async def _async(value: Any) -> Any:
    return value


async def test_a7_template_bomb_at_send_fails_its_alert_and_nothing_else(
    dispatcher, kafka: Kafka, api: httpx.AsyncClient, acct: str, other_acct: str
) -> None:
    lead = f"lead-{acct}@acme.test"
    await confirmed_recipients(dispatcher, kafka, api, acct, [lead])
    bombs = {
        "power": request(acct, [lead], body="{{ event.n ** event.e }}"),
        "repeat": request(acct, [lead], body="{{ 'x' * event.e }}"),
        "loops": request(
            acct,
            [lead],
            body="{% for a in range(event.n) %}{% for b in range(event.n) %}"
            "{% endfor %}{% endfor %}",
        ),
    }
    for bomb in bombs.values():
        bomb = bomb.model_copy(update={"event": {"n": 100_000, "e": 10_000_000}})
        await kafka.send(topics.ALERT_REQUESTS, bomb.profile_id, bomb)
    # The event loop stays free while the bombs are defused: probes answer at once.
    started = time.monotonic()
    for _ in range(10):
        probe_start = time.monotonic()
        assert (await api.get("/healthz")).status_code == 200
        assert time.monotonic() - probe_start < 1.5
    assert time.monotonic() - started < 15
    for name, bomb in bombs.items():
        out = await outcome_of(kafka, acct, bomb.alert_id)
        assert out["type"] == "failed", name
        assert "budget" in out["reason"] or "over" in out["reason"], out["reason"]
    assert alerts_to(dispatcher, lead) == []
    await _control_alert_goes_out(dispatcher, kafka, api, other_acct)
    await _still_serving(dispatcher, api)


async def test_a7_include_import_extends_and_safe_are_refused_at_save_naming_the_tag(
    dispatcher, kafka: Kafka, acct: str
) -> None:
    lead = f"lead-{acct}@acme.test"
    cases = {
        "inc": ("{% include 'other' %}", "include"),
        "imp": ("{% import 'm' as m %}", "import"),
        "ext": ("{% extends 'base' %}", "extends"),
        "safe": ("{{ person.first_name|safe }}", "|safe"),
        "bomb": ("{{ 10**10000000 }}", "**"),
    }
    for flow_id, (body, _) in cases.items():
        await save_flow(kafka, flow(acct, flow_id, [lead], body=body))

    async def rejected() -> dict[str, str]:
        got = {}
        for _, v in await kafka.read_all(topics.dlq(topics.FLOW_DEFINITIONS)):
            if v and v.get("consumer") == "alert_dispatcher.flow-definitions":
                original = base64.b64decode(v["original"]).decode()
                for flow_id in cases:
                    if f'"flow_id": "{flow_id}"' in original and acct in original:
                        got[flow_id] = v["error"]
        return got if len(got) == len(cases) else {}

    errors = await eventually(rejected, 30, 0.3)
    for flow_id, (_, tag) in cases.items():
        assert tag in errors[flow_id], errors[flow_id]
    assert confirmations_to(dispatcher, lead) == []  # a refused version asks no one


async def test_header_injection_values_never_add_headers_and_the_alert_goes_out(
    dispatcher, kafka: Kafka, api: httpx.AsyncClient, acct: str
) -> None:
    lead = f"lead-{acct}@acme.test"
    await confirmed_recipients(dispatcher, kafka, api, acct, [lead])
    tricks = [
        ("Acme\nX-Injected: yes", "{{ person.first_name }}", "Ada\x0bX-Bad: 1"),
        ("Name: value", "Re: {{ person.first_name }}", "Name: value\x0c\x85X-Evil: 2"),
        ("Jöhn\r\nBcc: thief@evil.test", "{{ person.first_name }}\u2028X-Line: 3", "Zoë: x"),
    ]
    sent = []
    for from_name, subject, first in tricks:
        alert = request(acct, [lead], from_name=from_name, subject=subject)
        alert = alert.model_copy(
            update={"profile": alert.profile.model_copy(update={"first_name": first})}
        )
        await kafka.send(topics.ALERT_REQUESTS, alert.profile_id, alert)
        sent.append(alert)
    for alert in sent:
        assert (await outcome_of(kafka, acct, alert.alert_id))["type"] == "sent"
    mails = await eventually(
        lambda: _async(alerts_to(dispatcher, lead) if len(alerts_to(dispatcher, lead)) >= 3 else [])
    )
    allowed = {
        "from",
        "to",
        "subject",
        "message-id",
        "date",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "auto-submitted",
        "reply-to",
    }
    for mail in mails:
        raw = message_from_bytes(mail.as_bytes())
        extra = {k.lower() for k in raw} - allowed
        assert not extra, extra
        assert "thief@evil.test" not in str(raw.get_all("Bcc"))


async def test_a9_a_mail_the_smtp_client_refuses_fails_alone_and_the_worker_keeps_running(
    dispatcher, kafka: Kafka, api: httpx.AsyncClient, acct: str, other_acct: str
) -> None:
    """The issue's crash: a From with a space made aiosmtplib raise in the mail worker,
    which died. Now that mail fails with the reason and everything else flows."""
    lead = f"lead-{acct}@acme.test"
    await confirmed_recipients(dispatcher, kafka, api, acct, [lead])
    bad = request(acct, [lead])
    bad = bad.model_copy(
        update={"action": bad.action.model_copy(update={"from_email": "john doe@acme.test"})}
    )
    await kafka.send(topics.ALERT_REQUESTS, bad.profile_id, bad)
    out = await outcome_of(kafka, acct, bad.alert_id)
    assert out["type"] == "failed" and out["failed_recipients"] == [lead]
    await _control_alert_goes_out(dispatcher, kafka, api, other_acct)
    await _still_serving(dispatcher, api)


async def test_x_size_an_outbox_row_the_broker_refuses_is_dead_lettered_not_retried_forever(
    dispatcher, kafka: Kafka, api: httpx.AsyncClient, other_acct: str
) -> None:
    """A row over the producer's limit (as a 5 MB event once made) used to hold the relay
    and every account's outcomes behind it."""
    marker = f"jam-{uuid.uuid4().hex}"
    conn = await asyncpg.connect(dispatcher.dsn)
    try:
        await conn.execute(
            "INSERT INTO alert_dispatcher.outbox (topic, key, value, headers)"
            " VALUES ($1, $2, $3, '{}'::jsonb)",
            topics.ALERT_OUTCOMES,
            marker.encode(),
            b"{" + b" " * (2 * 1024 * 1024) + b"}",
        )
        await conn.execute("SELECT pg_notify('outbox_alert_dispatcher', '')")
    finally:
        await conn.close()

    async def lettered() -> list[dict[str, Any]]:
        return [
            v
            for k, v in await kafka.read_all(topics.dlq(topics.ALERT_OUTCOMES))
            if k == marker and v
        ]

    letter = (await eventually(lettered, 30, 0.3))[0]
    assert "MessageSizeTooLarge" in letter["error"] and letter["original_size"] > 2_000_000
    await _control_alert_goes_out(dispatcher, kafka, api, other_acct)


async def test_a5_a_recipient_removed_after_the_request_is_not_mailed(
    dispatcher, kafka: Kafka, api: httpx.AsyncClient, acct: str
) -> None:
    """A held or delayed alert carries the recipients of its time; the action now lists
    fewer. Only those still on it are mailed."""
    stays, goes = f"stays-{acct}@acme.test", f"goes-{acct}@acme.test"
    await confirmed_recipients(dispatcher, kafka, api, acct, [stays, goes])
    await save_flow(kafka, flow(acct, "nps", [stays], version=2))
    old = request(acct, [stays, goes])

    async def saved() -> bool:
        conn = await asyncpg.connect(dispatcher.dsn)
        try:
            rows = await conn.fetchval(
                "SELECT recipients FROM alert_dispatcher.alert_actions"
                " WHERE account_id = $1 AND flow_id = 'nps'",
                acct,
            )
            return rows == [stays]
        finally:
            await conn.close()

    await eventually(saved, 20)
    await kafka.send(topics.ALERT_REQUESTS, old.profile_id, old)
    out = await outcome_of(kafka, acct, old.alert_id)
    assert out["type"] == "sent" and out["recipients"] == [stays]
    assert alerts_to(dispatcher, goes) == []
    conn = await asyncpg.connect(dispatcher.dsn)
    try:
        why = await conn.fetchval(
            "SELECT error FROM alert_dispatcher.alert_deliveries"
            " WHERE alert_id = $1 AND email = $2",
            old.alert_id,
            goes,
        )
    finally:
        await conn.close()
    assert why == REMOVED


async def test_a8_a_sending_limit_of_zero_is_refused(
    dispatcher, api: httpx.AsyncClient, acct: str
) -> None:
    url = f"/accounts/{acct}/alert-settings"
    for bad in (0, -1, 10**30, "abc", True, None):
        r = await api.put(url, headers=auth(acct), json={"alert_send_limit_per_hour": bad})
        assert r.status_code in (400, 422), (bad, r.status_code)
        assert "alert_send_limit_per_hour" in r.json()["error"]
    r = await api.put(url, headers=auth(acct), json={"alert_send_limit_per_hour": 3})
    assert r.status_code == 200 and r.json()["alert_send_limit_per_hour"] == 3


async def test_a8_confirmation_mails_count_against_the_sending_limit(
    dispatcher, kafka: Kafka, api: httpx.AsyncClient, acct: str
) -> None:
    r = await api.put(
        f"/accounts/{acct}/alert-settings",
        headers=auth(acct),
        json={"alert_send_limit_per_hour": 2},
    )
    assert r.status_code == 200
    people = [f"new{i}-{acct}@acme.test" for i in range(5)]
    await save_flow(kafka, flow(acct, "many", people))

    async def all_five() -> list[Any]:
        got = [m for p in people for m in confirmations_to(dispatcher, p)]
        return got if len(got) >= 5 else []

    await eventually(all_five, 30)
    conn = await asyncpg.connect(dispatcher.dsn)
    try:
        windows = [
            r["sent"]
            for r in await conn.fetch(
                "SELECT sent FROM alert_dispatcher.send_windows WHERE account_id = $1", acct
            )
        ]
    finally:
        await conn.close()
    # Five confirmations at two per window: spread over three windows, never more.
    assert sum(windows) == 5 and max(windows) <= 2 and len(windows) >= 3, windows
