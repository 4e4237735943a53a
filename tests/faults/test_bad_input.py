"""Bad input on every input topic (X1): hypothesis-generated payloads with wrong types,
missing fields, huge strings, invalid UTF-8 and wrong timestamps are each dead-lettered
with a reason, the services keep consuming, and nothing else changes. Forged link
tokens and other accounts' API keys change nothing and show nothing (C12, X5)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.contracts import topics
from tests.conftest import Kafka, eventually

ACCOUNT = f"bad-{uuid.uuid4().hex[:8]}"
PROFILE = {"id": "p-1", "email": "p-1@example.com", "phone_number": "+15555550100"}
VALID: dict[str, dict[str, Any]] = {
    topics.PROFILE_EVENTS: {
        "event_id": "e-1",
        "account_id": ACCOUNT,
        "metric": "Left NPS Score",
        "profile": PROFILE,
        "properties": {"score": 3},
        "time": "2026-11-23T10:00:00Z",
    },
    topics.CONSENT_COMMANDS: {
        "command_id": "c-1",
        "account_id": ACCOUNT,
        "profile": PROFILE,
        "action": "subscribe",
        "channel": "sms",
        "method": "form",
        "consented_at": "2026-11-23T10:00:00Z",
    },
    topics.SUPPRESSION_COMMANDS: {
        "command_id": "s-1",
        "account_id": ACCOUNT,
        "profile": PROFILE,
        "action": "suppress",
        "reason": "manual",
        "occurred_at": "2026-11-23T10:00:00Z",
    },
    topics.SMS_INBOUND: {
        "message_id": "m-1",
        "account_id": ACCOUNT,
        "phone_number": "+15555550100",
        "body": "STOP",
        "received_at": "2026-11-23T10:00:00Z",
    },
    topics.FLOW_DEFINITIONS: {
        "account_id": ACCOUNT,
        "flow_id": "f",
        "version": 1,
        "name": "n",
        "trigger": {"type": "metric", "metric": "Left NPS Score"},
        "steps": [
            {
                "id": "a",
                "type": "internal_alert",
                "recipients": ["x@acme.test"],
                "from_email": "a@acme.test",
                "subject": "s",
                "body": "b",
            }
        ],
    },
    topics.REVIEW_DECISIONS: {"alert_id": "a-1", "decision": "approve", "by": "ops"},
}
REQUIRED = {
    topics.PROFILE_EVENTS: ["event_id", "account_id", "metric", "profile", "time"],
    topics.CONSENT_COMMANDS: [
        "command_id",
        "account_id",
        "profile",
        "action",
        "channel",
        "consented_at",
    ],
    topics.SUPPRESSION_COMMANDS: [
        "command_id",
        "account_id",
        "profile",
        "action",
        "reason",
        "occurred_at",
    ],
    topics.SMS_INBOUND: ["message_id", "account_id", "phone_number", "body", "received_at"],
    topics.FLOW_DEFINITIONS: ["account_id", "flow_id", "version", "name", "trigger", "steps"],
    topics.REVIEW_DECISIONS: ["alert_id", "decision", "by"],
}
# The field that gets a broken timestamp (or, where a payload has none, another value
# that is not of its type).
TIMESTAMPS = {
    topics.PROFILE_EVENTS: "time",
    topics.CONSENT_COMMANDS: "consented_at",
    topics.SUPPRESSION_COMMANDS: "occurred_at",
    topics.SMS_INBOUND: "received_at",
    topics.FLOW_DEFINITIONS: "version",
    topics.REVIEW_DECISIONS: "decision",
}
WRONG_TYPES = st.one_of(
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.booleans(),
)


def _bad_payloads(topic: str) -> list[bytes]:
    """Payloads that must never be accepted, drawn by hypothesis."""
    valid = VALID[topic]
    drawn: list[bytes] = []
    mutation = st.one_of(
        st.sampled_from(REQUIRED[topic]).map(
            lambda f: json.dumps({k: v for k, v in valid.items() if k != f}).encode()
        ),
        st.tuples(st.sampled_from(REQUIRED[topic]), WRONG_TYPES).map(
            lambda fv: json.dumps({**valid, fv[0]: fv[1]}).encode()
        ),
        st.integers(100_001, 120_000).map(  # a huge string where an id belongs
            lambda n: json.dumps({**valid, REQUIRED[topic][0]: "x" * n}).encode()
        ),
        st.binary(min_size=1, max_size=40).map(lambda b: b"\xff\xfe" + b),  # not UTF-8
        st.sampled_from(["yesterday", "2026-11-23T10:00:00", "2026-13-40T99:00:00Z", ""]).map(
            lambda t: json.dumps({**valid, TIMESTAMPS[topic]: t}).encode()
        ),
    )

    @settings(
        max_examples=12, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(mutation)
    def collect(payload: bytes) -> None:
        drawn.append(payload)

    collect()
    return list(dict.fromkeys(drawn))


@pytest.fixture(scope="module")
def services(stack):
    stack.start_services(API_KEYS=f"{ACCOUNT}:{ACCOUNT}-test-api-key,other:other-test-api-key")
    try:
        yield stack
    finally:
        stack.stop_services()


async def test_x1_every_bad_payload_on_every_input_topic_is_dead_lettered(
    services, kafka: Kafka
) -> None:
    sent: dict[str, list[bytes]] = {t: _bad_payloads(t) for t in VALID}
    for topic, payloads in sent.items():
        assert len(payloads) >= 5
        key = f"{ACCOUNT}:f" if topic == topics.FLOW_DEFINITIONS else "p-1"
        for payload in payloads:
            await kafka.send(topic, key, payload)

    async def lettered() -> dict[str, dict[bytes, Any]]:
        got: dict[str, dict[bytes, Any]] = {}
        for topic, payloads in sent.items():
            got[topic] = {}
            for _, v in await kafka.read_all(topics.dlq(topic)):
                original = base64.b64decode(v["original"]) if v and "original" in v else None
                if original in payloads:
                    got[topic][original] = v
        return got

    async def all_lettered() -> bool:
        got = await lettered()
        return all(set(got[t]) == set(p) for t, p in sent.items())

    try:
        await eventually(all_lettered, timeout_s=60)
    finally:
        got = await lettered()
        missing = {t: [p[:120] for p in ps if p not in got[t]] for t, ps in sent.items()}
        assert not any(missing.values()), f"not dead-lettered: {missing}"
    for topic, letters in got.items():
        for letter in letters.values():
            assert letter["error"], "a dead letter names its reason"
            assert letter["source_topic"] == topic and letter["source_offset"] >= 0

    # The services keep consuming: a good message after all that is still applied.
    good = VALID[topics.CONSENT_COMMANDS] | {"command_id": "after-the-storm"}
    await kafka.send(topics.CONSENT_COMMANDS, "p-1", good)

    async def applied() -> list:
        return [
            v
            for _, v in await kafka.read_all(topics.CONSENT_CHANGES)
            if v and v["account_id"] == ACCOUNT
        ]

    changes = await eventually(applied, timeout_s=60)
    # ...and nothing else changed: the only consent change is the good command's.
    assert [c["type"] for c in changes] == ["Subscribed to SMS Marketing"]
    outcomes = [
        v
        for _, v in await kafka.read_all(topics.ALERT_OUTCOMES)
        if v and v["account_id"] == ACCOUNT
    ]
    assert outcomes == []


def _status(url: str, method: str = "GET", key: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.parametrize("service", ["consent", "alert_dispatcher"])
@pytest.mark.parametrize("token", ["", "garbage", "eyJhIjoiYWNtZSJ9.AAAA", "a.b.c"])
def test_c12_forged_tokens_change_nothing(services, service: str, token: str) -> None:
    base = services.services[service].base_url
    paths = {
        "consent": ["/links/consent/confirm", "/links/consent/unsubscribe"],
        "alert_dispatcher": ["/links/recipients/confirm", "/links/recipients/unsubscribe"],
    }[service]
    for path in paths:
        for method in ("GET", "POST"):
            status, _ = _status(f"{base}{path}?token={token}", method)
            assert status in (400, 405), (path, method, status)


def test_x5_other_accounts_key_sees_nothing(services) -> None:
    urls = [
        f"{services.services['consent'].base_url}/accounts/{ACCOUNT}/profiles/p-1/consent",
        f"{services.services['flow_executor'].base_url}/accounts/{ACCOUNT}/reviews",
        f"{services.services['alert_dispatcher'].base_url}/accounts/{ACCOUNT}/alerts/f/a",
    ]
    for url in urls:
        status, body = _status(url, key="other-test-api-key")
        assert status == 404, url
        assert ACCOUNT.encode() not in body
        assert _status(url)[0] == 401
