"""End to end: one person, one promise (I1, C6, C8, C11, C13, X2, X3, F2, F7, P1, P2).

A person is more than one record: two profiles share a number, a number texts STOP
before any profile has it, an address comes in NFD, punycode or upper case, an erased
person comes back under a new profile id, an opt-in and an opt-out tie. Each scenario
here was reproduced against the running services, and each runs against them again:
the four services as processes on the embedded broker, PostgreSQL and SMTP capture.
What the executor decides is read from what it publishes (`message-requests`,
`flow-activity`) and from its reachability endpoint (F7: its own read model)."""

from __future__ import annotations

import itertools
import json
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.contracts import topics
from tests.conftest import Kafka, eventually, mail_to
from tests.e2e.support import call, services_for

pytestmark = pytest.mark.e2e

ACCOUNT = f"acct-one-{uuid.uuid4().hex[:8]}"
KEY = f"key-{uuid.uuid4().hex}"
METRIC = "Checked Out"


services = services_for(ACCOUNT, KEY)


def api(stack, service: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return call(stack.services[service].base_url, KEY, method, path, body)


def tag() -> str:
    return uuid.uuid4().hex[:8]


_NUMBERS = itertools.count(int(uuid.uuid4().hex[:4], 16))


def number() -> str:
    """A US number in E.164 that no other test of this module uses: the account keeps
    every opt-out for its number (C6), so a number reused by chance would arrive opted
    out. Numbers run on from a random start, so a module never draws one twice."""
    return f"+1202555{next(_NUMBERS) % 10000:04d}"


def spaced(e164: str) -> str:
    """The same number as a person types it."""
    return f"+1 ({e164[2:5]}) {e164[5:8]}-{e164[8:]}"


def ts(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


NOW = datetime.now(UTC)


def command(profile: dict, action: str, channel: str, at: datetime, **kw: Any) -> dict:
    return {
        "command_id": kw.pop("command_id", f"c-{uuid.uuid4().hex}"),
        "account_id": ACCOUNT,
        "profile": profile,
        "action": action,
        "channel": channel,
        "method": kw.pop("method", "form"),
        "consented_at": ts(at),
        **kw,
    }


def event(profile: dict, at: datetime | None = None, event_id: str | None = None) -> dict:
    return {
        "event_id": event_id or f"e-{uuid.uuid4().hex}",
        "account_id": ACCOUNT,
        "metric": METRIC,
        "profile": profile,
        "properties": {},
        "time": ts(at or datetime.now(UTC)),
    }


def sms_in(phone: str, body: str, at: datetime | None = None) -> dict:
    return {
        "message_id": f"m-{uuid.uuid4().hex}",
        "account_id": ACCOUNT,
        "phone_number": phone,
        "body": body,
        "received_at": ts(at or datetime.now(UTC)),
    }


async def consent_of(stack, pid: str) -> dict | None:
    status, body = api(stack, "consent", "GET", f"/accounts/{ACCOUNT}/profiles/{pid}/consent")
    return body if status == 200 else None


async def reach(stack, pid: str) -> dict | None:
    path = f"/accounts/{ACCOUNT}/profiles/{pid}/reachability"
    status, body = api(stack, "flow_executor", "GET", path)
    return body if status == 200 else None


async def until(probe, timeout_s: float = 45.0):
    return await eventually(probe, timeout_s=timeout_s)


async def on(kafka: Kafka, topic: str, **match: Any) -> list[dict]:
    return [
        v
        for _, v in await kafka.read_all(topic)
        if v and v.get("account_id") == ACCOUNT and all(v.get(k) == x for k, x in match.items())
    ]


@pytest.fixture(scope="module")
async def flows(services, kafka: Kafka) -> None:
    """Two flows on one metric: an SMS step and an email step."""
    for flow_id, step in (
        ("texts", {"id": "text", "type": "sms", "body": "Hi", "next": None}),
        # F9 off: the scenarios below mail one profile more than once on purpose.
        (
            "mails",
            {
                "id": "mail",
                "type": "email",
                "subject": "Hello",
                "next": None,
                "smart_sending_hours": 0,
            },
        ),
    ):
        definition = {
            "account_id": ACCOUNT,
            "flow_id": flow_id,
            "version": 1,
            "name": flow_id,
            "trigger": {"type": "metric", "metric": METRIC},
            "profile_filter": None,
            "steps": [step],
        }
        await kafka.send(topics.FLOW_DEFINITIONS, f"{ACCOUNT}:{flow_id}", definition)
    status, _ = api(
        services, "consent", "PUT", f"/accounts/{ACCOUNT}/consent/settings",
        {"email_double_opt_in": False},
    )  # fmt: skip
    assert status in (200, 204)


async def outcome_at(kafka: Kafka, pid: str, step_id: str) -> dict:
    """The executor's decision at a step for a profile: a message request or a skip."""

    async def probe():
        sent = await on(kafka, topics.MESSAGE_REQUESTS, profile_id=pid, step_id=step_id)
        if sent:
            return {"sent": sent[0]}
        skipped = await on(
            kafka, topics.FLOW_ACTIVITY, profile_id=pid, step_id=step_id, type="skipped"
        )
        return {"skipped": skipped[0]} if skipped else None

    return await until(probe)


async def test_c6_x2_f7_a_stop_reaches_every_profile_on_the_number(
    services, flows, kafka: Kafka
) -> None:
    """Two profiles carry one number (spelled two ways); it texts STOP. Each gets its
    own change (today both carried one change id and the executor dropped the second),
    and the executor skips the SMS step for both."""
    phone = number()
    a = {"id": f"pa-{tag()}", "phone_number": phone}
    b = {"id": f"pb-{tag()}", "phone_number": spaced(phone)}
    for p in (a, b):
        await kafka.send(
            topics.CONSENT_COMMANDS,
            p["id"],
            command(p, "subscribe", "sms", NOW - timedelta(hours=1)),
        )
    for p in (a, b):
        await until(lambda p=p: _can(services, p["id"], "sms_marketing", True))
    await kafka.send(topics.SMS_INBOUND, phone, sms_in(spaced(phone), "STOP"))
    for p in (a, b):
        await until(lambda p=p: _can(services, p["id"], "sms_marketing", False))
    changes = await on(kafka, topics.CONSENT_CHANGES, type="Unsubscribed from SMS")
    ours = [c for c in changes if c["profile_id"] in (a["id"], b["id"])]
    assert len({c["change_id"] for c in ours}) == 2
    for p in (a, b):
        await kafka.send(topics.PROFILE_EVENTS, p["id"], event(p))
    for p in (a, b):
        decided = await outcome_at(kafka, p["id"], "text")
        assert "skipped" in decided, decided


async def _can(stack, pid: str, channel: str, expected: bool) -> bool:
    doc = await reach(stack, pid)
    return doc is not None and doc["can_receive"][channel] is expected


async def test_c6_x3_a_stop_before_any_profile_holds_for_the_profile_bringing_the_number(
    services, flows, kafka: Kafka
) -> None:
    phone = number()
    await kafka.send(topics.SMS_INBOUND, phone, sms_in(phone, "stop", NOW - timedelta(hours=1)))
    replies = await until(lambda: on(kafka, topics.SMS_OUTBOUND, phone_number=phone))
    assert "unsubscribed" in replies[0]["body"]
    p = {"id": f"pc-{tag()}", "phone_number": spaced(phone)}
    imported = command(
        p, "subscribe", "sms", NOW - timedelta(days=3), method="import", historical_import=True
    )
    await kafka.send(topics.CONSENT_COMMANDS, p["id"], imported)

    async def settled():
        doc = await consent_of(services, p["id"])
        return doc if doc and doc["phone_number"] == phone else None

    doc = await until(settled)
    assert doc["channels"]["sms_marketing"]["status"] == "unsubscribed"
    assert doc["channels"]["sms_marketing"]["can_receive"] is False


async def test_x3_a_tie_between_opt_in_and_opt_out_ends_opted_out(
    services, flows, kafka: Kafka
) -> None:
    """Second-precision imports: the opt-out stands whatever the command ids."""
    at = (NOW - timedelta(days=1)).replace(microsecond=0)
    pids = []
    for sub_id, unsub_id in (("z-sub", "a-unsub"), ("a-sub", "z-unsub")):
        p = {"id": f"pt-{tag()}", "email": f"tie.{tag()}@example.org"}
        pids.append(p["id"])
        for action, cid, extra in (
            ("subscribe", sub_id, {"evidence": "import of signed forms"}),
            ("unsubscribe", unsub_id, {}),
        ):
            cmd = command(
                p, action, "email", at, method="import", historical_import=True,
                command_id=f"{cid}-{p['id']}", **extra,
            )  # fmt: skip
            await kafka.send(topics.CONSENT_COMMANDS, p["id"], cmd)
    for pid in pids:

        async def settled(pid=pid):
            doc = await consent_of(services, pid)
            status = doc and doc["channels"]["email"]["status"]
            return doc if status and status != "never_subscribed" else None

        await until(settled)
        await until(lambda pid=pid: _email_status(services, pid, "unsubscribed"))


async def _email_status(stack, pid: str, status: str) -> bool:
    doc = await consent_of(stack, pid)
    return bool(doc) and doc["channels"]["email"]["status"] == status


async def test_x3_c8_an_email_subscribe_older_than_an_sms_act_still_asks_to_confirm(
    services, flows, kafka: Kafka
) -> None:
    status, _ = api(
        services, "consent", "PUT", f"/accounts/{ACCOUNT}/consent/settings",
        {"email_double_opt_in": True},
    )  # fmt: skip
    assert status in (200, 204)
    try:
        phone = number()
        email = f"form.{tag()}@example.org"
        p = {"id": f"pf-{tag()}", "email": email, "phone_number": phone}
        sms = command(p, "subscribe", "sms", NOW - timedelta(minutes=10))
        await kafka.send(topics.CONSENT_COMMANDS, p["id"], sms)
        await until(lambda: _can(services, p["id"], "sms_marketing", True))
        form = command(p, "subscribe", "email", NOW - timedelta(minutes=70))
        await kafka.send(topics.CONSENT_COMMANDS, p["id"], form)
        mails = await until(lambda: _async(mail_to(services, email)))
        assert "confirm" in str(mails[0]["Subject"]).lower()
    finally:
        api(
            services, "consent", "PUT", f"/accounts/{ACCOUNT}/consent/settings",
            {"email_double_opt_in": False},
        )  # fmt: skip


async def _async(value):
    return value


@pytest.mark.parametrize("evidence", ["\u200b", "\u2060", "\ufeff", " \u3164 ", "\u00a0"])
async def test_c11_invisible_evidence_is_no_evidence_over_the_api_and_kafka(
    services, flows, kafka: Kafka, evidence: str
) -> None:
    phone = number()
    p = {"id": f"pe-{tag()}", "phone_number": phone}
    await kafka.send(
        topics.CONSENT_COMMANDS, p["id"], command(p, "subscribe", "sms", NOW - timedelta(hours=2))
    )
    await kafka.send(topics.SMS_INBOUND, phone, sms_in(phone, "STOP", NOW - timedelta(hours=1)))
    await until(lambda: _sms_status(services, p["id"], "unsubscribed"))
    status, body = api(
        services, "consent", "POST", f"/accounts/{ACCOUNT}/profiles/{p['id']}/consent/resubscribe",
        {"channel": "sms", "evidence": evidence},
    )  # fmt: skip
    assert status == 422 and "C11" in json.dumps(body), (status, body)
    cmd = command(p, "resubscribe", "sms", NOW - timedelta(minutes=1), evidence=evidence)
    await kafka.send(topics.CONSENT_COMMANDS, p["id"], cmd)

    async def dead():
        letters = await kafka.read_all(topics.dlq(topics.CONSENT_COMMANDS))
        return [v for _, v in letters if v and cmd["command_id"] in _original(v)]

    (letter,) = await until(dead)
    assert "C11" in letter["error"]
    assert await _sms_status(services, p["id"], "unsubscribed")


def _original(letter: dict) -> str:
    import base64

    try:
        return base64.b64decode(letter.get("original") or "").decode(errors="replace")
    except ValueError:
        return str(letter.get("original"))


async def _sms_status(stack, pid: str, status: str) -> bool:
    doc = await consent_of(stack, pid)
    return bool(doc) and doc["channels"]["sms_marketing"]["status"] == status


@pytest.mark.parametrize(
    "body", ["Stop.", "STOP!", "STOP ALL", "stop all", "REVOKE", "OPTOUT", "opt out",
             "Opt-out", "STOP\u200b", "\uff33\uff34\uff2f\uff30"],
)  # fmt: skip
async def test_c13_the_opt_out_words_people_send_are_opt_outs(
    services, flows, kafka: Kafka, body: str
) -> None:
    phone = number()
    p = {"id": f"pk-{tag()}", "phone_number": phone}
    await kafka.send(
        topics.CONSENT_COMMANDS, p["id"], command(p, "subscribe", "sms", NOW - timedelta(hours=1))
    )
    await until(lambda: _sms_status(services, p["id"], "subscribed"))
    await kafka.send(topics.SMS_INBOUND, phone, sms_in(phone, body))
    await until(lambda: _sms_status(services, p["id"], "unsubscribed"))
    replies = await until(lambda: on(kafka, topics.SMS_OUTBOUND, phone_number=phone))
    assert "unsubscribed" in replies[0]["body"]


async def test_p1_p2_i1_an_erased_person_is_held_under_every_spelling_and_profile(
    services, flows, kafka: Kafka
) -> None:
    """Erase requested by the NFD spelling; afterwards an event for the same profile id,
    an event for a new profile with the address in upper case, and re-imports in NFD
    and punycode message nobody and subscribe nobody."""
    t = tag()
    email = f"José.{t}@Bücher.example"
    nfd = unicodedata.normalize("NFD", email)
    puny = f"josé.{t}@xn--bcher-kva.example"
    old = {"id": f"px-{t}", "email": email}
    imported = command(
        old, "subscribe", "email", NOW - timedelta(days=9), method="import",
        historical_import=True,
    )  # fmt: skip
    await kafka.send(topics.CONSENT_COMMANDS, old["id"], imported)
    await until(lambda: _email_status(services, old["id"], "subscribed"))
    await kafka.send(topics.PROFILE_EVENTS, old["id"], event(old))
    assert "sent" in await outcome_at(kafka, old["id"], "mail")  # reachable before

    request_id = f"r-{uuid.uuid4().hex}"
    erase = {"request_id": request_id, "account_id": ACCOUNT, "email": nfd, "action": "erase"}
    await kafka.send(topics.PRIVACY_REQUESTS, nfd, erase)

    async def done():
        path = f"/accounts/{ACCOUNT}/privacy-requests/{request_id}"
        status, body = api(services, "consent", "GET", path)
        return body if status == 200 and body["status"] == "done" else None

    result = await until(done, 90)
    assert old["id"] in json.dumps(result), result  # found by the NFD spelling

    await kafka.send(topics.PROFILE_EVENTS, old["id"], event(old))
    new = {"id": f"py-{t}", "email": email.upper()}
    await kafka.send(topics.PROFILE_EVENTS, new["id"], event(new))
    for pid in (old["id"], new["id"]):

        async def skipped(pid=pid):
            got = await on(kafka, topics.FLOW_ACTIVITY, profile_id=pid, step_id="mail",
                           type="skipped")  # fmt: skip
            return got

        (skip, *_) = await until(skipped)
        assert "erased" in skip["reason"].lower(), skip
    sent = await on(kafka, topics.MESSAGE_REQUESTS, profile_id=new["id"])
    assert not sent

    for spelling in (nfd, puny, f"  {email.upper()} "):
        p = {"id": f"pz-{tag()}", "email": spelling}
        cmd = command(
            p, "subscribe", "email", NOW - timedelta(days=1), method="import",
            historical_import=True,
        )  # fmt: skip
        await kafka.send(topics.CONSENT_COMMANDS, p["id"], cmd)

        async def held(pid=p["id"]):
            doc = await consent_of(services, pid)
            return doc if doc and doc.get("erased_hold") else None

        doc = await until(held)
        assert doc["channels"]["email"]["status"] != "subscribed"
        assert doc["channels"]["email"]["can_receive"] is False


async def test_f2_a_future_dated_event_does_not_pin_the_address(
    services, flows, kafka: Kafka
) -> None:
    pid = f"pd-{tag()}"
    first = {"id": pid, "email": f"old.{tag()}@example.org"}
    await kafka.send(topics.PROFILE_EVENTS, pid, event(first, datetime(2099, 1, 1, tzinfo=UTC)))
    await outcome_at(kafka, pid, "mail")
    later = {"id": pid, "email": f"new.{tag()}@example.org"}
    eid = f"e-{uuid.uuid4().hex}"
    await kafka.send(topics.PROFILE_EVENTS, pid, event(later, event_id=eid))

    async def second_request():
        sent = await on(kafka, topics.MESSAGE_REQUESTS, profile_id=pid, step_id="mail")
        return sent if len(sent) >= 2 else None

    sent = await until(second_request)
    assert sent[-1]["profile"]["email"] == later["email"]


async def test_x2_runs_of_colliding_flow_and_event_ids_both_start(
    services, flows, kafka: Kafka
) -> None:
    """Flow `fx` + event `q:1E` and flow `fx:q` + event `1E` joined to one run id."""
    metric = f"Collide {tag()}"
    for flow_id in ("fx", "fx:q"):
        definition = {
            "account_id": ACCOUNT, "flow_id": flow_id, "version": 1, "name": flow_id,
            "trigger": {"type": "metric", "metric": metric}, "profile_filter": None,
            "steps": [{"id": "mail", "type": "email", "subject": "Hi", "next": None,
                       "smart_sending_hours": 0}],
        }  # fmt: skip
        await kafka.send(topics.FLOW_DEFINITIONS, f"{ACCOUNT}:{flow_id}", definition)
    pid = f"pr-{tag()}"
    p = {"id": pid, "email": f"runs.{tag()}@example.org"}

    async def both_flows_loaded():
        probe = {**event(p), "metric": metric, "event_id": f"probe-{uuid.uuid4().hex}"}
        await kafka.send(topics.PROFILE_EVENTS, pid, probe)
        entered = await on(kafka, topics.FLOW_ACTIVITY, profile_id=pid, type="entered")
        return {e["flow_id"] for e in entered} >= {"fx", "fx:q"}

    await until(both_flows_loaded)

    async def runs() -> set[str]:
        got = await on(kafka, topics.MESSAGE_REQUESTS, profile_id=pid)
        return {r["run_id"] for r in got if r["flow_id"] in ("fx", "fx:q")}

    async def settled() -> set[str] | None:  # every probe's runs have sent their mail
        entered = await on(kafka, topics.FLOW_ACTIVITY, profile_id=pid, type="entered")
        have = await runs()
        return have if len(have) == len({e["run_id"] for e in entered}) else None

    before = await until(settled)
    for eid in ("q:1E", "1E"):
        await kafka.send(
            topics.PROFILE_EVENTS, pid, {**event(p), "metric": metric, "event_id": eid}
        )
    # Each event enters both flows: four runs, where the colliding ids made three.
    await until(lambda: _grew(runs, before, 4))


async def _grew(probe, before: set[str], n: int) -> bool:
    return len(await probe() - before) >= n
