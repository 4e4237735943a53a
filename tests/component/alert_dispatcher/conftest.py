"""The alert dispatcher as its own process on the session's broker, PostgreSQL and SMTP
capture, with short retry, lease and limit-window settings so that A8/A9 finish quickly.
Each test takes a fresh account that has its own API key."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from shared.contracts import AlertContent, AlertRequested, Profile, topics
from tests.conftest import Kafka, eventually, mail_to
from tools.devstack import EmbeddedStack

NAME = "alert_dispatcher"
WINDOW_S = 3
LINK = re.compile(r"(http://127\.0\.0\.1:\d+/links/recipients/[a-z]+\?token=[^\s\"<>]+)")
_RUN = uuid.uuid4().hex[:6]
ACCOUNTS = [f"ad-{_RUN}-{i}" for i in range(40)]
_free = list(ACCOUNTS)


def key_of(account: str) -> str:
    return f"{account}-test-api-key"


@pytest.fixture(scope="module")
def dispatcher(stack: EmbeddedStack) -> Iterator[EmbeddedStack]:
    keys = ",".join(f"{a}:{key_of(a)}" for a in ACCOUNTS)
    stack.start_services(
        (NAME,),
        API_KEYS=f"{stack.api_keys},{keys}",
        MAIL_RETRY_BASE_S="0.2",
        MAIL_LEASE_S="3",
        ALERT_SEND_WINDOW_S=str(WINDOW_S),
        SMTP_TIMEOUT_S="3",
    )
    try:
        yield stack
    finally:
        stack.services[NAME].stop()


@pytest.fixture
def acct() -> str:
    """A fresh account with an API key of its own."""
    return _free.pop()


@pytest.fixture
def other_acct() -> str:
    """A second fresh account, for what must stay apart between accounts."""
    return _free.pop()


@pytest.fixture
async def api(dispatcher: EmbeddedStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=dispatcher.services[NAME].base_url, timeout=10) as c:
        yield c


def flow(
    account: str,
    flow_id: str,
    recipients: list[str],
    version: int = 1,
    step_id: str = "alert",
    **step: Any,
) -> dict[str, Any]:
    return {
        "account_id": account,
        "flow_id": flow_id,
        "version": version,
        "name": "NPS detractors",
        "trigger": {"type": "metric", "metric": "Left NPS Score"},
        "steps": [
            {
                "id": step_id,
                "type": "internal_alert",
                "mode": "live",
                "recipients": recipients,
                "from_email": "alerts@acme.test",
                "from_name": "Acme alerts",
                "subject": "Detractor: {{ person.email }}",
                "body": "{{ person.first_name }} scored {{ event.score }}",
                "next": None,
                **step,
            }
        ],
    }


def request(
    account: str,
    recipients: list[str],
    flow_id: str = "nps",
    step_id: str = "alert",
    alert_id: str | None = None,
    **content: Any,
) -> AlertRequested:
    pid = f"p-{uuid.uuid4().hex[:8]}"
    trigger_type = content.pop("trigger_type", "metric")
    return AlertRequested(
        alert_id=alert_id or f"al-{uuid.uuid4().hex}",
        account_id=account,
        flow_id=flow_id,
        flow_version=1,
        step_id=step_id,
        profile_id=pid,
        profile=Profile(id=pid, email=f"{pid}@example.com", first_name="Ada"),
        event={"score": 3},
        action=AlertContent(
            recipients=recipients,
            from_email="alerts@acme.test",
            subject=content.pop("subject", "Detractor: {{ person.email }}"),
            body=content.pop("body", "{{ person.first_name }} scored {{ event.score }}"),
            **content,
        ),
        trigger_type=trigger_type,
    )


def body(mail: Any, kind: str = "plain") -> str:
    part = mail.get_body(preferencelist=(kind,))
    return str(part.get_content() if part else mail.get_content())


def link_in(mail: Any, kind: str) -> str:
    for url in LINK.findall(body(mail)):
        if f"/links/recipients/{kind}" in url:
            return str(url)
    raise AssertionError(f"no {kind} link in mail")


def alerts_to(stack: EmbeddedStack, address: str) -> list[Any]:
    return [
        m for m in mail_to(stack, address) if "Confirm internal alerts" not in str(m["Subject"])
    ]


def confirmations_to(stack: EmbeddedStack, address: str) -> list[Any]:
    return [m for m in mail_to(stack, address) if "Confirm internal alerts" in str(m["Subject"])]


async def confirmations(stack: EmbeddedStack, address: str, n: int = 1) -> list[Any]:
    async def probe() -> list[Any]:
        got = confirmations_to(stack, address)
        return got if len(got) >= n else []

    return await eventually(probe, 20)


async def save_flow(kafka: Kafka, definition: dict[str, Any]) -> None:
    key = f"{definition['account_id']}:{definition['flow_id']}"
    await kafka.send(topics.FLOW_DEFINITIONS, key, definition)


async def confirmed_recipients(
    stack: EmbeddedStack,
    kafka: Kafka,
    api: httpx.AsyncClient,
    account: str,
    emails: list[str],
    flow_id: str = "nps",
) -> None:
    """Save a flow listing `emails` and click each confirmation link."""
    await save_flow(kafka, flow(account, flow_id, emails))
    for email in emails:
        mail = (await confirmations(stack, email))[0]
        assert (await api.post(link_in(mail, "confirm"))).status_code == 200


async def outcomes(kafka: Kafka, account: str, n: int = 1) -> list[dict[str, Any]]:
    """The account's outcomes on `alert-outcomes`, once there are at least `n`."""

    async def probe() -> list[dict[str, Any]]:
        got = [
            v
            for _, v in await kafka.read_all(topics.ALERT_OUTCOMES)
            if v and v["account_id"] == account
        ]
        return got if len(got) >= n else []

    return await eventually(probe, 30, 0.2)


async def outcome_of(kafka: Kafka, account: str, alert_id: str) -> dict[str, Any]:
    """The one outcome of `alert_id` (fails if it is published more than once)."""

    async def probe() -> list[dict[str, Any]]:
        return [
            v
            for _, v in await kafka.read_all(topics.ALERT_OUTCOMES)
            if v and v["account_id"] == account and v["alert_id"] == alert_id
        ]

    got = await eventually(probe, 30, 0.2)
    assert len(got) == 1, got
    return got[0]


def auth(account: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key_of(account)}"}
