"""Interop with a Kafka client no one here wrote: librdkafka (the `confluent-kafka` wheel),
the client under most Go, .NET, PHP and Python producers (X7, X1, X2).

A librdkafka producer publishes flows, profile events, consent commands and SMS with each
codec and its own default partitioner (murmur2, unlike aiokafka's), and a librdkafka
consumer reads what the services publish (lz4-compressed by default): alert outcomes,
consent changes, SMS replies and dead letters come out as with our own producer.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from shared.contracts import topics
from tests.e2e.test_alert_slice import event, flow, saved_by_executor

confluent_kafka = pytest.importorskip("confluent_kafka")

pytestmark = pytest.mark.e2e

CODECS = ("gzip", "snappy", "lz4", "zstd")


@pytest.fixture(scope="module")
def services(stack):
    stack.start_services()
    try:
        yield stack
    finally:
        stack.stop_services()


def produce(
    bootstrap: str,
    codec: str,
    messages: list[tuple[str, str, Any, list[tuple[str, bytes]]]],
) -> None:
    """Publish (topic, key, JSON value, headers) with librdkafka and its partitioner."""
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, "compression.type": codec, "linger.ms": 20}
    )
    for topic, key, value, headers in messages:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        producer.produce(topic, raw, key=key.encode(), headers=headers)
    assert producer.flush(20) == 0


def consume(
    bootstrap: str, topic: str, match: Callable[[dict[str, Any]], bool], want: int, timeout_s=90
) -> list[dict[str, Any]]:
    """Read `topic` from the beginning with librdkafka until `want` values match."""
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"interop-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            # The embedded broker holds a join for half the session timeout.
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
        }
    )
    consumer.subscribe([topic])
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < want and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() or not msg.value():
                continue
            value = json.loads(msg.value())
            value["_headers"] = {k: v.decode() for k, v in msg.headers() or ()}
            if match(value):
                found.append(value)
    finally:
        consumer.close()
    assert len(found) >= want, f"{len(found)} of {want} on {topic} within {timeout_s}s"
    return found


async def test_x7_lz4_event_from_librdkafka_becomes_an_alert_outcome_read_by_librdkafka(
    services, account: str
) -> None:
    bootstrap = services.broker.bootstrap
    lead = f"lead-{account}@acme.test"
    await asyncio.to_thread(
        produce,
        bootstrap,
        "lz4",
        [(topics.FLOW_DEFINITIONS, f"{account}:nps", flow(account, "nps", [lead]), [])],
    )
    await saved_by_executor(services, account, "nps")
    ev = event(account, score=2)
    await asyncio.to_thread(
        produce, bootstrap, "lz4", [(topics.PROFILE_EVENTS, ev["profile"]["id"], ev, [])]
    )
    outcomes = await asyncio.to_thread(
        consume, bootstrap, topics.ALERT_OUTCOMES, lambda v: v.get("account_id") == account, 1
    )
    assert outcomes[0]["profile_id"] == ev["profile"]["id"]


def _command(account: str, profile_id: str, phone: str, channel: str) -> dict[str, Any]:
    return {
        "command_id": f"c-{uuid.uuid4().hex}",
        "account_id": account,
        "profile": {"id": profile_id, "email": f"{profile_id}@example.com", "phone_number": phone},
        "action": "subscribe",
        "channel": channel,
        "method": "import",
        "consented_at": "2026-11-23T10:00:00Z",
        # An import applies at once (C4): no double opt-in mail to click through.
        "historical_import": True,
    }


async def test_x7_every_codec_and_librdkafkas_partitioner_for_commands_and_sms(
    services, account: str
) -> None:
    bootstrap = services.broker.bootstrap
    profiles: dict[str, str] = {}
    for i, codec in enumerate(CODECS):
        pid = f"p-{codec}-{uuid.uuid4().hex[:6]}"
        phone = f"+1555555{i:04d}"
        profiles[pid] = codec
        await asyncio.to_thread(
            produce,
            bootstrap,
            codec,
            [
                (topics.CONSENT_COMMANDS, pid, _command(account, pid, phone, "email"), []),
                (
                    topics.SMS_INBOUND,
                    phone,
                    {
                        "message_id": f"m-{uuid.uuid4().hex}",
                        "account_id": account,
                        "phone_number": phone,
                        "body": "HELP",
                        "received_at": "2026-11-23T10:00:00Z",
                    },
                    [],
                ),
            ],
        )
    changes = await asyncio.to_thread(
        consume,
        bootstrap,
        topics.CONSENT_CHANGES,
        lambda v: v.get("account_id") == account,
        len(CODECS),
    )
    assert {c["profile_id"] for c in changes} == set(profiles)
    replies = await asyncio.to_thread(
        consume,
        bootstrap,
        topics.SMS_OUTBOUND,
        lambda v: v.get("account_id") == account,
        len(CODECS),
    )
    assert len(replies) == len(CODECS)


async def test_x2_junk_header_record_from_librdkafka_is_dead_lettered_alone(
    services, account: str
) -> None:
    """A non-UTF-8 `traceparent` between good consent commands for the same profile (one
    partition, one batch): that record goes to the dead-letter topic, its neighbours
    are applied."""
    bootstrap = services.broker.bootstrap
    pid = f"p-{uuid.uuid4().hex[:8]}"
    good_1 = _command(account, pid, "+15555550199", "email")
    junk = _command(account, pid, "+15555550199", "sms")
    good_2 = {**_command(account, pid, "+15555550199", "push")}
    await asyncio.to_thread(
        produce,
        bootstrap,
        "snappy",
        [
            (topics.CONSENT_COMMANDS, pid, good_1, [("correlation_id", b"interop-1")]),
            (topics.CONSENT_COMMANDS, pid, junk, [("traceparent", b"\xff\xfe\x00\x81junk")]),
            (topics.CONSENT_COMMANDS, pid, good_2, []),
        ],
    )
    changes = await asyncio.to_thread(
        consume, bootstrap, topics.CONSENT_CHANGES, lambda v: v.get("profile_id") == pid, 2
    )
    assert {c["channel"] for c in changes} == {"email", "push"}
    # The correlation id of the input is carried to the output it caused.
    email = next(c for c in changes if c["channel"] == "email")
    assert email["_headers"]["correlation_id"] == "interop-1"
    dead = await asyncio.to_thread(
        consume,
        bootstrap,
        topics.dlq(topics.CONSENT_COMMANDS),
        lambda v: v.get("key") == pid,
        1,
    )
    assert json.loads(base64.b64decode(dead[0]["original"]))["command_id"] == junk["command_id"]
    assert "traceparent is not UTF-8" in dead[0]["error"]
