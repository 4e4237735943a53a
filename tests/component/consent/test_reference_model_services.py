"""The consent property through the real services (X3, C5, C9, C11, C13, S3, S5, S6, F7).

A few hundred short random sequences, one per profile, all at once: consent commands
(past- and future-dated, every method, lists, scopes, evidence, imports), STOP/START on
`sms-inbound` and spam complaints on `suppression-commands`, published in a shuffled
order on the real broker; then unsubscribe links clicked over HTTP and re-subscribes with
evidence through the API. After each phase the consent read API, `consent-changes` and
the flow executor's reachability endpoint must agree with the reference model.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from shared.contracts import topics
from tests.component.consent.support import ACCOUNTS, headers, services_fixture
from tests.conftest import eventually
from tests.model.reference import ConsentModel, Received, SuppressionModel, can_receive

PROFILES = 120
CHANNELS = ("email", "sms_marketing", "sms_transactional", "push")


services = services_fixture(names=("consent", "suppression", "flow_executor"))


class Profile:
    """One profile's generated acts and the model of what they must lead to."""

    def __init__(self, account: str, n: int, rng: random.Random, base: datetime) -> None:
        self.account, self.rng, self.base = account, rng, base
        self.id = f"m{n:04d}-{uuid.uuid4().hex[:6]}"
        self.phone = f"+1555{n:07d}"
        self.model = ConsentModel()
        self.sup = SuppressionModel(limit=7)
        self.hours = rng.sample(range(1, 200), 12)  # distinct past times, one per act
        # A profile with a spam complaint gets no evidence before phase 3, where the
        # model lifts the complaint (S5).
        self.spam = rng.random() < 0.2

    def at(self) -> datetime:
        return self.base - timedelta(hours=self.hours.pop())

    def profile(self) -> dict[str, Any]:
        return {"id": self.id, "email": f"{self.id}@example.test", "phone_number": self.phone}

    def command(self, **kw: Any) -> tuple[str, str, dict[str, Any]]:
        at: datetime = kw.pop("at")
        cmd = {
            "command_id": f"c-{uuid.uuid4().hex}",
            "account_id": self.account,
            "profile": self.profile(),
            "consented_at": at.isoformat(),
            **kw,
        }
        self.model.receive(
            Received(
                act_id=cmd["command_id"],
                action=kw["action"],
                channel=kw["channel"],
                claimed_at=at,
                received_at=self.base,
                purpose=kw.get("purpose", "marketing"),
                list_id=kw.get("list_id"),
                scope=_scope_name(kw.get("scope")),
                evidence=kw.get("evidence"),
                historical_import=kw.get("historical_import", False),
                phone=self.phone,
                double_opt_in=False,
            )
        )
        return topics.CONSENT_COMMANDS, self.id, cmd

    def first(self) -> tuple[str, str, dict[str, Any]]:
        """Makes the profile and its number known (C13 finds profiles by number)."""
        return self.command(action="unsubscribe", channel="push", method="api", at=self.at())

    def random_acts(self) -> list[tuple[str, str, dict[str, Any]]]:
        rng, out = self.rng, []
        for _ in range(rng.randint(2, 5)):
            kind = rng.choice(("cmd", "cmd", "cmd", "sms", "spam" if self.spam else "sms"))
            if kind == "sms":
                word = rng.choice(("STOP", "START", " stop ", "Help"))
                at = self.at()
                mid = f"s-{uuid.uuid4().hex}"
                msg = {
                    "message_id": mid,
                    "account_id": self.account,
                    "phone_number": self.phone,
                    "body": word,
                    "received_at": at.isoformat(),
                }
                if word.strip().upper() in ("STOP", "START"):
                    stop = word.strip().upper() == "STOP"
                    self.model.receive(
                        Received(
                            act_id=f"sms:{mid}",
                            action="unsubscribe" if stop else "subscribe",
                            channel="sms",
                            claimed_at=at,
                            received_at=self.base,
                            phone=self.phone,
                            own=not stop,
                        )
                    )
                out.append((topics.SMS_INBOUND, self.phone, msg))
            elif kind == "spam":
                at = self.at()
                list_id = rng.choice((None, None, "L1"))
                cmd = {
                    "command_id": f"x-{uuid.uuid4().hex}",
                    "account_id": self.account,
                    "profile": self.profile(),
                    "action": "suppress",
                    "reason": "spam_complaint",
                    "list_id": list_id,
                    "occurred_at": at.isoformat(),
                }
                self.sup.command("suppress", "spam_complaint", list_id, at)
                self.model.receive(
                    Received(
                        act_id=f"spam:{cmd['command_id']}",
                        action="unsubscribe",
                        channel="email",
                        claimed_at=at,
                        received_at=self.base,
                        list_id=list_id,
                    )
                )
                out.append((topics.SUPPRESSION_COMMANDS, self.id, cmd))
            else:
                channel = rng.choice(("email", "email", "sms", "push"))
                future = rng.random() < 0.15 and not any(
                    a.claimed_at > self.base for a in self.model.acts.values()
                )
                scope = None
                list_id = None
                if channel == "email":
                    list_id = rng.choice((None, None, "L1", "L2"))
                    if list_id is None and rng.random() < 0.25:
                        scope = rng.choice(
                            (
                                {"level": "client", "client_id": "c1"},
                                {"level": "user", "client_id": "c1", "user_id": "u1"},
                            )
                        )
                out.append(
                    self.command(
                        action=rng.choice(("subscribe", "subscribe", "unsubscribe", "resubscribe")),
                        channel=channel,
                        purpose=rng.choice(("marketing", "transactional")),
                        method=rng.choice(("form", "api", "import", "manual", "link", "keyword")),
                        evidence=None if self.spam else rng.choice((None, None, "signed form #1")),
                        historical_import=rng.random() < 0.2,
                        list_id=list_id,
                        scope=scope,
                        at=self.base + timedelta(days=365) if future else self.at(),
                    )
                )
        return out


def _scope_name(scope: dict[str, Any] | None) -> str:
    if not scope or scope.get("level") == "group":
        return "group"
    if scope["level"] == "client":
        return f"client:{scope['client_id']}"
    return f"user:{scope['client_id']}/{scope['user_id']}"


def _strip(cmd: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cmd.items() if v is not None}


async def _publish(kafka: Any, messages: list[tuple[str, str, dict[str, Any]]]) -> None:
    futures = [
        await kafka.producer.send(topic, _json(value), key=key.encode())
        for topic, key, value in messages
    ]
    await asyncio.gather(*futures)


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(_strip(value)).encode()


async def _get(
    client: httpx.AsyncClient, path: str, params: dict[str, str], account: str
) -> httpx.Response:
    """GET, again once when a kept-alive connection was closed under us by the server."""
    try:
        return await client.get(path, params=params, headers=headers(account))
    except httpx.TransportError:
        return await client.get(path, params=params, headers=headers(account))


async def _compare(
    profiles: list[Profile], consent: httpx.AsyncClient, executor: httpx.AsyncClient
) -> list[str]:
    """Differences between the services and the model, one line per profile."""
    sem = asyncio.Semaphore(16)

    async def one(p: Profile) -> str | None:
        async with sem:
            path = f"/accounts/{p.account}/profiles/{p.id}"
            q = {"list_id": "L1", "client_id": "c1", "user_id": "u1"}
            c = await _get(consent, f"{path}/consent", q, p.account)
            x = await _get(executor, f"{path}/reachability", q, p.account)
        if c.status_code != 200:
            return f"{p.id}: consent API {c.status_code}"
        got = c.json()
        status, _phone = p.model.answer()
        sups = p.sup.in_force()
        for ch in CHANNELS:
            want = status.get(ch, "never_subscribed")
            if got["channels"][ch]["status"] != want:
                return f"{p.id}: {ch} is {got['channels'][ch]['status']}, model {want}"
        want_lists = {
            k.removeprefix("list:"): v for k, v in status.items() if k.startswith("list:")
        }
        if got["lists"] != want_lists:
            return f"{p.id}: lists {got['lists']}, model {want_lists}"
        want_scopes = sorted(
            k.removeprefix("scope:")
            for k, v in status.items()
            if k.startswith("scope:") and v == "unsubscribed"
        )
        if [s for s in got["opt_outs"] if s != "group"] != want_scopes:
            return f"{p.id}: opt-outs {got['opt_outs']}, model {want_scopes}"
        for ch in CHANNELS:
            want = can_receive(status, None, sups, ch, "L1", "c1", "u1")
            if got["channels"][ch]["can_receive"] != want:
                return f"{p.id}: consent can_receive[{ch}] {not want}, model {want}"
            if x.status_code == 200 and x.json()["can_receive"][ch] != want:
                doc = x.json()
                return (
                    f"{p.id}: executor can_receive[{ch}] {not want}, model {want}: "
                    f"{doc['blocked']} {doc['consent']} {doc['profile']} / consent {got}"
                )
            if x.status_code != 200 and ch == "email" and want:
                return f"{p.id}: executor has no read model ({x.status_code})"
        return None

    return [d for d in await asyncio.gather(*(one(p) for p in profiles)) if d]


async def _agree(profiles, consent, executor, timeout_s: float = 120) -> None:
    last: list[str] = []

    async def probe() -> bool:
        nonlocal last
        last = await _compare(profiles, consent, executor)
        return not last

    try:
        await eventually(probe, timeout_s=timeout_s, interval_s=0.5)
    except AssertionError:
        raise AssertionError(f"{len(last)} profiles differ from the model: {last[:10]}") from None


def _check_events(profiles: list[Profile], changes: list[dict[str, Any]]) -> None:
    """(c) every event on `consent-changes` is a real transition: its own slot has the
    status it names in the state it carries, and it differs from the previous event's."""
    by_profile: dict[str, list[dict[str, Any]]] = {}
    for c in changes:
        by_profile.setdefault(c["profile_id"], []).append(c)
    for p in profiles:
        for c in by_profile.get(p.id, []):
            state, kind = c["state"], c["type"]
            if kind == "Subscribed to List":
                assert state["lists"].get(c["list_id"]) == "subscribed", c
            elif kind == "Unsubscribed from List":
                assert state["lists"].get(c["list_id"]) == "unsubscribed", c
            elif kind == "Unsubscribed from SMS":
                # A late STOP under a newer transactional subscribe with evidence
                # removes marketing only, as in time order (X3).
                assert state["sms_marketing"]["status"] == "unsubscribed" or (
                    state["sms_transactional"]["status"] == "unsubscribed"
                ), c
                assert state["sms_marketing"]["status"] != "subscribed", c
            elif kind.startswith("Subscribed to SMS"):
                slot = "sms_" + kind.rsplit(" ", 1)[1].lower()
                assert state[slot]["status"] == "subscribed", c
            elif kind in (
                "Unsubscribed from Email Marketing",
                "Clicked and Unsubscribed from Email",
            ):
                if c["scope"] in (None, "group"):
                    assert state["email"]["status"] == "unsubscribed", c
                else:
                    assert c["scope"] in state["opt_outs"], c
            elif kind == "Subscribed to Email Marketing" and c["scope"] in (None, "group"):
                assert state["email"]["status"] == "subscribed", c


@pytest.mark.timeout(300)
async def test_x3_c11_s6_services_agree_with_reference_model(services: Any, kafka: Any) -> None:
    rng = random.Random(11)
    account = ACCOUNTS[-1]
    base = datetime.now(UTC).replace(microsecond=0)
    consent_url = services.services["consent"].base_url
    executor_url = services.services["flow_executor"].base_url
    async with (
        httpx.AsyncClient(base_url=consent_url, timeout=20) as consent,
        httpx.AsyncClient(base_url=executor_url, timeout=20) as executor,
    ):
        r = await consent.put(
            f"/accounts/{account}/consent/settings",
            json={"email_double_opt_in": False},
            headers=headers(account),
        )
        assert r.status_code == 200, r.text
        # A flow, so the executor keeps this account's profiles (F3, F7).
        await kafka.send(
            topics.FLOW_DEFINITIONS,
            f"{account}:noop",
            {
                "account_id": account,
                "flow_id": "noop",
                "version": 1,
                "name": "noop",
                "trigger": {"type": "metric", "metric": "Never happens"},
                "steps": [{"id": "wait", "type": "delay", "seconds": 0, "next": None}],
            },
        )

        async def flow_known() -> bool:
            r = await executor.get(
                f"/accounts/{account}/flows/noop/activity", headers=headers(account)
            )
            return r.status_code == 200

        await eventually(flow_known, timeout_s=30)
        profiles = [Profile(account, n, rng, base) for n in range(PROFILES)]

        # Phase 0: every profile and its number known.
        await _publish(kafka, [p.first() for p in profiles])
        await _agree(profiles, consent, executor)

        # Phase 1: random sequences, shuffled across profiles and topics.
        messages = [m for p in profiles for m in p.random_acts()]
        rng.shuffle(messages)
        await _publish(kafka, messages)
        await _agree(profiles, consent, executor)

        # Phase 2: the person clicks unsubscribe now (live: wins over anything received).
        clickers = rng.sample(profiles, 25)
        for p in clickers:
            r = await consent.get(
                f"/accounts/{account}/profiles/{p.id}/links", headers=headers(account)
            )
            url = r.json()["unsubscribe_url"]
            page = await consent.post(url)
            assert page.status_code == 200 and "unsubscribed" in page.text.lower(), page.text
            now = datetime.now(UTC)
            p.model.receive(
                Received(
                    act_id=f"click-{p.id}",
                    action="unsubscribe",
                    channel="email",
                    claimed_at=now + timedelta(minutes=5),
                    received_at=now,
                )
            )
        await _agree(profiles, consent, executor)

        # Phase 3: re-subscribe with evidence (C11) lifts opt-outs and spam complaints (S5).
        others = [p for p in profiles if p not in clickers]
        for p in rng.sample(others, 25):
            now = datetime.now(UTC)
            r = await consent.post(
                f"/accounts/{account}/profiles/{p.id}/consent/resubscribe",
                json={"channel": "email", "evidence": "signed form #2"},
                headers=headers(account),
            )
            assert r.status_code == 202, r.text
            p.model.receive(
                Received(
                    act_id=f"resub-{p.id}",
                    action="resubscribe",
                    channel="email",
                    claimed_at=now,
                    received_at=now,
                    evidence="signed form #2",
                )
            )
            p.sup.lift(None, True, now)
        await _agree(profiles, consent, executor)

    changes = [v for _, v in await kafka.read_all(topics.CONSENT_CHANGES) if v]
    _check_events(profiles, [c for c in changes if c.get("account_id") == account])
