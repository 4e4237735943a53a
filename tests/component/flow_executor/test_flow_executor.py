"""The flow executor as a real process on the real broker and PostgreSQL: definitions,
triggers, durable delays across a crash and across two replicas, review, and consent
gating from its own read model. Consent and suppression changes are published here
directly, as those services would."""

from __future__ import annotations

import asyncio
import base64
import json
import unicodedata
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial

import httpx
import pytest

from shared.contracts import ReviewDecision, topics
from tests.component.flow_executor.support import (
    ACCOUNTS,
    API_KEYS,
    activity_api,
    alert,
    any_hour,
    api,
    barrier,
    consent,
    delay,
    event,
    flow,
    in_force,
    key_of,
    next_local_0800,
    number_where,
    outputs,
    rows,
    save,
    send_event,
    suppression,
)
from tests.conftest import Kafka, eventually
from tools.devstack import EmbeddedStack
from tools.devstack.stack import ServiceProcess, free_port

ENV = {"SCHEDULER_INTERVAL_S": "0.1", "API_KEYS": API_KEYS, "FLOW_SCHEDULER_BATCH": "5"}
_free = iter(ACCOUNTS)


@pytest.fixture(scope="module")
def executor(stack: EmbeddedStack) -> Iterator[ServiceProcess]:
    stack.start_services(("flow_executor",), **ENV)
    try:
        yield stack.services["flow_executor"]
    finally:
        stack.services["flow_executor"].stop()


@pytest.fixture
def acct() -> str:
    """A fresh account that has an API key in the running executor."""
    return next(_free)


def pid() -> str:
    return f"p-{uuid.uuid4().hex[:10]}"


async def activity_of(kafka: Kafka, account: str, kind: str | None = None) -> list[dict]:
    found = await outputs(kafka, topics.FLOW_ACTIVITY, account)
    return [a for a in found if kind is None or a["type"] == kind]


async def test_f1_higher_version_replaces_invalid_is_dead_lettered_previous_stays(
    executor: ServiceProcess, kafka: Kafka, acct: str
) -> None:
    url = executor.base_url
    await save(kafka, flow(acct, "nps", [alert("v1")]))
    await in_force(url, acct, "nps", 1)
    cyclic = flow(acct, "nps", [delay("a", 5, "b"), delay("b", 5, "a")], version=2)
    await save(kafka, cyclic)

    async def letters() -> list[dict]:
        found = await kafka.read_all(topics.dlq(topics.FLOW_DEFINITIONS))
        return [v for _, v in found if v and v.get("key") == f"{acct}:nps"]

    [letter] = await eventually(letters)
    assert letter["error"] == "invalid flow: step 'b': going to 'a' makes a cycle"
    assert json.loads(base64.b64decode(letter["original"])) == cyclic
    doc = await eventually(lambda: _rejected(url, acct))
    assert doc["version"] == 1  # the previous version stays in force
    assert doc["rejected_versions"][0]["errors"] == ["step 'b': going to 'a' makes a cycle"]

    p = pid()
    await send_event(kafka, event(acct, p))
    [req] = await eventually(lambda: outputs(kafka, topics.ALERT_REQUESTS, acct))
    assert (req["step_id"], req["flow_version"]) == ("v1", 1)

    await save(kafka, flow(acct, "nps", [alert("v3")], version=3))
    await in_force(url, acct, "nps", 3)
    await save(kafka, flow(acct, "nps", [alert("old")], version=2))  # lower: ignored
    await send_event(kafka, event(acct, p))
    await barrier(url, kafka, acct, p)
    steps = sorted(r["step_id"] for r in await outputs(kafka, topics.ALERT_REQUESTS, acct))
    assert steps == ["v1", "v3"]
    assert (await activity_api(url, acct, "nps"))["version"] == 3


async def _rejected(url: str, acct: str) -> dict | None:
    doc = await activity_api(url, acct, "nps")
    return doc if doc.get("rejected_versions") else None


async def test_f1_deleted_flow_stops_entering_and_its_waiting_runs_exit(
    executor: ServiceProcess, kafka: Kafka, acct: str
) -> None:
    url = executor.base_url
    await save(kafka, flow(acct, "slow", [delay("wait", 3600, "alert"), alert()]))
    await save(kafka, flow(acct, "other", [alert()], trigger={"type": "metric", "metric": "X"}))
    await in_force(url, acct, "slow", 1)
    await in_force(url, acct, "other", 1)
    p = pid()
    await send_event(kafka, event(acct, p))
    await eventually(lambda: activity_of(kafka, acct, "scheduled"))

    await kafka.send(topics.FLOW_DEFINITIONS, f"{acct}:slow", None)  # tombstone
    doc = await eventually(lambda: _deleted(url, acct))
    assert doc["steps"]["wait"]["scheduled"]["count"] == 0
    [gone] = await eventually(lambda: activity_of(kafka, acct, "exited"))
    assert gone["reason"] == "Exited: flow deleted" and gone["profile_id"] == p

    await send_event(kafka, event(acct, p))
    await barrier(url, kafka, acct, p)
    entered = await activity_of(kafka, acct, "entered")
    assert len(entered) == 1  # only the entry before the delete
    assert await outputs(kafka, topics.ALERT_REQUESTS, acct) == []


async def _deleted(url: str, acct: str) -> dict | None:
    doc = await activity_api(url, acct, "slow")
    return doc if doc.get("deleted") else None


async def test_f2_metric_filter_list_trigger_historical_and_one_entry_per_event(
    executor: ServiceProcess, kafka: Kafka, acct: str
) -> None:
    url = executor.base_url
    await save(kafka, flow(acct, "nps", [alert("nps-alert")]))
    await save(
        kafka, flow(acct, "vip", [alert("vip-alert")], trigger={"type": "list", "list_id": "vip"})
    )
    await in_force(url, acct, "nps", 1)
    await in_force(url, acct, "vip", 1)
    p = pid()
    first = event(acct, p, score=3, event_id="e-once")
    await send_event(kafka, first)
    await send_event(kafka, first)  # redelivered
    await send_event(kafka, event(acct, p, score=5, event_id="e-once"))  # same id, other body
    await send_event(kafka, event(acct, p, score=9))  # filter: score <= 6
    await send_event(kafka, event(acct, p, score=1, historical=True))
    await send_event(kafka, event(acct, p, score=1, metric="Placed Order"))
    await kafka.send(
        topics.CONSENT_CHANGES, p, consent(acct, p, "Subscribed to List", list_id="vip")
    )
    await kafka.send(
        topics.CONSENT_CHANGES,
        p,
        consent(acct, p, "Subscribed to List", list_id="vip", historical=True),
    )
    await kafka.send(
        topics.CONSENT_CHANGES, p, consent(acct, p, "Subscribed to List", list_id="other")
    )
    await eventually(lambda: _count(kafka, acct, 2))
    await barrier(url, kafka, acct, p)
    reqs = await outputs(kafka, topics.ALERT_REQUESTS, acct)
    assert sorted((r["step_id"], r["trigger_type"]) for r in reqs) == [
        ("nps-alert", "metric"),
        ("vip-alert", "list"),
    ]
    nps = next(r for r in reqs if r["step_id"] == "nps-alert")
    assert nps["event"] == {"score": 3} and nps["profile_id"] == p


async def test_f2_x1_an_event_with_nan_or_infinity_enters_with_them_written_as_null(
    executor: ServiceProcess, kafka: Kafka, acct: str
) -> None:
    """Producers written in Python send `NaN` and `Infinity` (the json module writes
    them); JSON has no such numbers and PostgreSQL refuses them. The event still enters
    its flow, with them as null, as a profile's own JSON has them."""
    url = executor.base_url
    await save(kafka, flow(acct, "nps", [alert("nps-alert")]))
    await in_force(url, acct, "nps", 1)
    p = pid()
    odd = event(acct, p, score=3, ratio=float("nan"))
    odd["properties"].update(ratio=float("nan"), ceiling=float("inf"), floor=float("-inf"))
    await send_event(kafka, odd)
    await eventually(lambda: _count(kafka, acct, 1))
    (req,) = await outputs(kafka, topics.ALERT_REQUESTS, acct)
    assert req["event"] == {"score": 3, "ratio": None, "ceiling": None, "floor": None}
    dead = [v for _, v in await kafka.read_all(topics.dlq(topics.PROFILE_EVENTS))]
    assert not [d for d in dead if p.encode() in base64.b64decode(d.get("original") or "")]


async def test_f2_x2_an_event_redelivered_in_a_later_batch_enters_once_without_inbox_rows(
    stack: EmbeddedStack, executor: ServiceProcess, kafka: Kafka, acct: str
) -> None:
    """Profile events are not claimed in the inbox: the run's id, derived from the event
    id, is what refuses the second entry."""
    url = executor.base_url
    await save(kafka, flow(acct, "again", [alert("again-alert")]))
    await in_force(url, acct, "again", 1)
    p = pid()
    ev = event(acct, p, score=2, event_id="e-again")
    await send_event(kafka, ev)
    await barrier(url, kafka, acct, p)  # its batch is committed
    await send_event(kafka, ev)  # redelivered, in a later batch
    await barrier(url, kafka, acct, p)
    await eventually(lambda: _count(kafka, acct, 1))
    runs = await rows(stack.dsn, "SELECT run_id FROM runs WHERE account_id = $1", acct)
    steps = await rows(stack.dsn, "SELECT run_id FROM step_executions WHERE account_id = $1", acct)
    claimed = await rows(
        stack.dsn,
        "SELECT message_id FROM processed_messages WHERE message_id LIKE $1",
        f"{acct}:%",
    )
    assert (len(runs), len(steps), claimed) == (1, 1, [])
    reqs = await outputs(kafka, topics.ALERT_REQUESTS, acct)
    assert [r["step_id"] for r in reqs] == ["again-alert"]


async def _count(kafka: Kafka, acct: str, n: int) -> bool:
    return len(await outputs(kafka, topics.ALERT_REQUESTS, acct)) >= n


async def test_f3_splits_and_profile_filter_before_each_message_action(
    executor: ServiceProcess, kafka: Kafka, acct: str
) -> None:
    url = executor.base_url
    split = {
        "id": "split",
        "type": "split",
        "yes": "hot",
        "no": "cold",
        "condition": {
            "all": [
                {"property": "event.score", "op": "lte", "value": 3},
                {
                    "any": [
                        {"property": "person.tier", "op": "eq", "value": "gold"},
                        {"property": "person.tier", "op": "eq", "value": "platinum"},
                    ]
                },
            ]
        },
    }
    await save(kafka, flow(acct, "split", [split, alert("hot"), alert("cold")]))
    await save(
        kafka,
        flow(
            acct,
            "gold",
            [delay("wait", 1, "mail"), {"id": "mail", "type": "email", "next": None}],
            trigger={"type": "metric", "metric": "Joined"},
            profile_filter={"property": "tier", "op": "eq", "value": "gold"},
        ),
    )
    await in_force(url, acct, "split", 1)
    await in_force(url, acct, "gold", 1)
    gold, silver, lapsing = pid(), pid(), pid()
    await send_event(kafka, event(acct, gold, score=2, tier="gold"))
    await send_event(kafka, event(acct, silver, score=2, tier="silver"))
    reqs = await eventually(lambda: _steps(kafka, acct, 2))
    assert reqs == {gold: "hot", silver: "cold"}

    # Entry checks the filter: a silver profile never enters.
    await send_event(kafka, event(acct, silver, metric="Joined", tier="silver"))
    # A gold profile enters, then turns silver while it waits: skipped before the email.
    await send_event(
        kafka, event(acct, lapsing, metric="Joined", tier="gold", time="2026-11-23T10:00:00Z")
    )
    await send_event(
        kafka, event(acct, lapsing, metric="Viewed", tier="silver", time="2026-11-23T10:05:00Z")
    )
    skipped = await eventually(lambda: activity_of(kafka, acct, "skipped"))
    assert [(s["profile_id"], s["step_id"], s["reason"]) for s in skipped] == [
        (lapsing, "mail", "Skipped: profile filter")
    ]
    await barrier(url, kafka, acct, silver)
    entered = {
        a["profile_id"] for a in await activity_of(kafka, acct, "entered") if a["flow_id"] == "gold"
    }
    assert entered == {lapsing}
    assert await outputs(kafka, topics.MESSAGE_REQUESTS, acct) == []


async def _steps(kafka: Kafka, acct: str, n: int) -> dict | None:
    found = {
        r["profile_id"]: r["step_id"] for r in await outputs(kafka, topics.ALERT_REQUESTS, acct)
    }
    return found if len(found) >= n else None


async def test_f4_restart_while_waiting_fires_every_delay_and_action_exactly_once(
    stack: EmbeddedStack, executor: ServiceProcess, kafka: Kafka, acct: str
) -> None:
    url = executor.base_url
    # Each profile gets a mail from both flows: smart sending (F9) is off for them.
    mail = {"id": "mail", "type": "email", "next": None, "smart_sending_hours": 0}
    await save(kafka, flow(acct, "d1", [delay("wait", 1, "mail"), mail]))
    await save(kafka, flow(acct, "d3", [delay("wait", 3, "mail"), mail]))
    await in_force(url, acct, "d1", 1)
    await in_force(url, acct, "d3", 1)
    profiles = [pid() for _ in range(40)]
    for p in profiles:
        await send_event(kafka, event(acct, p))
    await eventually(lambda: _n(activity_of(kafka, acct, "scheduled"), 80))
    executor.kill()  # SIGKILL while 80 runs wait (some delays fall due meanwhile)
    await asyncio.sleep(0.5)
    executor.start()
    executor.wait_ready()

    requests = await eventually(
        lambda: _n(outputs(kafka, topics.MESSAGE_REQUESTS, acct), 80), timeout_s=60
    )
    ids = Counter(r["request_id"] for r in requests)
    assert len(ids) == 80  # every waiting delay fired and its action ran
    fired = await rows(
        stack.dsn,
        "SELECT t.outcome, t.fired_at, r.profile_id FROM timers t JOIN runs r USING (run_id)"
        " WHERE r.account_id = $1",
        acct,
    )
    assert len(fired) == 80 and {f["outcome"] for f in fired} == {"fired"}
    executed = await rows(
        stack.dsn,
        "SELECT run_id, step_id, count(*) AS n FROM step_executions WHERE account_id = $1"
        " GROUP BY run_id, step_id",
        acct,
    )
    assert len(executed) == 80 and {e["n"] for e in executed} == {1}
    doc = await activity_api(url, acct, "d3")
    assert doc["steps"]["wait"]["scheduled"]["count"] == 0
    assert doc["steps"]["wait"]["delay_passed"] == 40
    assert doc["steps"]["mail"]["executed"]["count"] == 40


async def _n(found_coro, n: int):
    found = await found_coro
    return found if len(found) >= n else None


async def test_f3_two_replicas_fire_each_delay_once(
    stack: EmbeddedStack, executor: ServiceProcess, kafka: Kafka, acct: str
) -> None:
    url = executor.base_url
    port = free_port()
    second = ServiceProcess(
        "flow_executor",
        {**stack.env(), "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", **ENV},
        stack.root / "logs" / "flow_executor-2.log",
        port,
    )
    second.start()
    try:
        second.wait_ready()
        # Its scheduler starts once its consumers have joined their groups.
        await eventually(lambda: _started(second), timeout_s=60)
        await save(kafka, flow(acct, "twin", [delay("wait", 2, "alert"), alert()]))
        await in_force(url, acct, "twin", 1)
        await in_force(second.base_url, acct, "twin", 1)
        profiles = [pid() for _ in range(60)]
        for i, p in enumerate(profiles):
            if i and i % 5 == 0:
                # Twelve waves of entries, so that delays fall due over ~2.5 s and both
                # schedulers find due rows, rather than one draining a single burst.
                await asyncio.sleep(0.2)
            await send_event(kafka, event(acct, p))
        reqs = await eventually(
            lambda: _n(outputs(kafka, topics.ALERT_REQUESTS, acct), 60), timeout_s=60
        )
        assert Counter(r["profile_id"] for r in reqs) == dict.fromkeys(profiles, 1)
        passed = [a for a in await activity_of(kafka, acct, "executed") if a["step_id"] == "wait"]
        assert Counter(a["profile_id"] for a in passed) == dict.fromkeys(profiles, 1)
        by = await rows(
            stack.dsn,
            "SELECT t.fired_by, count(*) AS n FROM timers t"
            " JOIN runs r USING (run_id) WHERE r.account_id = $1"
            " GROUP BY t.fired_by",
            acct,
        )
        assert sum(b["n"] for b in by) == 60
        assert len(by) == 2, f"one replica fired everything: {by}"
    finally:
        second.stop()


async def _started(svc: ServiceProcess) -> bool:
    return "service started" in svc.log_path.read_text(errors="replace")


async def test_a_service_process_freezes_its_start_up_heap_once_started(
    executor: ServiceProcess,
) -> None:
    """shared.heap: full collections skip what the imports made; the service logs how
    much it froze."""
    started = [
        json.loads(line)
        for line in executor.log_path.read_text(errors="replace").splitlines()
        if '"service started"' in line
    ]
    assert started, "the service never logged its start"
    assert started[-1]["frozen_objects"] > 10_000


async def test_f5_manual_review_approve_reject_and_draft(
    executor: ServiceProcess, kafka: Kafka, acct: str
) -> None:
    url = executor.base_url
    await save(
        kafka,
        flow(
            acct, "review", [alert("held", "sketch", mode="manual"), alert("sketch", mode="draft")]
        ),
    )
    await in_force(url, acct, "review", 1)
    approved, rejected = pid(), pid()
    await send_event(kafka, event(acct, approved))
    await send_event(kafka, event(acct, rejected))
    doc = await eventually(lambda: _held(url, acct, 2))
    held = {a["profile_id"]: a["alert_id"] for a in doc["steps"]["held"]["in_review"]["alerts"]}

    async def reviewing() -> dict[str, str]:
        got = {a["profile_id"]: a["alert_id"] for a in await activity_of(kafka, acct, "in_review")}
        return got if len(got) == 2 else {}

    # The in_review activity on Kafka names the id a reviewer sends on review-decisions.
    assert await eventually(reviewing) == held
    assert doc["steps"]["sketch"]["skipped"]["reasons"][0]["reason"] == "Skipped: draft"
    assert doc["steps"]["sketch"]["skipped"]["count"] == 2
    assert await outputs(kafka, topics.ALERT_REQUESTS, acct) == []

    listed = (await api(url, acct, "/reviews")).json()["in_review"]
    assert {r["alert_id"] for r in listed} == set(held.values())
    other = await api(url, acct, f"/reviews/{held[approved]}/approve", "POST", key_of("globex"))
    assert other.status_code == 404  # X5: another account's key
    ok = await api(url, acct, f"/reviews/{held[approved]}/approve", "POST")
    assert (ok.status_code, ok.json()["status"]) == (200, "approved")
    again = await api(url, acct, f"/reviews/{held[approved]}/reject", "POST")
    assert again.status_code == 409
    [req] = await eventually(lambda: outputs(kafka, topics.ALERT_REQUESTS, acct))
    assert (req["alert_id"], req["profile_id"]) == (held[approved], approved)

    decision = ReviewDecision(alert_id=held[rejected], decision="reject", by="cx@acme.test")
    await kafka.send(topics.REVIEW_DECISIONS, held[rejected], decision)

    async def rejected_shown() -> dict | None:
        d = await activity_api(url, acct, "review")
        reasons = d["steps"]["held"]["skipped"]["reasons"]
        return d if reasons and reasons[0]["profiles"] == [rejected] else None

    doc = await eventually(rejected_shown)
    assert doc["steps"]["held"]["skipped"]["reasons"][0]["reason"] == "Skipped: rejected in review"
    assert doc["steps"]["held"]["executed"] == {"count": 1, "profiles": [approved]}
    assert doc["steps"]["held"]["in_review"]["count"] == 0
    assert len(await outputs(kafka, topics.ALERT_REQUESTS, acct)) == 1


async def _held(url: str, acct: str, n: int) -> dict | None:
    doc = await activity_api(url, acct, "review")
    held = doc.get("steps", {}).get("held", {}).get("in_review", {})
    return doc if held.get("count") == n else None


async def test_f6_email_and_sms_gated_by_consent_suppression_and_scope(
    executor: ServiceProcess, kafka: Kafka, acct: str
) -> None:
    url = executor.base_url
    mail = {
        "id": "mail",
        "type": "email",
        "next": "text",
        "client_id": "events",
        "user_id": "bob",
        "list_id": "news",
        "subject": "Hi",
    }
    text = {"id": "text", "type": "sms", "next": None, "purpose": "transactional"}
    await save(kafka, flow(acct, "msg", [mail, text]))
    await in_force(url, acct, "msg", 1)
    ok, unsub, bounced, user_out, listed = (pid() for _ in range(5))
    sms_ok = {"sms_marketing": {"status": "subscribed", "phone_number": "+15555550100"}}
    await kafka.send(
        topics.CONSENT_CHANGES,
        ok,
        consent(acct, ok, "Subscribed to SMS Marketing", "sms", **sms_ok),
    )
    await kafka.send(
        topics.CONSENT_CHANGES, unsub, consent(acct, unsub, email={"status": "unsubscribed"})
    )
    await kafka.send(
        topics.SUPPRESSION_CHANGES,
        bounced,
        suppression(acct, bounced, "hard_bounce", [{"reason": "hard_bounce", "list_id": None}]),
    )
    await kafka.send(
        topics.CONSENT_CHANGES, user_out, consent(acct, user_out, opt_outs=["user:events/bob"])
    )
    await kafka.send(
        topics.SUPPRESSION_CHANGES,
        listed,
        suppression(acct, listed, "manual", [{"reason": "manual", "list_id": "news"}]),
    )

    async def known() -> bool:
        codes = [
            (await api(url, acct, f"/profiles/{p}/reachability")).status_code
            for p in (ok, unsub, bounced, user_out, listed)
        ]
        return codes == [200] * 5

    await eventually(known)
    for p in (ok, unsub, bounced, user_out, listed):
        await send_event(kafka, event(acct, p))
    await eventually(lambda: _n(activity_of(kafka, acct, "exited"), 5))
    reqs = await outputs(kafka, topics.MESSAGE_REQUESTS, acct)
    assert sorted((r["profile_id"], r["channel"]) for r in reqs) == [(ok, "email"), (ok, "sms")]
    email_req = next(r for r in reqs if r["channel"] == "email")
    assert (email_req["client_id"], email_req["list_id"]) == ("events", "news")
    doc = await activity_api(url, acct, "msg")
    reasons = {r["reason"]: r["profiles"] for r in doc["steps"]["mail"]["skipped"]["reasons"]}
    assert reasons == {
        "Skipped: unsubscribed from email": [unsub],
        "Skipped: suppressed (hard_bounce)": [bounced],
        "Skipped: opted out (user:events/bob)": [user_out],
        "Skipped: suppressed from list news (manual)": [listed],
    }
    assert doc["steps"]["text"]["skipped"]["count"] == 4  # no SMS consent
    assert doc["steps"]["mail"]["executed"]["count"] == 1


async def test_f7_the_executors_own_read_model_decides_when_the_action_runs(
    executor: ServiceProcess, kafka: Kafka, acct: str
) -> None:
    """F7 (and F6's "at the moment they run"): an unsubscribe published on
    `consent-changes` while the profile waits on a delay reaches the executor's own read
    model, and the email action after the delay is skipped."""
    url = executor.base_url
    await save(
        kafka,
        flow(
            acct,
            "later",
            [delay("wait", 1, "mail"), {"id": "mail", "type": "email", "next": None}],
            trigger={"type": "metric", "metric": "Later"},
        ),
    )
    await in_force(url, acct, "later", 1)
    late = pid()
    await send_event(kafka, event(acct, late, metric="Later"))
    await eventually(lambda: _scheduled(kafka, acct, late))
    await kafka.send(
        topics.CONSENT_CHANGES, late, consent(acct, late, email={"status": "unsubscribed"})
    )

    async def late_skip() -> list[dict]:
        return [a for a in await activity_of(kafka, acct, "skipped") if a["profile_id"] == late]

    [skip] = await eventually(late_skip)
    assert (skip["flow_id"], skip["reason"]) == ("later", "Skipped: unsubscribed from email")


async def _scheduled(kafka: Kafka, acct: str, p: str) -> bool:
    return any(a["profile_id"] == p for a in await activity_of(kafka, acct, "scheduled"))


async def test_a6_activity_counts_and_lists_scheduled_and_in_review(
    executor: ServiceProcess, kafka: Kafka, acct: str
) -> None:
    url = executor.base_url
    await save(kafka, flow(acct, "queue", [delay("wait", 3600, "alert"), alert()]))
    await save(
        kafka,
        flow(acct, "held", [alert(mode="manual")], trigger={"type": "metric", "metric": "Held"}),
    )
    await in_force(url, acct, "queue", 1)
    await in_force(url, acct, "held", 1)
    waiting = [pid() for _ in range(3)]
    for p in waiting:
        await send_event(kafka, event(acct, p))
    held = pid()
    await send_event(kafka, event(acct, held, metric="Held"))

    async def queued() -> dict | None:
        doc = await activity_api(url, acct, "queue")
        return doc if doc["steps"].get("wait", {}).get("scheduled", {}).get("count") == 3 else None

    doc = await eventually(queued)
    listed = doc["steps"]["wait"]["scheduled"]["profiles"]
    assert {p["profile_id"] for p in listed} == set(waiting)
    assert all(p["due_at"] for p in listed)
    scheduled = await activity_of(kafka, acct, "scheduled")
    assert {(a["step_id"], a["profile_id"]) for a in scheduled} == {("wait", p) for p in waiting}
    assert all(a["due_at"] for a in scheduled)

    review = await eventually(lambda: _review_count(url, acct))
    assert review["alerts"][0]["profile_id"] == held
    [in_review] = await eventually(lambda: activity_of(kafka, acct, "in_review"))
    assert (in_review["flow_id"], in_review["step_id"]) == ("held", "alert")

    foreign = await api(url, acct, "/flows/queue/activity", key=key_of("globex"))
    assert foreign.status_code == 404  # X5
    assert (await api(url, acct, "/flows/nope/activity")).status_code == 404


async def _review_count(url: str, acct: str) -> dict | None:
    doc = await activity_api(url, acct, "held")
    review = doc.get("steps", {}).get("alert", {}).get("in_review", {})
    return review if review.get("count") == 1 else None


# --- F2: future-dated events; P2, I1: an erased person is not messaged again --------------

ZOE = "Zoë@Bücher.example"
MESSAGES = [
    {"id": "mail", "type": "email", "next": "text"},
    {"id": "text", "type": "sms", "next": None},
]


def person_event(
    account: str, p: str, email: str | None, phone: str | None, time: str | None = None
) -> dict:
    ev = event(account, p, time=time or datetime.now(UTC).isoformat())
    ev["profile"] = {"id": p, "email": email, "phone_number": phone}
    return ev


async def _requests_of(kafka: Kafka, acct: str, p: str, n: int) -> list[dict] | None:
    found = [r for r in await outputs(kafka, topics.MESSAGE_REQUESTS, acct) if r["profile_id"] == p]
    return found if len(found) >= n else None


async def _sms_consent_known(url: str, acct: str, p: str) -> bool:
    r = await api(url, acct, f"/profiles/{p}/reachability")
    consent = r.json()["consent"] if r.status_code == 200 else None
    return ((consent or {}).get("sms_marketing") or {}).get("status") == "subscribed"


async def _erase(kafka: Kafka, acct: str, **names: str) -> dict:
    """Publish an erase and wait for the executor's part of it."""
    request_id = f"r-{uuid.uuid4().hex}"
    request = {"request_id": request_id, "account_id": acct, "action": "erase", **names}
    await kafka.send(topics.PRIVACY_REQUESTS, next(iter(names.values())), request)

    async def done() -> dict | None:
        for _, v in await kafka.read_all(topics.PRIVACY_RESULTS):
            if v and v["request_id"] == request_id and v["service"] == "flow_executor":
                return v
        return None

    return await eventually(done)


async def test_f2_an_event_dated_2099_does_not_pin_the_address_of_a_later_event(
    executor: ServiceProcess, kafka: Kafka, acct: str
) -> None:
    url = executor.base_url
    # Both mails go: smart sending (F9) is off for this step.
    await save(kafka, flow(acct, "mail", [MESSAGES[0] | {"next": None, "smart_sending_hours": 0}]))
    await in_force(url, acct, "mail", 1)
    p = pid()
    await send_event(kafka, person_event(acct, p, "old@example.com", None, "2099-01-01T00:00:00Z"))
    await eventually(lambda: _requests_of(kafka, acct, p, 1))
    await send_event(kafka, person_event(acct, p, "new@example.com", None))
    found = await eventually(lambda: _requests_of(kafka, acct, p, 2))
    assert [r["profile"]["email"] for r in found] == ["old@example.com", "new@example.com"]
    r = await api(url, acct, f"/profiles/{p}/reachability")
    assert r.json()["profile"]["email"] == "new@example.com"


async def test_p2_i1_after_an_erase_no_email_or_sms_reaches_the_id_or_any_spelling(
    executor: ServiceProcess, kafka: Kafka, acct: str
) -> None:
    url = executor.base_url
    await any_hour(url, acct)  # the SMS before the erase goes whatever the hour (F8)
    await save(kafka, flow(acct, "msg", MESSAGES))
    await in_force(url, acct, "msg", 1)
    erased, upper, nfd, puny, by_phone = (pid() for _ in range(5))
    phone = "+12125550100"
    for p in (erased, by_phone):  # SMS consent before the erase
        sms = {"sms_marketing": {"status": "subscribed", "phone_number": phone}}
        await kafka.send(
            topics.CONSENT_CHANGES, p, consent(acct, p, "Subscribed to SMS Marketing", "sms", **sms)
        )
        await eventually(lambda p=p: _sms_consent_known(url, acct, p))
    await send_event(kafka, person_event(acct, erased, ZOE, phone))
    assert {
        r["channel"] for r in await eventually(lambda: _requests_of(kafka, acct, erased, 2))
    } == {
        "email",
        "sms",
    }
    part = await _erase(kafka, acct, profile_id=erased)
    assert part["profile_ids"] == [erased]

    spellings = {
        erased: (ZOE, phone),
        upper: ("  ZOË@BÜCHER.EXAMPLE ", None),
        nfd: (unicodedata.normalize("NFD", ZOE), None),
        puny: ("zoë@xn--bcher-kva.EXAMPLE", None),
        by_phone: ("someone@else.example", "+1 (212) 555-0100"),
    }
    for p, (email, number) in spellings.items():
        await send_event(kafka, person_event(acct, p, email, number))

    async def skips() -> list[dict] | None:
        found = [
            a
            for a in await activity_of(kafka, acct, "skipped")
            if a["profile_id"] in spellings and a["step_id"] == "mail"
        ]
        return found if len(found) >= len(spellings) else None

    mails = await eventually(skips)
    assert {a["profile_id"]: a["reason"] for a in mails} == {
        p: "Skipped: erased (P2)" for p in spellings
    }
    await eventually(lambda: _n(activity_of(kafka, acct, "exited"), 1 + len(spellings)))
    after = [r for r in await outputs(kafka, topics.MESSAGE_REQUESTS, acct)]
    assert len(after) == 2  # the two sent before the erase, nothing since
    for p in (erased, upper, by_phone):
        r = await api(url, acct, f"/profiles/{p}/reachability")
        assert r.status_code == 200
        blocked = r.json()["blocked"]
        assert blocked["email"] == blocked["sms_marketing"] == "erased (P2)"


async def test_p2_a_subscribe_after_the_erase_lets_that_channel_go_to_that_profile(
    executor: ServiceProcess, kafka: Kafka, acct: str
) -> None:
    url = executor.base_url
    await save(kafka, flow(acct, "msg", MESSAGES))
    await in_force(url, acct, "msg", 1)
    p = pid()
    await send_event(kafka, person_event(acct, p, ZOE, None))
    await eventually(lambda: _requests_of(kafka, acct, p, 1))
    await _erase(kafka, acct, profile_id=p)
    again = consent(
        acct,
        p,
        "Subscribed to Email Marketing",
        at=datetime.now(UTC).isoformat(),
        email={"status": "subscribed"},
    ).model_copy(update={"evidence": "signed form 12"})  # the only re-consent after an erase
    await kafka.send(topics.CONSENT_CHANGES, p, again)

    async def lifted() -> bool:
        r = await api(url, acct, f"/profiles/{p}/reachability")
        return r.status_code == 200 and "email" not in r.json()["blocked"]

    await eventually(lifted)
    await send_event(kafka, person_event(acct, p, ZOE, None))
    found = await eventually(lambda: _requests_of(kafka, acct, p, 2))
    assert [r["channel"] for r in found] == ["email", "email"]
    r = await api(url, acct, f"/profiles/{p}/reachability")
    assert r.json()["blocked"]["sms_marketing"] == "erased (P2)"


async def test_p2_i1_an_erase_finds_the_profile_by_any_spelling_of_its_address(
    executor: ServiceProcess, kafka: Kafka, acct: str
) -> None:
    url = executor.base_url
    await save(kafka, flow(acct, "msg", MESSAGES))
    await in_force(url, acct, "msg", 1)
    by_mail, by_phone = pid(), pid()
    await send_event(kafka, person_event(acct, by_mail, ZOE, None))
    await send_event(kafka, person_event(acct, by_phone, "x@y.example", "+12125550142"))
    await eventually(lambda: _requests_of(kafka, acct, by_mail, 1))
    await eventually(lambda: _requests_of(kafka, acct, by_phone, 1))
    spelled = " " + unicodedata.normalize("NFD", "ZOË@xn--bcher-kva.example")
    assert (await _erase(kafka, acct, email=spelled))["profile_ids"] == [by_mail]
    assert (await _erase(kafka, acct, phone_number="+1 212-555-0142"))["profile_ids"] == [by_phone]
    assert (await api(url, acct, f"/profiles/{by_mail}/reachability")).json()["profile"] is None


# --- F8 quiet hours and F9 smart sending through the running executor ------------------


def _sms_subscribed(acct: str, p: str, number: str):
    state = {"sms_marketing": {"status": "subscribed", "phone_number": number}}
    return consent(acct, p, "Subscribed to SMS Marketing", "sms", **state)


async def _texted(kafka: Kafka, url: str, acct: str, p: str, number: str, metric: str) -> None:
    """SMS consent for `number`, then an event that brings it on `metric`."""
    await kafka.send(topics.CONSENT_CHANGES, p, _sms_subscribed(acct, p, number))
    await eventually(lambda: _sms_consent_known(url, acct, p))
    ev = event(acct, p, metric=metric, time=datetime.now(UTC).isoformat())
    ev["profile"]["phone_number"] = number
    await send_event(kafka, ev)


async def _waiting_at(url: str, acct: str, flow_id: str, p: str) -> dict | None:
    doc = await activity_api(url, acct, flow_id)
    waiting = doc.get("steps", {}).get("text", {}).get("scheduled", {}).get("profiles", [])
    return next((w for w in waiting if w["profile_id"] == p), None)


async def test_f8_a_number_in_its_quiet_hours_is_held_and_one_in_its_window_is_sent(
    executor: ServiceProcess, kafka: Kafka, acct: str
) -> None:
    url = executor.base_url
    await save(kafka, flow(acct, "texts", [{"id": "text", "type": "sms", "next": None}]))
    await in_force(url, acct, "texts", 1)
    night, (night_number, night_zone) = pid(), number_where(sending=False)
    day, (day_number, _) = pid(), number_where(sending=True)
    await _texted(kafka, url, acct, night, night_number, "Left NPS Score")
    await _texted(kafka, url, acct, day, day_number, "Left NPS Score")

    [sent] = await eventually(lambda: _requests_of(kafka, acct, day, 1))
    assert (sent["channel"], sent["profile"]["phone_number"]) == ("sms", day_number)
    held = await eventually(lambda: _waiting_at(url, acct, "texts", night))
    release = next_local_0800(night_zone)
    assert held["reason"] == "Waiting: quiet hours"
    assert datetime.fromisoformat(held["due_at"]) == release
    [waiting] = [a for a in await activity_of(kafka, acct, "scheduled") if a["profile_id"] == night]
    assert (waiting["step_id"], waiting["reason"]) == ("text", "Waiting: quiet hours")
    assert datetime.fromisoformat(waiting["due_at"]) == release
    assert await _requests_of(kafka, acct, night, 1) is None


async def test_f8_f3_f4_a_held_step_survives_a_restart_and_runs_once(
    stack: EmbeddedStack, executor: ServiceProcess, kafka: Kafka, acct: str
) -> None:
    url = executor.base_url
    await save(kafka, flow(acct, "texts", [{"id": "text", "type": "sms", "next": None}]))
    await in_force(url, acct, "texts", 1)
    p, (number, _) = pid(), number_where(sending=False)
    await _texted(kafka, url, acct, p, number, "Left NPS Score")
    await eventually(lambda: _waiting_at(url, acct, "texts", p))
    await any_hour(url, acct)  # by the time the hold is due, the window is open

    executor.kill()
    # The night passes while the executor is down: the hold falls due.
    await rows(
        stack.dsn,
        "UPDATE timers t SET due_at = now() FROM runs r"
        " WHERE r.run_id = t.run_id AND r.account_id = $1 RETURNING 1",
        acct,
    )
    executor.start()
    executor.wait_ready()
    [sent] = await eventually(lambda: _requests_of(kafka, acct, p, 1))
    assert sent["step_id"] == "text"
    await barrier(url, kafka, acct, p)
    assert len(await _requests_of(kafka, acct, p, 1) or []) == 1
    [timer] = await rows(
        stack.dsn,
        "SELECT t.kind, t.outcome FROM timers t JOIN runs r USING (run_id) WHERE r.account_id = $1",
        acct,
    )
    assert (timer["kind"], timer["outcome"]) == ("quiet_hours", "fired")


async def test_f9_smart_sending_skips_a_second_flows_sms_and_not_with_the_setting_0(
    executor: ServiceProcess, kafka: Kafka, acct: str
) -> None:
    url = executor.base_url
    await any_hour(url, acct)
    text = {"id": "text", "type": "sms", "next": None}
    await save(kafka, flow(acct, "first", [text], trigger={"type": "metric", "metric": "A"}))
    second = [text | {"next": "alert"}, alert()]
    await save(kafka, flow(acct, "second", second, trigger={"type": "metric", "metric": "B"}))
    anyway = [text | {"smart_sending_hours": 0}]
    await save(kafka, flow(acct, "anyway", anyway, trigger={"type": "metric", "metric": "C"}))
    for flow_id in ("first", "second", "anyway"):
        await in_force(url, acct, flow_id, 1)
    p, number = pid(), "+12125550177"
    await _texted(kafka, url, acct, p, number, "A")
    await eventually(lambda: _requests_of(kafka, acct, p, 1))
    await _texted(kafka, url, acct, p, number, "B")

    async def skipped() -> dict | None:
        doc = await activity_api(url, acct, "second")
        reasons = doc["steps"]["text"]["skipped"]["reasons"]
        return doc if reasons else None

    doc = await eventually(skipped)
    assert doc["steps"]["text"]["skipped"]["reasons"][0]["reason"] == "Skipped: smart sending"
    [goes_on] = await eventually(lambda: outputs(kafka, topics.ALERT_REQUESTS, acct))
    assert goes_on["profile_id"] == p  # the run went on past the skipped step
    await _texted(kafka, url, acct, p, number, "C")
    found = await eventually(lambda: _requests_of(kafka, acct, p, 2))
    assert [r["flow_id"] for r in found] == ["first", "anyway"]


async def test_f8_sending_settings_over_the_api_scoped_and_checked(
    executor: ServiceProcess, acct: str
) -> None:
    url = executor.base_url
    path = "/sending-settings"
    got = (await api(url, acct, path)).json()
    assert got == {
        "account_id": acct,
        "window_start": "08:00",
        "window_end": "21:00",
        "timezone": "UTC",
        "email_quiet_hours": False,
    }
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        headers = {"Authorization": f"Bearer {key_of(acct)}"}
        put = partial(client.put, f"/accounts/{acct}{path}", headers=headers)
        ok = await put(json={"timezone": "America/Chicago", "email_quiet_hours": True})
        assert ok.status_code == 200 and ok.json()["timezone"] == "America/Chicago"
        bad_zone = await put(json={"timezone": "America/Gotham"})
        assert bad_zone.status_code == 422 and "IANA" in bad_zone.json()["error"]
        bad_window = await put(json={"window_start": "22:00", "window_end": "06:00"})
        assert bad_window.status_code == 422 and "start before" in bad_window.json()["error"]
    again = (await api(url, acct, path)).json()
    assert (again["timezone"], again["email_quiet_hours"]) == ("America/Chicago", True)
    assert (await api(url, acct, path, key=key_of("globex"))).status_code == 404  # X5


# --- C17: what each decision rested on, through the running executor --------------------


async def test_c17_requests_and_skipped_steps_name_the_receipt_and_the_suppression(
    executor: ServiceProcess, kafka: Kafka, acct: str
) -> None:
    url = executor.base_url
    mail = {"id": "mail", "type": "email", "next": None, "client_id": "events"}
    await save(kafka, flow(acct, "explain", [mail]))
    await in_force(url, acct, "explain", 1)
    ok, out, bounced = pid(), pid(), pid()
    subscribed = {"email": {"status": "subscribed"}}
    for p in (ok, out, bounced):
        change = consent(acct, p, "Subscribed to Email Marketing", **subscribed)
        await kafka.send(
            topics.CONSENT_CHANGES, p, change.model_copy(update={"receipt_id": f"r-{p}"})
        )
    opt_out = consent(
        acct, out, at="2026-11-23T11:00:00Z", opt_outs=["client:events"], **subscribed
    ).model_copy(update={"receipt_id": f"r-{out}-opt-out", "scope": "client:events"})
    await kafka.send(topics.CONSENT_CHANGES, out, opt_out)
    bounce = {"channel": "email", "reason": "hard_bounce", "list_id": None, "since": "2026-11-23"}
    await kafka.send(
        topics.SUPPRESSION_CHANGES, bounced, suppression(acct, bounced, "hard_bounce", [bounce])
    )

    async def known() -> bool:
        docs = [(await api(url, acct, f"/profiles/{p}/reachability")) for p in (ok, out, bounced)]
        return [d.status_code for d in docs] == [200] * 3 and [
            d.json()["grounds"]["email"] for d in docs
        ] == [
            {"receipt_id": f"r-{ok}", "suppressions": []},
            {"receipt_id": f"r-{out}", "suppressions": []},  # no client asked: the email one
            {"receipt_id": f"r-{bounced}", "suppressions": [bounce]},
        ]

    await eventually(known)
    r = await api(url, acct, f"/profiles/{out}/reachability?client_id=events")
    assert r.json()["grounds"]["email"]["receipt_id"] == f"r-{out}-opt-out"
    assert r.json()["receipts"] == {"email": f"r-{out}", "scope:client:events": f"r-{out}-opt-out"}
    for p in (ok, out, bounced):
        await send_event(kafka, event(acct, p))
    await eventually(lambda: _n(activity_of(kafka, acct, "exited"), 3))
    [request] = await outputs(kafka, topics.MESSAGE_REQUESTS, acct)
    assert (request["profile_id"], request["receipt_id"]) == (ok, f"r-{ok}")
    assert request["suppressions"] == []
    skipped = {a["profile_id"]: a for a in await activity_of(kafka, acct, "skipped")}
    assert skipped[out]["reason"] == "Skipped: opted out (client:events)"
    assert (skipped[out]["receipt_id"], skipped[out]["suppressions"]) == (f"r-{out}-opt-out", [])
    assert skipped[bounced]["reason"] == "Skipped: suppressed (hard_bounce)"
    assert skipped[bounced]["suppressions"] == [bounce]
