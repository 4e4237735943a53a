"""`consentflow demo`: the main job end to end on the embedded stack.

It starts the broker, PostgreSQL, the SMTP capture server and the four services, then
plays a shop's day: flows with internal alerts are saved, recipients confirm through
the mailed links (one never does), profiles subscribe and unsubscribe, bounces and a
spam complaint arrive, thousands of events flow in, a recipient unsubscribes from
alerts mid-way, a manual-mode alert waits for review and is approved through the API,
two marketing flows text and mail the same subscribers (quiet hours hold the texts of
those for whom it is night, F8; the second flow skips whoever the first one reached,
F9), and a few malformed messages are dead-lettered. It prints progress and a summary
read back from the output topics, the flow activity API and the captured mail.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.contracts import topics
from tools.devstack import EmbeddedStack

ACCOUNT = "acme"
LINK = re.compile(r"(http://127\.0\.0\.1:\d+/links/[^\s\"<>]+)")


def _flow(
    flow_id: str,
    metric: str,
    recipients: list[str],
    *,
    version: int = 1,
    filter: dict | None = None,
    delay: int = 0,
    mode: str = "live",
    subject: str = "",
    body: str = "",
) -> dict[str, Any]:
    return {
        "account_id": ACCOUNT,
        "flow_id": flow_id,
        "version": version,
        "name": flow_id.replace("-", " ").title(),
        "trigger": {"type": "metric", "metric": metric, "filter": filter},
        "profile_filter": None,
        "steps": [
            {"id": "wait", "type": "delay", "seconds": delay, "next": "alert"},
            {
                "id": "alert",
                "type": "internal_alert",
                "mode": mode,
                "recipients": recipients,
                "from_email": "alerts@acme.test",
                "from_name": "Acme alerts",
                "subject": subject,
                "body": body,
                "next": None,
            },
        ],
    }


FLOWS = [
    _flow(
        "nps-detractors",
        "Left NPS Score",
        ["cx-lead@acme.test", "Support@acme.test", "ops@acme.test"],
        filter={"property": "score", "op": "lte", "value": 3},
        subject="Detractor: {{ person.email }} scored {{ event.score }}",
        body="{{ person.first_name }} ({{ person.tier }}) left a score of {{ event.score }}:"
        " {{ event.comment }}",
    ),
    _flow(
        "refunds",
        "Requested Refund",
        ["finance@acme.test"],
        subject="Refund request from {{ person.email }}",
        body="Order {{ event.order_id }}: {{ event.amount }} EUR",
    ),
    _flow(
        "returns",
        "Started Return",
        ["warehouse@acme.test"],
        subject="Return started",
        body="{{ person.email }} is returning {{ event.sku }}",
    ),
    _flow(
        "vip-orders",
        "Placed Order",
        ["sales@acme.test"],
        delay=2,
        mode="manual",
        filter={"property": "value", "op": "gte", "value": 900},
        subject="VIP order {{ event.order_id }}",
        body="{{ person.email }} spent {{ event.value }}",
    ),
]


def _message_flow(flow_id: str, metric: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """A marketing flow of `email` and `sms` steps, run in the order given (F8, F9)."""
    for step, after in zip(steps, [*steps[1:], None], strict=True):
        step["next"] = after["id"] if after else None
    return {
        "account_id": ACCOUNT,
        "flow_id": flow_id,
        "version": 1,
        "name": flow_id.replace("-", " ").title(),
        "trigger": {"type": "metric", "metric": metric, "filter": None},
        "profile_filter": None,
        "steps": steps,
    }


# Two flows message the same SMS subscribers one after the other: the first texts, then
# mails; the second mails, then texts. Quiet hours hold the texts (F8) of the profiles
# for whom it is night; smart sending (default 16 hours) skips what the first flow sent.
MESSAGE_FLOWS = [
    _message_flow(
        "cart-reminder",
        "Abandoned Cart",
        [
            {"id": "text", "type": "sms", "body": "Your cart is waiting: 10% off today"},
            {"id": "mail", "type": "email", "template_id": "cart", "subject": "Your cart"},
        ],
    ),
    _message_flow(
        "price-drop",
        "Price Drop",
        [
            {"id": "mail", "type": "email", "template_id": "price", "subject": "Price drop"},
            {"id": "text", "type": "sms", "body": "An item you viewed is cheaper now"},
        ],
    ),
]
# acme's sending window (F8), set over the executor's API: 08:00-20:00 local, the
# stricter hours some US states keep (the TCPA's default is 08:00-21:00).
QUIET_HOURS = "Waiting: quiet hours"
SMART_SENDING = "Skipped: smart sending"
SENDING_WINDOW = {"window_start": "08:00", "window_end": "20:00"}
# Recipient zones the demo picks from at run time: one where it is night now, one where
# it is day, so some texts are held whatever the real clock says.
ZONES = (
    "Pacific/Honolulu",
    "America/Anchorage",
    "America/Los_Angeles",
    "America/Chicago",
    "America/New_York",
    "America/Sao_Paulo",
    "Atlantic/Azores",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Helsinki",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Bangkok",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
)


def _minutes(clock: str) -> int:
    return int(clock[:2]) * 60 + int(clock[3:])


def _night_and_day(now: datetime) -> tuple[str, str]:
    """The zone deepest in the quiet hours now, and the one deepest in the window."""
    start, end = _minutes(SENDING_WINDOW["window_start"]), _minutes(SENDING_WINDOW["window_end"])

    def local(zone: str) -> int:
        t = now.astimezone(ZoneInfo(zone))
        return t.hour * 60 + t.minute

    def inside(zone: str) -> int:  # minutes to the nearer edge of the window, or -1
        m = local(zone)
        return min(m - start, end - m) if start <= m < end else -1

    def outside(zone: str) -> int:  # minutes to the nearer edge of the night, or -1
        m = local(zone)
        return -1 if start <= m < end else min((start - m) % 1440, (m - end) % 1440)

    return max(ZONES, key=outside), max(ZONES, key=inside)


# Saved with six recipients: rejected when saved (A1), dead-lettered with the reason.
BAD_FLOW = _flow(
    "too-many", "Left NPS Score", [f"r{i}@acme.test" for i in range(6)], subject="x", body="y"
)


@dataclass
class Tally:
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    consent: Counter[str] = field(default_factory=Counter)
    suppression: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)


async def _follow(bootstrap: str, tally: Tally, stop: asyncio.Event) -> None:
    """Read the output and dead-letter topics from the beginning while the demo runs."""
    watched = [
        topics.ALERT_OUTCOMES,
        topics.CONSENT_CHANGES,
        topics.SUPPRESSION_CHANGES,
        *(topics.dlq(t) for t in topics.INPUT_TOPICS + topics.OUTPUT_TOPICS),
    ]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [
            TopicPartition(t, p) for t in watched for p in (consumer.partitions_for_topic(t) or ())
        ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, records in batch.items():
                for r in records:
                    value = json.loads(r.value) if r.value else {}
                    if tp.topic == topics.ALERT_OUTCOMES:
                        tally.outcomes.append(value)
                    elif tp.topic == topics.CONSENT_CHANGES:
                        tally.consent[value.get("type", "?")] += 1
                    elif tp.topic == topics.SUPPRESSION_CHANGES:
                        tally.suppression[f"{value.get('type')}: {value.get('reason')}"] += 1
                    else:
                        tally.dead_letters[tp.topic] += 1
    finally:
        await consumer.stop()


def _http(url: str, method: str = "GET", token: str | None = None) -> int:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _api(url: str, token: str, method: str = "GET", body: Any = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, method=method, data=data)
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:
        return dict(json.loads(r.read()))


async def _sending_limit(stack: EmbeddedStack, send) -> dict[str, Any]:
    """A8: a second account with a sending limit of 5 alert mails per hour raises 12
    alerts; 5 go out now, the rest wait for the next window (none is dropped)."""
    dispatcher = stack.services["alert_dispatcher"].base_url
    settings_url = f"{dispatcher}/accounts/globex/alert-settings"
    await asyncio.to_thread(
        _api, settings_url, stack.key_of("globex"), "PUT", {"alert_send_limit_per_hour": 5}
    )
    flow = _flow(
        "churn-risk",
        "Cancelled Subscription",
        ["duty@globex.test"],
        subject="Churn risk: {{ person.email }}",
        body="{{ person.email }} cancelled",
    )
    flow["account_id"] = "globex"
    await send(topics.FLOW_DEFINITIONS, "globex:churn-risk", flow)
    url = (
        await _wait(
            "confirmation to duty@globex.test", lambda: _links(stack, "duty@globex.test", "confirm")
        )
    )[0]
    await asyncio.to_thread(_http, url, "POST")  # the page's button (C12)
    executor = stack.services["flow_executor"].base_url
    await _wait(
        "churn-risk saved",
        lambda: (
            _http(
                f"{executor}/accounts/globex/flows/churn-risk/activity",
                token=stack.key_of("globex"),
            )
            == 200
        ),
    )
    for n in range(12):
        pid = f"g-{n}"
        await send(
            topics.PROFILE_EVENTS,
            pid,
            {
                "event_id": f"globex-{n}",
                "account_id": "globex",
                "metric": "Cancelled Subscription",
                "profile": {"id": pid, "email": f"{pid}@example.com"},
                "properties": {},
                "time": "2026-11-23T10:00:00Z",
            },
        )
    action_url = f"{dispatcher}/accounts/globex/alerts/churn-risk/alert"

    def settled() -> dict[str, Any] | None:
        totals = _api(action_url, stack.key_of("globex"))["totals"]
        return totals if totals.get("sent", 0) + totals.get("waiting", 0) >= 12 else None

    totals = await _wait("globex alerts sent or waiting", settled, 60)
    waiting = (await asyncio.to_thread(_api, settings_url, stack.key_of("globex")))["waiting_mails"]
    return {"totals": totals, "waiting_mails": waiting}


def _message_steps(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per message step of a flow's activity: requested (executed), waiting for quiet
    hours (count, earliest release) and skipped (count per reason)."""
    out = {}
    for step_id, step in doc["steps"].items():
        if step.get("type") not in ("email", "sms"):
            continue
        waiting = [p for p in step["scheduled"]["profiles"] if p["reason"]]
        out[step_id] = {
            "channel": step["type"],
            "requested": step["executed"]["count"],
            "held": step["scheduled"]["count"],
            "release": min((p["due_at"] for p in waiting), default=None),
            "skipped": {r["reason"]: r["count"] for r in step["skipped"]["reasons"]},
        }
    return out


async def _quiet_hours_and_smart_sending(stack: EmbeddedStack, send, flush) -> dict[str, Any]:
    """F8 and F9: acme's sending window is set over the executor's API; 40 SMS
    subscribers, half in a zone where it is night now and half where it is day, enter
    `cart-reminder` (text, then mail), then `price-drop` (mail, then text)."""
    executor = stack.services["flow_executor"].base_url
    key = stack.key_of(ACCOUNT)
    settings = await asyncio.to_thread(
        _api, f"{executor}/accounts/{ACCOUNT}/sending-settings", key, "PUT", SENDING_WINDOW
    )
    for flow in MESSAGE_FLOWS:
        await send(topics.FLOW_DEFINITIONS, f"{ACCOUNT}:{flow['flow_id']}", flow)
    await flush()
    for flow in MESSAGE_FLOWS:
        url = f"{executor}/accounts/{ACCOUNT}/flows/{flow['flow_id']}/activity"
        await _wait(f"flow {flow['flow_id']} saved", lambda u=url: _http(u, token=key) == 200)
    now = datetime.now(UTC)
    night, day = _night_and_day(now)
    print(
        f"6. quiet hours and smart sending: acme's window set to {settings['window_start']}–"
        f"{settings['window_end']} local over the API; 40 SMS subscribers,"
        f" 20 in {night} ({now.astimezone(ZoneInfo(night)):%H:%M}),"
        f" 20 in {day} ({now.astimezone(ZoneInfo(day)):%H:%M})",
        flush=True,
    )
    people = [1 + 2 * i for i in range(40)]  # p-00001, p-00003, …: subscribed to SMS
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    outcomes: dict[str, Any] = {}
    for flow in MESSAGE_FLOWS:
        metric = flow["trigger"]["metric"]
        for n, i in enumerate(people):
            pid = f"p-{i:05d}"
            profile = {
                "id": pid,
                "email": f"{pid}@example.com",
                "phone_number": f"+1555000{i:04d}",
                "properties": {"timezone": night if n % 2 else day},
            }
            event = {
                "event_id": f"demo-{flow['flow_id']}-{i}",
                "account_id": ACCOUNT,
                "metric": metric,
                "profile": profile,
                "properties": {},
                "time": stamp,
            }
            await send(topics.PROFILE_EVENTS, pid, event)
        await flush()
        url = f"{executor}/accounts/{ACCOUNT}/flows/{flow['flow_id']}/activity?limit=1"
        order = [s["id"] for s in flow["steps"]]

        def settled(u: str = url, order: list[str] = order) -> dict[str, Any] | None:
            steps = _message_steps(_api(u, key))
            reached = len(people)  # every run reaches the first step; a wait stops it
            for step_id in order:
                s = steps.get(step_id)
                if s is None:
                    return None
                done = s["requested"] + sum(s["skipped"].values())
                if done + s["held"] != reached:
                    return None
                reached = done
            return steps

        outcomes[flow["flow_id"]] = await _wait(f"{flow['flow_id']} settled", settled, 60)
    return {"window": f"{settings['window_start']}–{settings['window_end']}", "flows": outcomes}


def _links(stack: EmbeddedStack, to: str, kind: str) -> list[str]:
    found = []
    for mail in stack.smtp.messages():
        if to.lower() in str(mail["To"]).lower():
            part = mail.get_body(preferencelist=("plain",))
            text = part.get_content() if part else ""
            found += [u for u in LINK.findall(text) if kind in u]
    return found


async def _wait(what: str, probe, timeout_s: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := probe():
            return result
        await asyncio.sleep(0.1)
    raise TimeoutError(f"demo: timed out waiting for {what}")


def _event(rng: random.Random, n: int, metric: str, props: dict[str, Any]) -> dict[str, Any]:
    pid = f"p-{rng.randrange(2000):05d}"
    return {
        "event_id": f"demo-{n}",
        "account_id": ACCOUNT,
        "metric": metric,
        "profile": {
            "id": pid,
            "email": f"{pid}@example.com",
            "first_name": "Pat",
            "phone_number": f"+1555{rng.randrange(10**7):07d}",
            "properties": {"tier": rng.choice(["gold", "silver", "bronze"])},
        },
        "properties": props,
        "time": "2026-11-23T10:00:00Z",
    }


def _events(count: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for n in range(count):
        roll = rng.random()
        if roll < 0.70:
            score = rng.choice([0, 1, 2, 3] + [5, 6, 7, 8, 9, 10] * 5)
            out.append(_event(rng, n, "Left NPS Score", {"score": score, "comment": "<b>meh</b>"}))
        elif roll < 0.85:
            out.append(_event(rng, n, "Viewed Product", {"sku": f"sku-{rng.randrange(90)}"}))
        elif roll < 0.95:
            out.append(
                _event(
                    rng, n, "Placed Order", {"order_id": f"o-{n}", "value": rng.randrange(20, 1000)}
                )
            )
        elif roll < 0.98:
            out.append(_event(rng, n, "Requested Refund", {"order_id": f"o-{n}", "amount": 42}))
        else:
            out.append(_event(rng, n, "Started Return", {"sku": "sku-1"}))
    return out


def _expected_live_alerts(events: list[dict[str, Any]]) -> int:
    return sum(
        1
        for e in events
        if (e["metric"] == "Left NPS Score" and e["properties"]["score"] <= 3)
        or e["metric"] in ("Requested Refund", "Started Return")
    )


async def _scenario(stack: EmbeddedStack, count: int) -> dict[str, Any]:
    bootstrap = stack.broker.bootstrap
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    tally = Tally()
    stop = asyncio.Event()
    follower = asyncio.create_task(_follow(bootstrap, tally, stop))

    async def send(topic: str, key: str | None, value: Any) -> None:
        raw = value if isinstance(value, bytes) or value is None else json.dumps(value).encode()
        await producer.send(topic, raw, key=key.encode() if key else None)

    try:
        print("1. saving flows; recipients get confirmation mails", flush=True)
        for flow in [*FLOWS, BAD_FLOW]:
            await send(topics.FLOW_DEFINITIONS, f"{ACCOUNT}:{flow['flow_id']}", flow)
        await producer.flush()
        for who in ("cx-lead", "support", "finance", "sales"):
            url = (
                await _wait(
                    f"confirmation to {who}",
                    lambda w=who: _links(stack, f"{w}@acme.test", "confirm"),
                )
            )[0]
            status = await asyncio.to_thread(_http, url, "POST")
            print(f"   {who}@acme.test confirmed (HTTP {status})", flush=True)
        print("   ops@ and warehouse@ never confirm", flush=True)
        executor = stack.services["flow_executor"].base_url
        for flow in FLOWS:
            # Topics are read independently: wait until the executor holds every flow.
            url = f"{executor}/accounts/{ACCOUNT}/flows/{flow['flow_id']}/activity"
            await _wait(
                f"flow {flow['flow_id']} saved",
                lambda u=url: _http(u, token=stack.key_of(ACCOUNT)) == 200,
            )

        print("2. consent and suppression commands", flush=True)
        now = "2026-11-23T09:00:00Z"
        for i in range(200):
            pid = f"p-{i:05d}"
            profile = {"id": pid, "email": f"{pid}@example.com", "phone_number": f"+1555000{i:04d}"}
            await send(
                topics.CONSENT_COMMANDS,
                pid,
                {
                    "command_id": f"demo-sub-{i}",
                    "account_id": ACCOUNT,
                    "profile": profile,
                    "action": "subscribe",
                    "channel": "sms" if i % 2 else "email",
                    "method": "form",
                    "consented_at": now,
                },
            )
            if i % 10 == 0:
                await send(
                    topics.CONSENT_COMMANDS,
                    pid,
                    {
                        "command_id": f"demo-unsub-{i}",
                        "account_id": ACCOUNT,
                        "profile": profile,
                        "action": "unsubscribe",
                        "channel": "sms",
                        "method": "api",
                        "consented_at": "2026-11-23T09:30:00Z",
                    },
                )
            if i % 25 == 0:
                await send(
                    topics.SUPPRESSION_COMMANDS,
                    pid,
                    {
                        "command_id": f"demo-bounce-{i}",
                        "account_id": ACCOUNT,
                        "profile": profile,
                        "action": "suppress",
                        "reason": "hard_bounce",
                        "occurred_at": now,
                    },
                )
        await send(
            topics.SUPPRESSION_COMMANDS,
            "p-00003",
            {
                "command_id": "demo-spam-3",
                "account_id": ACCOUNT,
                "profile": {"id": "p-00003", "email": "p-00003@example.com"},
                "action": "suppress",
                "reason": "spam_complaint",
                "occurred_at": now,
            },
        )

        await producer.flush()

        # C8: email subscriptions wait for the confirmation click; 30 profiles click.
        def thirty_links() -> list[str] | None:
            found = _links(stack, "@example.com", "consent/confirm")
            return found[:30] if len(found) >= 30 else None

        confirm_links = await _wait("double opt-in confirmation mails", thirty_links)
        clicked = [await asyncio.to_thread(_http, u, "POST") for u in confirm_links]
        print(
            f"   {len(clicked)} profiles clicked their double opt-in link "
            f"({clicked.count(200)} × HTTP 200)",
            flush=True,
        )
        events = _events(count)
        half = len(events) // 2
        print(f"3. publishing {len(events)} profile events (with 3 malformed ones)", flush=True)
        for bad in (b'{"event_id": 1', b"\xff\xfe not json", b'{"event_id": "x"}'):
            await send(topics.PROFILE_EVENTS, "bad", bad)
        started = time.perf_counter()
        expected_first = _expected_live_alerts(events[:half])
        for e in events[:half]:
            await send(topics.PROFILE_EVENTS, e["profile"]["id"], e)
        await producer.flush()
        await _progress(tally, expected_first, f"first {half} events")

        print(
            "4. finance@ unsubscribes from alerts (one-click POST from an alert mail)", flush=True
        )
        unsub = (
            await _wait(
                "an alert to finance", lambda: _links(stack, "finance@acme.test", "unsubscribe")
            )
        )[0]
        print(
            f"   POST {unsub.split('?')[0]} → HTTP {await asyncio.to_thread(_http, unsub, 'POST')}"
        )
        expected_all = expected_first + _expected_live_alerts(events[half:])
        for e in events[half:]:
            await send(topics.PROFILE_EVENTS, e["profile"]["id"], e)
        await producer.flush()
        await _progress(tally, expected_all, f"all {len(events)} events")
        elapsed = time.perf_counter() - started

        print("5. approving one VIP-order alert held in review", flush=True)
        activity_url = f"{executor}/accounts/{ACCOUNT}/reviews"

        def in_review() -> list[dict[str, Any]]:
            req = urllib.request.Request(
                activity_url, headers={"Authorization": f"Bearer {stack.key_of(ACCOUNT)}"}
            )
            with urllib.request.urlopen(req, timeout=10) as r:
                held = json.loads(r.read())["in_review"]
            return [h for h in held if h["flow_id"] == "vip-orders"]

        held = await _wait("an alert in review", in_review, 30)
        approve = f"{executor}/accounts/{ACCOUNT}/reviews/{held[0]['alert_id']}/approve"
        print(
            f"   {len(held)} in review; approve → HTTP "
            f"{await asyncio.to_thread(_http, approve, 'POST', stack.key_of(ACCOUNT))}"
        )
        await _wait(
            "the approved alert's outcome",
            lambda: any(o["alert_id"] == held[0]["alert_id"] for o in tally.outcomes),
            60,
        )
        messages = await _quiet_hours_and_smart_sending(stack, send, producer.flush)
        print("7. a second account (globex) with a sending limit of 5 mails per hour")
        limited = await _sending_limit(stack, send)
        erase = await _erase(stack, "p-00001")
        consent = stack.services["consent"].base_url
        proof = await asyncio.to_thread(
            _api, f"{consent}/accounts/{ACCOUNT}/consent/verify", stack.key_of(ACCOUNT)
        )
        proof["erased"] = await asyncio.to_thread(
            _api,
            f"{consent}/accounts/{ACCOUNT}/profiles/p-00001/consent/verify",
            stack.key_of(ACCOUNT),
        )
        await asyncio.sleep(1.0)  # let the follower catch the last change events
        return {
            "erase": erase,
            "proof": proof,
            "elapsed": elapsed,
            "events": len(events),
            "tally": tally,
            "in_review": len(held) - 1,
            "limited": limited,
            "messages": messages,
        }
    finally:
        stop.set()
        await follower
        await producer.stop()


async def _erase(stack: EmbeddedStack, profile_id: str) -> dict[str, Any]:
    """P1/P2: one person asks to be forgotten; every service erases its part."""
    print(f"8. erasing {profile_id} (a data-subject request, all four services)", flush=True)
    base = f"{stack.services['consent'].base_url}/accounts/{ACCOUNT}/privacy-requests"
    filed = await asyncio.to_thread(
        _api, base, stack.key_of(ACCOUNT), "POST", {"action": "erase", "profile_id": profile_id}
    )

    def done() -> dict[str, Any] | None:
        try:
            status = _api(f"{base}/{filed['request_id']}", stack.key_of(ACCOUNT))
        except urllib.error.HTTPError:
            return None
        return status if status["status"] == "done" else None

    return dict(await _wait("the erase request", done, 60))


async def _progress(tally: Tally, expected: int, label: str) -> None:
    """Wait until the alert outcomes of the events published so far (`label`) are in,
    saying how many have arrived once a second: a count that grows, not a loss."""
    last = time.monotonic()
    deadline = time.monotonic() + 300
    while (done := len([o for o in tally.outcomes if o["flow_id"] != "vip-orders"])) < expected:
        if time.monotonic() > deadline:
            raise TimeoutError(f"demo: {label}: not every expected alert outcome arrived")
        if time.monotonic() - last >= 1.0:
            print(
                f"   {label} published; alert outcomes so far: {done} of {expected} expected",
                flush=True,
            )
            last = time.monotonic()
        await asyncio.sleep(0.05)
    print(f"   {label} published; all {expected} expected alert outcomes arrived", flush=True)


def _message_summary(messages: dict[str, Any]) -> None:
    """F8 and F9 as the flow activity API shows them, per message step."""
    steps = [(f, s) for f, flow in messages["flows"].items() for s in flow.values()]
    requested = Counter({"sms": 0, "email": 0})
    for _, s in steps:
        requested[s["channel"]] += s["requested"]
    held = sum(s["held"] for _, s in steps)
    releases = [datetime.fromisoformat(s["release"]) for _, s in steps if s["release"]]
    release = f"{min(releases).astimezone(UTC):%Y-%m-%d %H:%M} UTC" if releases else "-"
    smart = sum(s["skipped"].get(SMART_SENDING, 0) for _, s in steps)
    print(
        f"messages:       {sum(requested.values())} requested"
        f" ({requested['sms']} sms, {requested['email']} email) by {', '.join(messages['flows'])}"
    )
    print(
        f"quiet hours:    {held} held until {release} at the earliest"
        f" (window {messages['window']} local)"
    )
    print(f"smart sending:  {smart} skipped (messaged on that channel within 16 hours)")
    for flow_id, s in steps:
        parts = [f"{s['requested']:>3} requested"]
        if s["held"]:
            parts.append(f"{s['held']} {QUIET_HOURS}")
        parts += [f"{n} {r}" for r, n in sorted(s["skipped"].items(), key=lambda x: -x[1])]
        print(f"   {flow_id:<16} {s['channel']:<6}" + ", ".join(parts))


def _summary(stack: EmbeddedStack, result: dict[str, Any]) -> None:
    tally: Tally = result["tally"]
    sent = [o for o in tally.outcomes if o["type"] == "sent" and o["account_id"] == ACCOUNT]
    skipped = Counter(
        (o["flow_id"], o["reason"])
        for o in tally.outcomes
        if o["type"] == "skipped" and o["account_id"] == ACCOUNT
    )
    mails = len(list(stack.smtp.mail_dir.glob("*.eml")))
    print("\n== summary ==")
    print(f"alerts sent:    {len(sent)}  (to {sum(len(o['recipients']) for o in sent)} recipients)")
    for flow_id, n in Counter(o["flow_id"] for o in sent).most_common():
        print(f"   {flow_id:<16} {n}")
    print(f"alerts skipped: {sum(skipped.values())}")
    for (flow_id, reason), n in skipped.most_common():
        print(f"   {flow_id:<16} {n:>5}  {reason}")
    print(f"in review:      {result['in_review']} (vip-orders, manual mode)")
    _message_summary(result["messages"])
    limited = result["limited"]
    print(
        f"sending limit:  globex, at most 5 mails per hour (duty@globex.test's confirmation"
        f" mail counts too): {limited['totals'].get('sent', 0)} alert mails sent,"
        f" {limited['waiting_mails']} alert mails waiting for the next window, none dropped"
    )
    print(f"mails captured: {mails} .eml files in {stack.smtp.mail_dir}")
    print("consent changes:")
    for kind, n in tally.consent.most_common():
        print(f"   {n:>5}  {kind}")
    print("suppression changes:")
    for kind, n in tally.suppression.most_common():
        print(f"   {n:>5}  {kind}")
    print(f"dead letters:   {sum(tally.dead_letters.values())}")
    for topic, n in tally.dead_letters.most_common():
        print(f"   {n:>5}  {topic}")
    erase = result["erase"]
    rows = sum(
        n for part in erase["services"].values() for n in (part.get("erased") or {}).values()
    )
    print(
        f"privacy erase:  {', '.join(erase['profile_ids'])} erased in"
        f" {len(erase['services'])}/4 services ({rows} rows removed or anonymised;"
        " audit trail kept, address kept only as a keyed hash)"
    )
    rate = result["events"] / result["elapsed"] if result["elapsed"] else 0.0
    print(
        f"throughput:     {result['events']} events in {result['elapsed']:.1f} s ="
        f" {rate:,.0f} events/s end to end (published → every alert outcome)"
    )
    proof = result["proof"]
    erased = proof["erased"]
    chains = "all verify" if proof["ok"] else f"{len(proof['failed'])} fail"
    print(
        f"proof:          {proof['receipts']} consent receipts in {proof['profiles']} hash chains:"
        f" {chains} (C16);"
        f" {erased['profile_id']}'s {erased['receipts']} after its erase:"
        f" {'verify' if erased['ok'] else 'fail'}"
    )
    print(
        "                on your own stack: consentflow consent receipts|verify|explain"
        " (README.md, Proof of consent)"
    )


def _where(stack: EmbeddedStack) -> None:
    """Where the run left its mails and logs (kept until the next run)."""
    print("\n== kept until the next run ==")
    print(f"mails:          {stack.smtp.mail_dir}/*.eml")
    print(f"logs:           {stack.root / 'logs'}/ (broker.log and one .log per service)")


def run_demo(var: Path, events: int = 5000) -> int:
    """Run the demo under `var/` (data, logs, captured mail); returns an exit code."""
    stack = EmbeddedStack(var / "demo")
    print("starting the embedded stack: Tansu broker, PostgreSQL, SMTP capture …", flush=True)
    stack.start()
    try:
        stack.start_services()
        print(
            "four services running:",
            ", ".join(f"{n} {s.base_url}" for n, s in stack.services.items()),
            flush=True,
        )
        result = asyncio.run(_scenario(stack, events))
        _summary(stack, result)
        _where(stack)
        return 0
    finally:
        stack.stop()
