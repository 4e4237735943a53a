"""Helpers for the consent and suppression component tests: API keys for test accounts,
the two services started once per module, a tail of the output topics, and commands."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.contracts import topics
from tests.conftest import eventually

_RUN = uuid.uuid4().hex[:6]
ACCOUNTS = [f"cs{_RUN}-{i}" for i in range(80)]
_free = list(ACCOUNTS)
SERVICES = ("consent", "suppression")


def api_keys_env(stack: Any) -> str:
    return ",".join([stack.api_keys, *(f"{a}:key-{a}-for-tests" for a in ACCOUNTS)])


def headers(account: str) -> dict[str, str]:
    return {"authorization": f"Bearer key-{account}-for-tests"}


def now() -> str:
    return datetime.now(UTC).isoformat()


class Tail:
    """Every message published on some topics after the tail started, decoded."""

    def __init__(self, bootstrap: str, names: tuple[str, ...]) -> None:
        self.bootstrap = bootstrap
        self.names = names
        self.got: dict[str, list[tuple[str | None, dict[str, Any]]]] = {n: [] for n in names}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await self.consumer.start()
        parts = [
            TopicPartition(t, p)
            for t in self.names
            for p in (self.consumer.partitions_for_topic(t) or ())
        ]
        self.consumer.assign(parts)
        await self.consumer.seek_to_end(*parts)
        for tp in parts:  # resolve positions now, so nothing published later is skipped
            await self.consumer.position(tp)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=100)
            for tp, records in batch.items():
                for r in records:
                    value = json.loads(r.value) if r.value else None
                    self.got[tp.topic].append((r.key.decode() if r.key else None, value))

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()

    def of(self, topic: str, **match: Any) -> list[dict[str, Any]]:
        return [
            v
            for _, v in self.got[topic]
            if v is not None and all(v.get(k) == x for k, x in match.items())
        ]

    def dead(self, topic: str, key: str) -> list[dict[str, Any]]:
        return [v for k, v in self.got[topics.dlq(topic)] if k == key]


TAILED = (
    topics.CONSENT_CHANGES,
    topics.SUPPRESSION_CHANGES,
    topics.SMS_OUTBOUND,
    topics.dlq(topics.CONSENT_COMMANDS),
    topics.dlq(topics.SUPPRESSION_COMMANDS),
)


def services_fixture(extra_env: dict[str, str] | None = None, names: tuple[str, ...] = SERVICES):
    """A module-scoped fixture running `names` (consent and suppression unless told)
    as real processes, with API keys for every test account."""

    @pytest.fixture(scope="module")
    def services(stack: Any) -> Iterator[Any]:
        stack.start_services(names, API_KEYS=api_keys_env(stack), **(extra_env or {}))
        try:
            yield stack
        finally:
            for name in names:
                stack.services[name].stop()

    return services


@pytest.fixture(scope="module")
async def tail(stack: Any) -> AsyncIterator[Tail]:
    t = Tail(stack.broker.bootstrap, TAILED)
    await t.start()
    try:
        yield t
    finally:
        await t.stop()


@pytest.fixture
def acct() -> str:
    """An account with its own API key (`headers(acct)`), unused by any other test."""
    return _free.pop(0)


class Api:
    def __init__(self, stack: Any) -> None:
        self.consent = httpx.AsyncClient(base_url=stack.services["consent"].base_url, timeout=10)
        self.suppression = httpx.AsyncClient(
            base_url=stack.services["suppression"].base_url, timeout=10
        )

    async def close(self) -> None:
        await self.consent.aclose()
        await self.suppression.aclose()

    async def state(self, account: str, pid: str) -> dict[str, Any] | None:
        r = await self.consent.get(
            f"/accounts/{account}/profiles/{pid}/consent", headers=headers(account)
        )
        return r.json() if r.status_code == 200 else None

    async def status(self, account: str, pid: str, channel: str = "email") -> str | None:
        s = await self.state(account, pid)
        return s["channels"][channel]["status"] if s else None

    async def wait_status(
        self,
        account: str,
        pid: str,
        want: str,
        channel: str = "email",
    ) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            s = await self.state(account, pid)
            return s if s and s["channels"][channel]["status"] == want else None

        return await eventually(probe, timeout_s=20)

    async def settings(self, account: str, **values: Any) -> None:
        r = await self.consent.put(
            f"/accounts/{account}/consent/settings", json=values, headers=headers(account)
        )
        assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
async def api(services: Any) -> AsyncIterator[Api]:
    a = Api(services)
    try:
        yield a
    finally:
        await a.close()


def consent_cmd(
    account: str, pid: str, action: str = "subscribe", channel: str = "email", **kw: Any
) -> dict[str, Any]:
    profile = {"id": pid, "email": kw.pop("email", f"{pid}@example.test")}
    if "phone" in kw:
        profile["phone_number"] = kw.pop("phone")
    return {
        "command_id": kw.pop("command_id", uuid.uuid4().hex),
        "account_id": account,
        "profile": profile,
        "action": action,
        "channel": channel,
        "consented_at": kw.pop("consented_at", now()),
        **kw,
    }


def suppression_cmd(account: str, pid: str, action: str, reason: str, **kw: Any) -> dict[str, Any]:
    return {
        "command_id": uuid.uuid4().hex,
        "account_id": account,
        "profile": {"id": pid, "email": f"{pid}@example.test"},
        "action": action,
        "reason": reason,
        "occurred_at": now(),
        **kw,
    }
