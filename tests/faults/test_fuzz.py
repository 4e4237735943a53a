"""Our own adversary, against all four running services: a careless producer, a hostile
tenant and a mail scanner throw the inputs that once stopped, jammed or fooled a service
(bad addresses and phones, a 5 MB event, junk in URLs and bodies), plus hypothesis
variants of each. Afterwards every service is still running and ready, a control
message for another account still flows (nothing jammed), no answer was a 500, no
answer showed another account's data, and no consent changed without a valid command.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import json
import re
import urllib.parse
import uuid
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.contracts import topics
from shared.limits import MAX_INPUT_BYTES
from tests.conftest import Kafka, eventually, mail_to

RUN = uuid.uuid4().hex[:8]
VICTIM, ATTACKER, CONTROL = f"fz-v-{RUN}", f"fz-a-{RUN}", f"fz-c-{RUN}"
KEYS = {a: f"{a}-fuzz-api-key" for a in (VICTIM, ATTACKER, CONTROL)}
NOW = "2026-11-23T10:00:00Z"


def _drawn(strategy: st.SearchStrategy[Any], n: int) -> list[Any]:
    """`n` examples of `strategy`, the same every run (derandomized)."""
    got: list[Any] = []

    @settings(
        max_examples=n, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(strategy)
    def collect(value: Any) -> None:
        got.append(value)

    collect()
    return list(dict.fromkeys(got))


CONTROL_CHARS = st.sampled_from(["\n", "\r\n", "\x0b", "\x0c", "\x00", "\x85", "\u2028"])
BAD_EMAILS = st.one_of(
    st.sampled_from(
        ["john doe@example.com", "no-at-sign", "a@@b.test", "a@b", "Name: value", "@x.test"]
    ),
    st.tuples(st.text("abc", min_size=1, max_size=5), CONTROL_CHARS).map(
        lambda t: f"{t[0]}{t[1]}X-Injected: yes@example.com"
    ),
    st.text(st.characters(codec="utf-8", exclude_characters="@"), min_size=1, max_size=30),
)
BAD_PHONES = st.one_of(
    st.sampled_from(["5555550100", "+1555", "phone", "+0 123", "+1 555\n0100"]),
    st.text(st.characters(codec="utf-8", exclude_categories=["Nd"]), min_size=1, max_size=20),
)
JUNK_SEGMENTS = st.one_of(
    st.sampled_from(["%00", "a%00b", "%0d%0aX:%20y", "..%2f..%2f", "%ff%fe", "x" * 5000]),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=20).map(
        lambda t: urllib.parse.quote(t, safe="")
    ),
)
JUNK_QUERIES = st.one_of(
    st.sampled_from(["limit=abc", "limit=99999999999999999999999", "limit=-1", "after=%00"]),
    st.integers(min_value=-(10**40), max_value=10**40).map(lambda n: f"limit={n}"),
)


@pytest.fixture(scope="module")
def services(stack):
    stack.start_services(
        API_KEYS=",".join(f"{a}:{k}" for a, k in KEYS.items()), EMAIL_DOUBLE_OPT_IN="true"
    )
    try:
        yield stack
    finally:
        stack.stop_services()


CLOSED_EARLY = 0
"""The status `_http` gives when the server closed the connection before its answer
could be read: it may answer a body over the limit (413, from Content-Length) before
reading it and close, and the client's unsent rest then meets a broken pipe."""


def _http(url: str, method: str = "GET", key: str | None = None, body: bytes | None = None):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=20)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        # Answered before the whole body was read, the answer may still be there.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.request(method, target, body, headers)
        try:
            r = conn.getresponse()
        except (ConnectionError, http.client.RemoteDisconnected):
            return CLOSED_EARLY, b""
        return r.status, r.read()
    finally:
        conn.close()


def _alive(stack: Any) -> None:
    for name, svc in stack.services.items():
        assert svc.proc is not None and svc.proc.poll() is None, f"{name} exited"
        assert _http(f"{svc.base_url}/healthz")[0] == 200, name


def _consent_cmd(account: str, pid: str, profile: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {
        "command_id": uuid.uuid4().hex,
        "account_id": account,
        "profile": {"id": pid, **profile},
        "action": "subscribe",
        "channel": kw.pop("channel", "email"),
        "method": "form",
        "consented_at": NOW,
        **kw,
    }


async def _letters(kafka: Kafka, topic: str, account: str) -> list[dict[str, Any]]:
    out = []
    for _, v in await kafka.read_all(topics.dlq(topic)):
        if v and account.encode() in base64.b64decode(v.get("original") or "")[:400_000]:
            out.append(v)
    return out


async def _control_confirmation_arrives(stack: Any, kafka: Kafka) -> None:
    """A double opt-in confirmation for the control account is still mailed."""
    pid = f"ctl-{uuid.uuid4().hex[:8]}"
    email = f"{pid}@control.test"
    await kafka.send(topics.CONSENT_COMMANDS, pid, _consent_cmd(CONTROL, pid, {"email": email}))

    async def mailed() -> list[Any]:
        return mail_to(stack, email)

    await eventually(mailed, 30, 0.2)


async def test_x1_bad_addresses_and_phones_are_dead_lettered_and_mail_keeps_flowing(
    services, kafka: Kafka
) -> None:
    emails = _drawn(BAD_EMAILS, 25)
    phones = _drawn(BAD_PHONES, 15)
    sent = 0
    for n, email in enumerate(emails):
        pid = f"be-{n}"
        await kafka.send(
            topics.CONSENT_COMMANDS, pid, _consent_cmd(ATTACKER, pid, {"email": email})
        )
        sent += 1
    for n, phone in enumerate(phones):
        pid = f"bp-{n}"
        await kafka.send(
            topics.CONSENT_COMMANDS,
            pid,
            _consent_cmd(ATTACKER, pid, {"phone_number": phone}, channel="sms"),
        )
        sent += 1

    async def all_lettered() -> list[dict[str, Any]]:
        got = await _letters(kafka, topics.CONSENT_COMMANDS, ATTACKER)
        return got if len(got) >= sent else []

    letters = await eventually(all_lettered, 60, 0.3)
    for letter in letters:
        assert "email" in letter["error"] or "phone" in letter["error"], letter["error"]
    await _control_confirmation_arrives(services, kafka)
    # Nothing of the attacker's changed anyone's consent.
    changes = [
        v
        for _, v in await kafka.read_all(topics.CONSENT_CHANGES)
        if v and v["account_id"] == ATTACKER
    ]
    assert changes == []
    _alive(services)


async def test_x1_from_email_is_checked_by_the_settings_api_and_a_stored_bad_one_fails_alone(
    services, kafka: Kafka
) -> None:
    url = f"{services.services['consent'].base_url}/accounts/{ATTACKER}/consent/settings"
    for bad in ("john doe@example.com", "a@b.test\nBcc: x@y.test", 42):
        status, body = _http(url, "PUT", KEYS[ATTACKER], json.dumps({"from_email": bad}).encode())
        assert status == 422 and b"from_email" in body, (bad, status, body)
    # One stored before the check existed: that account's mail fails, nobody else's.
    conn = await asyncpg.connect(services.dsn)
    try:
        await conn.execute(
            "INSERT INTO consent.account_settings (account_id, from_email) VALUES ($1, $2)"
            " ON CONFLICT (account_id) DO UPDATE SET from_email = EXCLUDED.from_email",
            VICTIM,
            "john doe@example.com",
        )
    finally:
        await conn.close()
    pid = f"v-{uuid.uuid4().hex[:8]}"
    await kafka.send(
        topics.CONSENT_COMMANDS, pid, _consent_cmd(VICTIM, pid, {"email": f"{pid}@v.test"})
    )

    async def failed() -> str | None:
        conn = await asyncpg.connect(services.dsn)
        try:
            return await conn.fetchval(
                "SELECT last_error FROM consent.mail_queue WHERE account_id = $1"
                " AND rcpt_to = $2 AND status = 'failed'",
                VICTIM,
                f"{pid}@v.test",
            )
        finally:
            await conn.close()

    assert await eventually(failed, 30, 0.2)
    await _control_confirmation_arrives(services, kafka)
    _alive(services)


async def test_x_size_a_5mb_event_does_not_jam_alerts_of_other_accounts(
    services, kafka: Kafka
) -> None:
    lead = f"lead-{RUN}@control.test"
    flow = {
        "account_id": CONTROL,
        "flow_id": "nps",
        "version": 1,
        "name": "nps",
        "trigger": {"type": "metric", "metric": "Left NPS Score"},
        "steps": [
            {
                "id": "alert",
                "type": "internal_alert",
                "recipients": [lead],
                "from_email": "alerts@control.test",
                "subject": "Detractor {{ person.id }}",
                "body": "score {{ event.score }}",
            }
        ],
    }
    await kafka.send(topics.FLOW_DEFINITIONS, f"{CONTROL}:nps", flow)
    confirm = (await eventually(lambda: _mails(services, lead), 30, 0.2))[0]
    url = next(u for u in _urls(confirm) if "/links/recipients/confirm" in u)
    # Confirming is a click on the page's button where the link only shows a page.
    _http(url)
    _http(url, "POST", body=b"")
    executor = services.services["flow_executor"].base_url
    activity = f"{executor}/accounts/{CONTROL}/flows/nps/activity"

    async def executor_has_flow() -> bool:
        return (await asyncio.to_thread(_http, activity, "GET", KEYS[CONTROL]))[0] == 200

    await eventually(executor_has_flow, 30, 0.2)

    big = {
        "event_id": f"big-{RUN}",
        "account_id": ATTACKER,
        "metric": "Left NPS Score",
        "profile": {"id": "p-big", "email": "big@example.com"},
        "properties": {"blob": "x" * (5 * 1024 * 1024)},
        "time": NOW,
    }
    producer = AIOKafkaProducer(
        bootstrap_servers=services.broker.bootstrap, max_request_size=8 * 1024 * 1024
    )
    await producer.start()
    try:
        await producer.send_and_wait(topics.PROFILE_EVENTS, json.dumps(big).encode(), key=b"p-big")
    finally:
        await producer.stop()
    for n in range(3):
        await kafka.send(
            topics.PROFILE_EVENTS,
            f"p-{n}",
            {
                "event_id": f"ok-{RUN}-{n}",
                "account_id": CONTROL,
                "metric": "Left NPS Score",
                "profile": {"id": f"p-{n}", "email": f"p-{n}@example.com"},
                "properties": {"score": 2},
                "time": NOW,
            },
        )

    async def alerted() -> list[Any]:
        got = [m for m in await _mails(services, lead) if "Detractor" in str(m["Subject"])]
        return got if len(got) >= 3 else []

    await eventually(alerted, 60, 0.3)

    async def big_lettered() -> list[dict[str, Any]]:
        return [
            v
            for v in await _letters(kafka, topics.PROFILE_EVENTS, ATTACKER)
            if v["original_size"] > 5_000_000
        ]

    letter = (await eventually(big_lettered, 30, 0.3))[0]
    assert "over the limit" in letter["error"] and letter["original_truncated"]
    _alive(services)


async def _mails(stack: Any, address: str) -> list[Any]:
    return mail_to(stack, address)


def _urls(mail: Any) -> list[str]:
    part = mail.get_body(preferencelist=("plain",))
    text = str(part.get_content() if part else mail.get_content())
    return re.findall(r"https?://[^\s\"<>]+", text)


def _junk_requests(stack: Any) -> list[tuple[str, str, bytes | None, str]]:
    """(method, url, body, key) for every service: junk path segments and queries, deep
    and oversized JSON, numbers no column holds."""
    c, s = stack.services["consent"].base_url, stack.services["suppression"].base_url
    f, d = stack.services["flow_executor"].base_url, stack.services["alert_dispatcher"].base_url
    a, key = ATTACKER, KEYS[ATTACKER]
    out: list[tuple[str, str, bytes | None, str]] = []
    for seg in _drawn(JUNK_SEGMENTS, 12):
        out += [
            ("GET", f"{c}/accounts/{a}/profiles/{seg}/consent", None, key),
            ("GET", f"{c}/accounts/{a}/profiles/{seg}/consent/history", None, key),
            ("GET", f"{s}/accounts/{a}/profiles/{seg}/suppressions", None, key),
            ("GET", f"{f}/accounts/{a}/flows/{seg}/activity", None, key),
            ("GET", f"{f}/accounts/{a}/profiles/{seg}/reachability", None, key),
            ("POST", f"{f}/accounts/{a}/reviews/{seg}/approve", b"", key),
            ("GET", f"{d}/accounts/{a}/alerts/{seg}/{seg}", None, key),
            ("GET", f"{c}/links/consent/unsubscribe?token={seg}", None, ""),
            ("GET", f"{d}/links/recipients/confirm?token={seg}", None, ""),
        ]
    for query in _drawn(JUNK_QUERIES, 8):
        out += [
            ("GET", f"{c}/accounts/{a}/segments/not-opted-in?{query}", None, key),
            ("GET", f"{f}/accounts/{a}/reviews?{query}", None, key),
            ("GET", f"{d}/accounts/{a}/alert-activity?{query}", None, key),
        ]
    deep = b"[" * 100_000 + b"]" * 100_000
    deep_obj = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    huge = json.dumps({"alert_send_limit_per_hour": 10**30}).encode()
    big = b'{"x": "' + b"y" * (2 * 1024 * 1024) + b'"}'
    for body in (deep, deep_obj, huge, big, b"\x00\xff", b'{"from_email": "\\u0000"}'):
        out += [
            ("PUT", f"{c}/accounts/{a}/consent/settings", body, key),
            ("PUT", f"{d}/accounts/{a}/alert-settings", body, key),
            ("POST", f"{c}/accounts/{a}/profiles/p-1/consent/subscribe", body, key),
            ("POST", f"{s}/accounts/{a}/profiles/p-1/suppressions/suppress", body, key),
        ]
    return out


async def test_x5_junk_requests_answer_4xx_never_500_and_show_no_other_account(
    services, kafka: Kafka
) -> None:
    requests = _junk_requests(services)
    assert len(requests) > 150
    answers = await asyncio.gather(
        *(asyncio.to_thread(_http, url, m, key or None, body) for m, url, body, key in requests)
    )
    fives = [
        (m, url[:120], status)
        for (m, url, _, _), (status, _) in zip(requests, answers, strict=True)
        if status >= 500
    ]
    assert not fives, fives
    closed = [
        (m, url[:120], len(body or b""))
        for (m, url, body, _), (status, _) in zip(requests, answers, strict=True)
        if status == CLOSED_EARLY and len(body or b"") <= MAX_INPUT_BYTES
    ]
    assert not closed, closed  # only bodies over the limit may meet a closed connection
    for (_, url, _, _), (_, body) in zip(requests, answers, strict=True):
        assert VICTIM.encode() not in body and CONTROL.encode() not in body, url[:120]
    # The attacker's junk changed nobody's consent, and everything still flows.
    changes = [
        v
        for _, v in await kafka.read_all(topics.CONSENT_CHANGES)
        if v and v["account_id"] in (VICTIM, ATTACKER)
    ]
    assert all(c["account_id"] != VICTIM for c in changes)
    await _control_confirmation_arrives(services, kafka)
    _alive(services)
