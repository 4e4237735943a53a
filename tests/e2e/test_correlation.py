"""End to end, X4: one event followed through the services by its correlation id.

A profile event enters a flow whose alert waits on a (one-second) delay: the step after
the delay runs later, from the executor's scheduler, and the outcome is recorded later
still, once the mail worker has sent the alert over SMTP. Both happen in units of work
of their own, long after the event's batch; the `alert-requests`, `flow-activity` and
`alert-outcomes` records the event causes must still carry its correlation id (and its
W3C trace context when it came with one).
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.contracts import topics
from tests.conftest import Kafka, eventually, mail_to
from tests.e2e.test_alert_slice import LINK, _body, click, event, flow, saved_by_executor

pytestmark = pytest.mark.e2e

Record = tuple[dict[str, Any], dict[str, str]]


@pytest.fixture(scope="module")
def services(stack):
    stack.start_services()
    try:
        yield stack
    finally:
        stack.stop_services()


async def records(bootstrap: str, topic: str, account: str) -> list[Record]:
    """Every record of `account` now on `topic`: (JSON value, headers)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not parts:
            return []
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        remaining = {tp for tp in parts if end[tp] > 0}
        found: list[Record] = []
        deadline = time.monotonic() + 10
        while remaining and time.monotonic() < deadline:
            for tp, batch in (await consumer.getmany(timeout_ms=200)).items():
                for r in batch:
                    if r.offset + 1 >= end[tp]:
                        remaining.discard(tp)
                    value = r.value and json.loads(r.value)
                    if value and value.get("account_id") == account:
                        headers = {k: v.decode() for k, v in r.headers or ()}
                        found.append((value, headers))
        return found
    finally:
        await consumer.stop()


async def _confirmed_flow(services, kafka: Kafka, account: str) -> str:
    """A flow whose internal alert waits one second after the event, to a recipient who
    has confirmed."""
    lead = f"x4-lead-{account}@acme.test"
    definition = flow(account, "nps", [lead])
    definition["steps"][0]["seconds"] = 1
    await kafka.send(topics.FLOW_DEFINITIONS, f"{account}:nps", definition)

    async def confirmation() -> list[Any]:
        return mail_to(services, lead)

    [mail] = await eventually(confirmation)
    assert click(LINK.search(_body(mail)).group(1), "POST") == 200
    await saved_by_executor(services, account, "nps")
    return lead


async def test_x4_correlation_id_follows_an_event_through_delay_and_mail(
    services, kafka: Kafka, account: str
) -> None:
    lead = await _confirmed_flow(services, kafka, account)
    correlated, traced = event(account), event(account)
    correlation_id = f"x4-{uuid.uuid4().hex}"
    trace_id = uuid.uuid4().hex
    traceparent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    sent_with = {
        correlated["profile"]["id"]: [("correlation_id", correlation_id.encode())],
        traced["profile"]["id"]: [("traceparent", traceparent.encode())],
    }
    for ev in (correlated, traced):
        pid = ev["profile"]["id"]
        raw = json.dumps(ev).encode()
        await kafka.producer.send_and_wait(
            topics.PROFILE_EVENTS, raw, key=pid.encode(), headers=sent_with[pid]
        )
    # The event with only a trace context is followed by its trace id.
    expected = {
        correlated["profile"]["id"]: {"correlation_id": correlation_id},
        traced["profile"]["id"]: {"correlation_id": trace_id, "traceparent": traceparent},
    }

    bootstrap = services.broker.bootstrap

    async def outcomes() -> list[Record]:
        found = await records(bootstrap, topics.ALERT_OUTCOMES, account)
        return found if len(found) == 2 else []

    done = await eventually(outcomes, timeout_s=60)
    assert {v["type"] for v, _ in done} == {"sent"}
    assert len([m for m in mail_to(services, lead) if "Detractor" in str(m["Subject"])]) == 2

    requests = await records(bootstrap, topics.ALERT_REQUESTS, account)
    activity = await records(bootstrap, topics.FLOW_ACTIVITY, account)
    for pid, want in expected.items():
        for name, found in (("alert-requests", requests), ("alert-outcomes", done)):
            [headers] = [h for v, h in found if v["profile_id"] == pid]
            assert {k: headers.get(k) for k in want} == want, name
        mine = [(v, h) for v, h in activity if v["profile_id"] == pid]
        # entered, the delay scheduled, then from the scheduler: the delay passed, the
        # alert executed, the run's end.
        assert {v["type"] for v, _ in mine} >= {"entered", "scheduled", "executed"}
        assert [v for v, _ in mine if v["type"] == "executed" and v["step_id"] == "wait"]
        for v, headers in mine:
            assert {k: headers.get(k) for k in want} == want, v["type"]


def post(url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    req = urllib.request.Request(
        url,
        method="POST",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, dict(r.headers)


async def test_x4_an_api_requests_correlation_id_follows_its_command_to_consent_changes(
    services, kafka: Kafka
) -> None:
    """An output caused by an HTTP request has no input record: the request's
    `X-Correlation-Id` takes its place, through the command the API queues on Kafka to
    the consent change the consent service publishes."""
    pid = f"p-{uuid.uuid4().hex[:8]}"
    correlation_id = f"x4-http-{uuid.uuid4().hex}"
    url = services.services["consent"].base_url + f"/accounts/acme/profiles/{pid}/consent/subscribe"
    status, answered = post(
        url,
        {"channel": "sms", "profile": {"phone_number": "+15555550177"}, "evidence": "form #7"},
        {"Authorization": f"Bearer {services.key_of('acme')}", "X-Correlation-Id": correlation_id},
    )
    assert status == 202
    assert answered.get("x-correlation-id") == correlation_id

    async def changes() -> list[Record]:
        found = await records(services.broker.bootstrap, topics.CONSENT_CHANGES, "acme")
        return [(v, h) for v, h in found if v["profile_id"] == pid]

    [(_, headers)] = await eventually(changes)
    assert headers["correlation_id"] == correlation_id
