"""The suppression service as a real process against the real broker and PostgreSQL,
with the consent service beside it (S1–S6, C11, X5). Each test has its own account."""

from __future__ import annotations

import uuid

from shared.contracts import topics
from tests.component.consent.support import (
    Api,
    Tail,
    consent_cmd,
    headers,
    suppression_cmd,
)
from tests.conftest import Kafka, eventually

SC = topics.SUPPRESSION_CHANGES


def pid() -> str:
    return f"s-{uuid.uuid4().hex[:8]}"


async def suppressions(api: Api, account: str, profile_id: str) -> dict | None:
    r = await api.suppression.get(
        f"/accounts/{account}/profiles/{profile_id}/suppressions", headers=headers(account)
    )
    return r.json() if r.status_code == 200 else None


async def changes(tail: Tail, account: str, profile_id: str, n: int) -> list[dict]:
    async def probe():
        got = tail.of(SC, account_id=account, profile_id=profile_id)
        return got if len(got) >= n else None

    return await eventually(probe, timeout_s=20)


async def test_s1_reasons_and_list_specific_suppressions(
    services, api: Api, kafka: Kafka, tail: Tail, acct: str
) -> None:
    p = pid()
    await kafka.send(
        topics.SUPPRESSION_COMMANDS, p, suppression_cmd(acct, p, "suppress", "invalid_email")
    )
    await kafka.send(
        topics.SUPPRESSION_COMMANDS,
        p,
        suppression_cmd(acct, p, "suppress", "manual", list_id="weekly"),
    )
    got = await changes(tail, acct, p, 2)
    assert got[1]["suppressions"] == [
        {
            "channel": "email",
            "reason": "invalid_email",
            "list_id": None,
            "since": got[1]["suppressions"][0]["since"],
        },
        {
            "channel": "email",
            "reason": "manual",
            "list_id": "weekly",
            "since": got[1]["suppressions"][1]["since"],
        },
    ]
    body = await suppressions(api, acct, p)
    assert {(s["reason"], s["list_id"]) for s in body["suppressions"]} == {
        ("invalid_email", None),
        ("manual", "weekly"),
    }

    async def consent_sees():
        s = await api.state(acct, p)
        return s if s and len(s["channels"]["email"]["suppressions"]) == 2 else None

    state = await eventually(consent_sees, timeout_s=20)
    r = await api.consent.get(
        f"/accounts/{acct}/profiles/{p}/consent",
        params={"list_id": "weekly"},
        headers=headers(acct),
    )
    assert r.json()["channels"]["email"]["can_receive"] is False
    assert state["channels"]["email"]["can_receive"] is False  # global invalid_email


async def test_s2_suppression_does_not_touch_consent(
    services, api: Api, kafka: Kafka, tail: Tail, acct: str
) -> None:
    p = pid()
    await kafka.send(
        topics.CONSENT_COMMANDS,
        p,
        consent_cmd(
            acct, p, method="import", historical_import=True, consented_at="2020-01-01T00:00:00Z"
        ),
    )
    await api.wait_status(acct, p, "subscribed")
    r = await api.suppression.post(
        f"/accounts/{acct}/profiles/{p}/suppressions/suppress",
        headers=headers(acct),
        json={"reason": "manual"},
    )
    assert r.status_code == 202

    async def blocked():
        s = await api.state(acct, p)
        return s if not s["channels"]["email"]["can_receive"] else None

    state = await eventually(blocked, timeout_s=20)
    assert state["channels"]["email"]["status"] == "subscribed"
    r = await api.suppression.post(
        f"/accounts/{acct}/profiles/{p}/suppressions/unsuppress",
        headers=headers(acct),
        json={"reason": "manual"},
    )
    assert r.status_code == 202

    async def reachable():
        s = await api.state(acct, p)
        return s if s["channels"]["email"]["can_receive"] else None

    state = await eventually(reachable, timeout_s=20)
    assert state["channels"]["email"]["status"] == "subscribed"  # no consent needed again
    got = await changes(tail, acct, p, 2)
    assert [c["type"] for c in got] == ["suppressed", "unsuppressed"]
    assert got[1]["suppressions"] == []


async def test_s4_hard_bounce_at_once_soft_bounces_counted_and_reset(
    services, api: Api, kafka: Kafka, tail: Tail, acct: str
) -> None:
    hard, soft = pid(), pid()
    await kafka.send(
        topics.SUPPRESSION_COMMANDS, hard, suppression_cmd(acct, hard, "suppress", "hard_bounce")
    )
    for _ in range(6):
        await kafka.send(
            topics.SUPPRESSION_COMMANDS,
            soft,
            suppression_cmd(acct, soft, "suppress", "soft_bounce"),
        )
    await kafka.send(
        topics.SUPPRESSION_COMMANDS, soft, suppression_cmd(acct, soft, "suppress", "delivered")
    )
    for _ in range(6):
        await kafka.send(
            topics.SUPPRESSION_COMMANDS,
            soft,
            suppression_cmd(acct, soft, "suppress", "soft_bounce"),
        )
    got = await changes(tail, acct, hard, 1)
    assert got[0]["reason"] == "hard_bounce"

    async def six():
        s = await suppressions(api, acct, soft)
        return s if s and s["soft_bounces"] == 6 else None

    assert (await eventually(six, timeout_s=20))["suppressions"] == []  # reset by delivery
    await kafka.send(
        topics.SUPPRESSION_COMMANDS, soft, suppression_cmd(acct, soft, "suppress", "soft_bounce")
    )
    got = await changes(tail, acct, soft, 1)  # the 7th in a row (default limit)
    assert got[0]["type"] == "suppressed" and got[0]["reason"] == "soft_bounce"


async def test_s5_spam_complaint_lifted_only_by_resubscribe_with_evidence(
    services, api: Api, kafka: Kafka, tail: Tail, acct: str
) -> None:
    p = pid()
    await kafka.send(
        topics.SUPPRESSION_COMMANDS, p, suppression_cmd(acct, p, "suppress", "spam_complaint")
    )
    await kafka.send(
        topics.SUPPRESSION_COMMANDS, p, suppression_cmd(acct, p, "suppress", "hard_bounce")
    )
    await api.wait_status(acct, p, "unsubscribed")  # S3 through suppression-changes
    await kafka.send(
        topics.SUPPRESSION_COMMANDS, p, suppression_cmd(acct, p, "unsuppress", "spam_complaint")
    )

    async def dead():
        return tail.dead(topics.SUPPRESSION_COMMANDS, p)

    (letter,) = await eventually(dead, timeout_s=20)
    assert "evidence" in letter["error"]
    url = f"/accounts/{acct}/profiles/{p}/suppressions/unsuppress"
    r = await api.suppression.post(url, headers=headers(acct), json={"reason": "spam_complaint"})
    assert r.status_code == 422
    r = await api.consent.post(url, headers=headers(acct), json={"reason": "spam_complaint"})
    assert r.status_code == 422
    r = await api.consent.post(url, headers=headers(acct), json={"reason": "hard_bounce"})
    assert r.status_code == 202  # an operator removes a bounce

    async def only_spam():
        s = await suppressions(api, acct, p)
        return s if [x["reason"] for x in s["suppressions"]] == ["spam_complaint"] else None

    await eventually(only_spam, timeout_s=20)
    r = await api.consent.post(
        f"/accounts/{acct}/profiles/{p}/consent/resubscribe",
        headers=headers(acct),
        json={"evidence": "signed letter 7"},
    )
    assert r.status_code == 202

    async def lifted():
        s = await suppressions(api, acct, p)
        return s if s["suppressions"] == [] else None

    await eventually(lifted, timeout_s=20)
    state = await api.wait_status(acct, p, "subscribed")

    async def reachable():
        s = await api.state(acct, p)
        return s if s["channels"]["email"]["can_receive"] else None

    await eventually(reachable, timeout_s=20)
    assert state["channels"]["email"]["method"] == "manual"


async def test_s6_can_receive_per_channel_and_changes_published(
    services, api: Api, kafka: Kafka, tail: Tail, acct: str
) -> None:
    p = pid()
    await kafka.send(
        topics.CONSENT_COMMANDS,
        p,
        consent_cmd(acct, p, channel="sms", phone="+15557770000", method="form"),
    )
    state = await api.wait_status(acct, p, "subscribed", "sms_marketing")
    assert state["channels"]["email"]["can_receive"] is True  # never subscribed, unsuppressed
    assert state["channels"]["push"]["can_receive"] is False  # push needs subscribed
    assert state["channels"]["sms_marketing"]["can_receive"] is True
    await kafka.send(
        topics.SUPPRESSION_COMMANDS,
        p,
        suppression_cmd(acct, p, "suppress", "manual", channel="sms"),
    )
    got = await changes(tail, acct, p, 1)
    assert got[0]["channel"] == "sms" and got[0]["suppressions"][0]["channel"] == "sms"

    async def sms_blocked():
        s = await api.state(acct, p)
        return s if not s["channels"]["sms_transactional"]["can_receive"] else None

    state = await eventually(sms_blocked, timeout_s=20)
    assert state["channels"]["sms_marketing"]["can_receive"] is False
    assert state["channels"]["email"]["can_receive"] is True


async def test_x5_suppression_api_is_scoped_by_account(
    services, stack, api: Api, kafka: Kafka, tail: Tail, acct: str
) -> None:
    p = pid()
    await kafka.send(topics.SUPPRESSION_COMMANDS, p, suppression_cmd(acct, p, "suppress", "manual"))
    await changes(tail, acct, p, 1)
    url = f"/accounts/{acct}/profiles/{p}/suppressions"
    assert (await api.suppression.get(url)).status_code == 401
    other = {"authorization": f"Bearer {stack.key_of('globex')}"}
    assert (await api.suppression.get(url, headers=other)).status_code == 404
    r = await api.suppression.post(url + "/unsuppress", headers=other, json={"reason": "manual"})
    assert r.status_code == 404
    assert len((await suppressions(api, acct, p))["suppressions"]) == 1
