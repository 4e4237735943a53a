"""The consent service as a real process against the real broker, PostgreSQL and SMTP
(C1–C14, S3, X3, X5). Each test has its own account."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import httpx

from shared.contracts import topics
from shared.links import sign
from tests.component.consent.support import (
    Api,
    Tail,
    consent_cmd,
    headers,
    suppression_cmd,
)
from tests.conftest import Kafka, eventually, mail_to

CC = topics.CONSENT_CHANGES


def pid() -> str:
    return f"p-{uuid.uuid4().hex[:8]}"


async def events(tail: Tail, account: str, profile_id: str, n: int) -> list[dict]:
    async def probe():
        got = tail.of(CC, account_id=account, profile_id=profile_id)
        return got if len(got) >= n else None

    return await eventually(probe, timeout_s=20)


async def test_c1_c2_c9_subscribe_unsubscribe_with_history_and_events(
    services, api: Api, kafka: Kafka, tail: Tail, acct: str
) -> None:
    await api.settings(acct, email_double_opt_in=False)
    p = pid()
    first = consent_cmd(acct, p, method="form")
    await kafka.send(topics.CONSENT_COMMANDS, p, first)
    await kafka.send(topics.CONSENT_COMMANDS, p, first)  # redelivery: deduped (X2)
    await kafka.send(topics.CONSENT_COMMANDS, p, consent_cmd(acct, p, method="api"))  # repeat
    state = await api.wait_status(acct, p, "subscribed")
    assert state["channels"]["email"]["method"] == "form"
    assert state["channels"]["sms_marketing"]["status"] == "never_subscribed"  # C1
    await kafka.send(topics.CONSENT_COMMANDS, p, consent_cmd(acct, p, "unsubscribe"))
    await api.wait_status(acct, p, "unsubscribed")
    got = await events(tail, acct, p, 2)
    assert [e["type"] for e in got] == [
        "Subscribed to Email Marketing",
        "Unsubscribed from Email Marketing",
    ]
    assert got[0]["state"]["email"]["status"] == "subscribed"  # full state after change
    assert got[1]["state"]["opt_outs"] == ["group"]
    r = await api.consent.get(
        f"/accounts/{acct}/profiles/{p}/consent/history", headers=headers(acct)
    )
    hist = r.json()["history"]
    assert [(h["status"], h["method"], h["act_id"]) for h in hist] == [
        ("subscribed", "form", first["command_id"]),
        ("unsubscribed", "api", hist[1]["act_id"]),
    ]


async def test_c3_c4_historical_import_keeps_clamped_time_and_flag(
    services, api: Api, kafka: Kafka, tail: Tail, acct: str
) -> None:
    p = pid()
    await kafka.send(
        topics.CONSENT_COMMANDS,
        p,
        consent_cmd(
            acct,
            p,
            method="import",
            historical_import=True,
            consented_at="1985-03-01T00:00:00Z",
            list_id="vip",
        ),
    )
    state = await api.wait_status(acct, p, "subscribed")  # no double opt-in for imports
    assert state["channels"]["email"]["consented_at"] == "1990-01-01T00:00:00+00:00"
    got = await events(tail, acct, p, 2)
    assert {e["type"] for e in got} == {"Subscribed to List", "Subscribed to Email Marketing"}
    assert all(e["historical_import"] for e in got)


async def test_c4_live_subscribe_is_stamped_when_processed(
    services, api: Api, kafka: Kafka, acct: str
) -> None:
    await api.settings(acct, email_double_opt_in=False)
    p = pid()
    before = datetime.now(UTC)
    await kafka.send(
        topics.CONSENT_COMMANDS, p, consent_cmd(acct, p, consented_at="2001-01-01T00:00:00Z")
    )
    state = await api.wait_status(acct, p, "subscribed")
    stamped = datetime.fromisoformat(state["channels"]["email"]["consented_at"])
    assert stamped >= before - timedelta(seconds=1)


async def test_c5_sms_marketing_implies_transactional_and_unsubscribe_removes_both(
    services, api: Api, kafka: Kafka, tail: Tail, acct: str
) -> None:
    p = pid()
    await kafka.send(
        topics.CONSENT_COMMANDS,
        p,
        consent_cmd(acct, p, channel="sms", phone="+1 555 0100", method="form"),
    )
    state = await api.wait_status(acct, p, "subscribed", "sms_marketing")
    assert state["channels"]["sms_transactional"]["can_receive"] is True
    assert state["channels"]["sms_marketing"]["phone_number"] == "+15550100"
    await kafka.send(
        topics.CONSENT_COMMANDS,
        p,
        consent_cmd(acct, p, "unsubscribe", channel="sms", purpose="transactional"),
    )
    state = await api.wait_status(acct, p, "unsubscribed", "sms_marketing")
    assert state["channels"]["sms_transactional"]["status"] == "unsubscribed"
    got = await events(tail, acct, p, 2)
    assert [e["type"] for e in got] == ["Subscribed to SMS Marketing", "Unsubscribed from SMS"]


async def test_c6_new_phone_number_is_never_subscribed(
    services, api: Api, kafka: Kafka, acct: str
) -> None:
    p = pid()
    await kafka.send(
        topics.CONSENT_COMMANDS,
        p,
        consent_cmd(acct, p, channel="sms", phone="+15550100", method="form"),
    )
    await api.wait_status(acct, p, "subscribed", "sms_marketing")
    await kafka.send(
        topics.CONSENT_COMMANDS,
        p,
        consent_cmd(acct, p, channel="push", phone="+15550199", method="form"),
    )
    state = await api.wait_status(acct, p, "never_subscribed", "sms_marketing")
    assert state["phone_number"] == "+15550199"
    assert state["channels"]["sms_marketing"]["can_receive"] is False


async def test_c7_channels_are_independent(services, api: Api, kafka: Kafka, acct: str) -> None:
    p = pid()
    await kafka.send(topics.CONSENT_COMMANDS, p, consent_cmd(acct, p, channel="push"))
    state = await api.wait_status(acct, p, "subscribed", "push")
    assert state["channels"]["email"]["status"] == "never_subscribed"
    assert state["channels"]["sms_marketing"]["can_receive"] is False
    assert state["channels"]["push"]["can_receive"] is True


async def test_c8_double_opt_in_sends_confirmation_and_click_subscribes(
    services, stack, api: Api, kafka: Kafka, tail: Tail, acct: str
) -> None:
    p = pid()
    email = f"{p}@example.test"
    await kafka.send(
        topics.CONSENT_COMMANDS, p, consent_cmd(acct, p, method="form", list_id="news")
    )

    async def confirmation():
        return mail_to(stack, email)

    (mail,) = await eventually(confirmation, timeout_s=20)
    state = await api.state(acct, p)
    assert state["channels"]["email"]["status"] == "never_subscribed"  # unchanged until click
    assert state["pending_confirmations"][0]["list_id"] == "news"
    body = mail.get_body(("plain",)).get_content()
    url = re.search(r"http://\S+/links/consent/confirm\?token=\S+", body).group(0)
    async with httpx.AsyncClient() as client:
        token = parse_qs(urlparse(url).query)["token"][0]
        bad = await client.post(url.split("?")[0], params={"token": token[:-2] + "xx"})
        assert bad.status_code == 400  # C12: tampered
        assert (await client.post(url)).status_code == 200
        again = await client.post(url)
        assert again.status_code == 200
    state = await api.wait_status(acct, p, "subscribed")
    assert state["lists"] == {"news": "subscribed"}
    got = await events(tail, acct, p, 2)
    assert {e["type"] for e in got} == {"Subscribed to List", "Subscribed to Email Marketing"}
    assert len(tail.of(CC, account_id=acct, profile_id=p)) == 2  # a second click: nothing


async def test_c10_scoped_opt_out_and_resubscribe_at_that_level(
    services, api: Api, kafka: Kafka, tail: Tail, acct: str
) -> None:
    p = pid()
    await kafka.send(
        topics.CONSENT_COMMANDS,
        p,
        consent_cmd(acct, p, "unsubscribe", scope={"level": "client", "client_id": "news"}),
    )
    await kafka.send(
        topics.CONSENT_COMMANDS,
        p,
        consent_cmd(
            acct, p, "unsubscribe", scope={"level": "user", "client_id": "tax", "user_id": "bob"}
        ),
    )
    await events(tail, acct, p, 2)
    url = f"/accounts/{acct}/profiles/{p}/consent"
    h = headers(acct)
    r = await api.consent.get(url, params={"client_id": "news", "user_id": "ann"}, headers=h)
    assert r.json()["opt_outs"] == ["client:news", "user:tax/bob"]
    assert r.json()["channels"]["email"]["can_receive"] is False
    r = await api.consent.get(url, params={"client_id": "tax", "user_id": "ann"}, headers=h)
    assert r.json()["channels"]["email"]["can_receive"] is True
    r = await api.consent.post(
        url + "/resubscribe",
        headers=h,
        json={"scope": {"level": "client", "client_id": "news"}, "evidence": "call 2026-05-02"},
    )
    assert r.status_code == 202
    got = await events(tail, acct, p, 3)
    assert got[2]["type"] == "Subscribed to Email Marketing"
    assert got[2]["state"]["opt_outs"] == ["user:tax/bob"]
    assert got[2]["scope"] == "client:news"


async def test_c11_operator_resubscribe_needs_evidence(
    services, api: Api, kafka: Kafka, tail: Tail, acct: str
) -> None:
    p = pid()
    await kafka.send(topics.CONSENT_COMMANDS, p, consent_cmd(acct, p, "unsubscribe"))
    await api.wait_status(acct, p, "unsubscribed")
    await kafka.send(
        topics.CONSENT_COMMANDS, p, consent_cmd(acct, p, "resubscribe", method="manual")
    )
    (letter,) = await eventually(
        lambda: _async(tail.dead(topics.CONSENT_COMMANDS, p)), timeout_s=20
    )
    assert "evidence" in letter["error"]
    url = f"/accounts/{acct}/profiles/{p}/consent/resubscribe"
    r = await api.consent.post(url, headers=headers(acct), json={})
    assert r.status_code == 422 and "evidence" in r.json()["error"]
    assert await api.status(acct, p) == "unsubscribed"
    r = await api.consent.post(url, headers=headers(acct), json={"evidence": "form #42"})
    assert r.status_code == 202
    await api.wait_status(acct, p, "subscribed")
    got = await events(tail, acct, p, 2)
    assert got[1]["evidence"] == "form #42"


async def _async(value):
    return value


async def test_c12_unsubscribe_link_one_click_and_preference_centre(
    services, stack, api: Api, kafka: Kafka, tail: Tail, acct: str
) -> None:
    await api.settings(acct, email_double_opt_in=False)
    p = pid()
    await kafka.send(topics.CONSENT_COMMANDS, p, consent_cmd(acct, p, list_id="deals"))
    await api.wait_status(acct, p, "subscribed")
    r = await api.consent.get(f"/accounts/{acct}/profiles/{p}/links", headers=headers(acct))
    links = r.json()
    async with httpx.AsyncClient() as client:
        page = await client.get(links["preferences_url"])
        assert page.status_code == 200 and "deals" in page.text
        saved = await client.post(
            links["preferences_url"],
            content="lists_shown=deals",  # the box of the list unticked
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert saved.status_code == 200
        assert (await client.get(links["unsubscribe_url"])).status_code == 200  # page only
        assert await api.status(acct, p) == "subscribed"
        forged = sign(
            "another-secret",
            "consent-unsubscribe",
            {"a": acct, "p": p, "c": "email", "s": "group", "l": None},
        )
        base = links["unsubscribe_url"].split("?")[0]
        assert (await client.post(base, params={"token": forged})).status_code == 400
        assert await api.status(acct, p) == "subscribed"
        one_click = await client.post(
            links["unsubscribe_url"], content="List-Unsubscribe=One-Click"
        )
        assert one_click.status_code == 200
        await client.post(links["unsubscribe_url"], content="List-Unsubscribe=One-Click")
    state = await api.wait_status(acct, p, "unsubscribed")
    assert state["lists"] == {"deals": "unsubscribed"}
    got = await events(tail, acct, p, 5)
    assert [e["type"] for e in got[2:]] == [
        "Unsubscribed from List",
        "Unsubscribed from Email Marketing",
        "Clicked and Unsubscribed from Email",
    ]
    assert len(tail.of(CC, account_id=acct, profile_id=p)) == 5  # the repeat changed nothing


async def test_c13_sms_keywords_change_consent_and_get_replies(
    services, api: Api, kafka: Kafka, tail: Tail, acct: str
) -> None:
    await api.settings(acct, sms_reply_stop="Bye from Acme")
    p, phone = pid(), f"+1555{uuid.uuid4().int % 10**7:07d}"
    await kafka.send(
        topics.CONSENT_COMMANDS, p, consent_cmd(acct, p, channel="sms", phone=phone, method="form")
    )
    await api.wait_status(acct, p, "subscribed", "sms_marketing")

    async def sms(body: str) -> str:
        mid = uuid.uuid4().hex
        await kafka.send(
            topics.SMS_INBOUND,
            phone,
            {
                "message_id": mid,
                "account_id": acct,
                "phone_number": phone,
                "body": body,
                "received_at": datetime.now(UTC).isoformat(),
            },
        )
        return mid

    await sms("hello there")  # other text: nothing
    stop = await sms("  Stop ")
    await api.wait_status(acct, p, "unsubscribed", "sms_marketing")
    start = await sms("start")
    await api.wait_status(acct, p, "subscribed", "sms_marketing")
    help_ = await sms("INFO")

    async def replies():
        got = tail.of(topics.SMS_OUTBOUND, account_id=acct)
        return got if len(got) >= 3 else None

    got = await eventually(replies, timeout_s=20)
    assert [r["in_reply_to"] for r in got] == [stop, start, help_]
    assert got[0]["body"] == "Bye from Acme"
    assert "STOP" in got[2]["body"]


async def test_c14_read_side_export_segment_and_suppression_reasons(
    services, api: Api, kafka: Kafka, acct: str
) -> None:
    await api.settings(acct, email_double_opt_in=False)
    subscribed, never, suppressed = pid(), pid(), pid()
    await kafka.send(topics.CONSENT_COMMANDS, subscribed, consent_cmd(acct, subscribed))
    await kafka.send(topics.CONSENT_COMMANDS, never, consent_cmd(acct, never, channel="push"))
    await kafka.send(
        topics.CONSENT_COMMANDS, suppressed, consent_cmd(acct, suppressed, channel="push")
    )
    await api.wait_status(acct, subscribed, "subscribed")
    await api.wait_status(acct, suppressed, "subscribed", "push")
    r = await api.consent.post(
        f"/accounts/{acct}/profiles/{suppressed}/suppressions/suppress",
        headers=headers(acct),
        json={"reason": "manual"},
    )
    assert r.status_code == 202

    async def reasons():
        s = await api.state(acct, suppressed)
        return s if s["channels"]["email"]["suppressions"] else None

    state = await eventually(reasons, timeout_s=20)
    assert state["channels"]["email"]["suppressions"][0]["reason"] == "manual"
    assert state["channels"]["email"]["can_receive"] is False
    assert state["channels"]["email"]["status"] == "never_subscribed"
    r = await api.consent.get(f"/accounts/{acct}/segments/not-opted-in", headers=headers(acct))
    await api.wait_status(acct, never, "subscribed", "push")
    r = await api.consent.get(f"/accounts/{acct}/segments/not-opted-in", headers=headers(acct))
    assert [x["profile_id"] for x in r.json()["profiles"]] == [never]
    r = await api.consent.get(f"/accounts/{acct}/consent/export.csv", headers=headers(acct))
    rows = {line.split(",")[0]: line.split(",") for line in r.text.strip().splitlines()[1:]}
    assert rows[subscribed][2] == "subscribed"
    assert rows[suppressed][2] == "never_subscribed" and rows[suppressed][5] == "manual"
    assert rows[never][5] == ""


async def test_s3_spam_complaint_unsubscribes_email_not_a_suppression_reason(
    services, api: Api, kafka: Kafka, tail: Tail, acct: str
) -> None:
    await api.settings(acct, email_double_opt_in=False)
    p = pid()
    await kafka.send(topics.CONSENT_COMMANDS, p, consent_cmd(acct, p))
    await api.wait_status(acct, p, "subscribed")
    await kafka.send(
        topics.SUPPRESSION_COMMANDS, p, suppression_cmd(acct, p, "suppress", "spam_complaint")
    )
    state = await api.wait_status(acct, p, "unsubscribed")
    assert state["channels"]["email"]["method"] == "spam_complaint"
    assert state["channels"]["email"]["suppressions"] == []  # shown as consent status
    assert state["channels"]["email"]["can_receive"] is False
    got = await events(tail, acct, p, 2)
    assert got[1]["type"] == "Unsubscribed from Email Marketing"


async def test_x3_older_act_arriving_late_is_kept_in_history_only(
    services, api: Api, kafka: Kafka, acct: str
) -> None:
    await api.settings(acct, email_double_opt_in=False)
    p = pid()
    t = datetime.now(UTC)
    await kafka.send(
        topics.CONSENT_COMMANDS, p, consent_cmd(acct, p, "unsubscribe", consented_at=t.isoformat())
    )
    await kafka.send(
        topics.CONSENT_COMMANDS,
        p,
        consent_cmd(acct, p, "subscribe", consented_at=(t - timedelta(hours=1)).isoformat()),
    )

    async def two():
        r = await api.consent.get(
            f"/accounts/{acct}/profiles/{p}/consent/history", headers=headers(acct)
        )
        h = r.json()["history"]
        return h if len(h) == 2 else None

    hist = await eventually(two, timeout_s=20)
    assert [(h["action"], h["result"]) for h in hist] == [
        ("unsubscribe", "applied"),
        ("subscribe", "stale"),
    ]
    assert await api.status(acct, p) == "unsubscribed"


async def test_x5_api_is_scoped_by_account(
    services, stack, api: Api, kafka: Kafka, acct: str
) -> None:
    p = pid()
    await kafka.send(topics.CONSENT_COMMANDS, p, consent_cmd(acct, p, channel="push"))
    await api.wait_status(acct, p, "subscribed", "push")
    url = f"/accounts/{acct}/profiles/{p}/consent"
    assert (await api.consent.get(url)).status_code == 401
    assert (await api.consent.get(url, headers={"authorization": "Bearer nope"})).status_code == 401
    other = {"authorization": f"Bearer {stack.key_of('acme')}"}
    assert (await api.consent.get(url, headers=other)).status_code == 404
    r = await api.consent.post(url + "/unsubscribe", headers=other, json={"channel": "push"})
    assert r.status_code == 404
    r = await api.consent.get(f"/accounts/{acct}/consent/export.csv", headers=other)
    assert r.status_code == 404
    assert await api.status(acct, p, "push") == "subscribed"


async def test_x3a_list_at_client_scope_is_refused_with_its_reason_never_applied(
    services, api: Api, kafka: Kafka, tail: Tail, acct: str
) -> None:
    """X3a, C10: a list act at client scope cannot be applied exactly as asked: on Kafka
    it goes to the dead-letter topic with its reason and into history as `rejected`; on
    the API it is a 422; neither changes consent nor publishes an event."""
    await api.settings(acct, email_double_opt_in=False)
    p = pid()
    scope = {"level": "client", "client_id": "news"}
    odd = consent_cmd(acct, p, "unsubscribe", list_id="L", scope=scope)
    await kafka.send(topics.CONSENT_COMMANDS, p, odd)
    (letter,) = await eventually(
        lambda: _async(tail.dead(topics.CONSENT_COMMANDS, p)), timeout_s=20
    )
    assert "X3a" in letter["error"]
    r = await api.consent.post(
        f"/accounts/{acct}/profiles/{p}/consent/unsubscribe",
        headers=headers(acct),
        json={"channel": "email", "list_id": "L", "scope": scope},
    )
    assert r.status_code == 422 and "X3a" in r.json()["error"]
    # A valid act after them is the only one that changes anything.
    await kafka.send(topics.CONSENT_COMMANDS, p, consent_cmd(acct, p, "subscribe"))
    (only,) = await events(tail, acct, p, 1)
    assert only["type"] == "Subscribed to Email Marketing"
    assert only["state"]["lists"] == {} and only["state"]["opt_outs"] == []
    r = await api.consent.get(
        f"/accounts/{acct}/profiles/{p}/consent/history", headers=headers(acct)
    )
    results = [(h["action"], h["result"]) for h in r.json()["history"]]
    assert ("unsubscribe", "rejected") in results and ("subscribe", "applied") in results


async def test_c15_c16_c17_receipts_verify_and_explain_over_http_and_the_cli(
    services, api: Api, kafka: Kafka, tail: Tail, acct: str, monkeypatch
) -> None:
    """A profile's receipts, their verification and explain, from the running service
    over HTTP and through `consentflow consent receipts|verify|explain`."""
    import asyncio
    import json as _json

    from tools.operator_cli import main

    await api.settings(acct, email_double_opt_in=False)
    p = pid()
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    first = consent_cmd(
        acct, p, method="form", notice="https://acme.example/privacy#v3", jurisdiction="EU",
        consented_at=t0.isoformat(),
    )  # fmt: skip
    scoped = consent_cmd(
        acct, p, "unsubscribe", scope={"level": "client", "client_id": "c1"},
        consented_at=(t0 + timedelta(minutes=1)).isoformat(),
    )  # fmt: skip
    await kafka.send(topics.CONSENT_COMMANDS, p, first)
    await kafka.send(topics.CONSENT_COMMANDS, p, scoped)
    base = f"/accounts/{acct}/profiles/{p}/consent"

    async def receipts() -> list[dict] | None:
        r = await api.consent.get(f"{base}/receipts", headers=headers(acct))
        got = r.json()["receipts"]
        return got if len(got) == 2 else None

    got = await eventually(receipts, timeout_s=20)
    # In the order they were recorded (one batch may record a later opt-out first: I1).
    by_act = {r["act_id"]: r for r in got}
    assert set(by_act) == {first["command_id"], scoped["command_id"]}
    notice = by_act[first["command_id"]]
    assert (notice["notice"], notice["jurisdiction"]) == ("https://acme.example/privacy#v3", "EU")
    assert got[1]["previous_hash"] == got[0]["hash"]
    changes = await events(tail, acct, p, 2)
    assert {c["receipt_id"] for c in changes} == {r["receipt_id"] for r in got}

    r = await api.consent.get(f"{base}/verify", headers=headers(acct))
    assert r.json()["ok"] is True and r.json()["receipts"] == 2
    for where, blocked_by in (({}, first), ({"client_id": "c1"}, scoped)):
        r = await api.consent.get(
            f"{base}/explain", params={"channel": "email", **where}, headers=headers(acct)
        )
        answer = r.json()
        shown = await api.consent.get(base, params=where, headers=headers(acct))
        assert answer["can_receive"] == shown.json()["channels"]["email"]["can_receive"]
        assert answer["receipt_in_force"]["act_id"] == blocked_by["command_id"]
    assert answer["can_receive"] is False and answer["facts"]["opt_outs"] == ["client:c1"]

    monkeypatch.setenv("CONSENTFLOW_API_KEY", f"key-{acct}-for-tests")
    monkeypatch.setenv("CONSENTFLOW_CONSENT_API_URL", services.services["consent"].base_url)
    monkeypatch.setenv("CONSENTFLOW_ACCOUNT", acct)

    def cli(*args: str) -> int:
        return main(list(args))

    assert await asyncio.to_thread(cli, "consent", "verify", p) == 0
    assert await asyncio.to_thread(cli, "consent", "verify", "--all", "--json") == 0
    assert await asyncio.to_thread(cli, "consent", "receipts", p) == 0
    assert await asyncio.to_thread(cli, "consent", "explain", p, "--channel", "email") == 0
    # A tampered chain: verify names the receipt and exits 1.
    import asyncpg

    conn = await asyncpg.connect(services.dsn)
    try:
        await conn.execute(
            "UPDATE consent.consent_receipts"
            " SET receipt = jsonb_set(receipt::jsonb, '{method}', '\"import\"')::json"
            " WHERE receipt_id = $1",
            got[0]["receipt_id"],
        )
    finally:
        await conn.close()
    r = await api.consent.get(f"/accounts/{acct}/consent/verify", headers=headers(acct))
    (failed,) = r.json()["failed"]
    assert failed["failure"]["receipt_id"] == got[0]["receipt_id"]
    assert await asyncio.to_thread(cli, "consent", "verify", p) == 1
    _json.dumps(failed)


async def test_c15_an_operator_act_over_http_keeps_its_notice_and_jurisdiction(
    services, api: Api, acct: str
) -> None:
    """The operator API takes `notice` and `jurisdiction` as producers' commands do, and
    the act's receipt keeps them (C15)."""
    await api.settings(acct, email_double_opt_in=False)
    p = pid()
    r = await api.consent.post(
        f"/accounts/{acct}/profiles/{p}/consent/subscribe",
        headers=headers(acct),
        json={
            "channel": "email",
            "profile": {"email": f"{p}@example.test"},
            "notice": "in-store form v7",
            "jurisdiction": "US-CA",
        },
    )
    assert r.status_code == 202, r.text

    async def receipt() -> dict | None:
        got = await api.consent.get(
            f"/accounts/{acct}/profiles/{p}/consent/receipts", headers=headers(acct)
        )
        found = got.json().get("receipts") if got.status_code == 200 else None
        return found[0] if found else None

    made = await eventually(receipt, timeout_s=20)
    assert (made["notice"], made["jurisdiction"]) == ("in-store form v7", "US-CA")
