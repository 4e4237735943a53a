"""The people properties through the real services (I1, C6, C11, C13, X2, X3, F7).

A few hundred short random worlds at once, each its own people: two or three persons
(non-ASCII local parts, IDN domains, their own numbers), up to four profiles carrying
them in every spelling (case, NFC/NFD, punycode, blanks; number formats, full-width
digits), several profiles per address and per number; consent commands with equal
times, invisible evidence and every action; keywords with punctuation, spacing and width
variants from the number, before or after any profile has it. Everything is published
in one shuffled order on the real broker. Then, per profile: the consent read API agrees
with the people model on who may be messaged on each channel (m), the flow executor's
read model agrees on SMS (F7: it hears each profile's own changes, c), and no two
consent changes share an id (X2). The same checks run on the pure use cases in
`tests/unit/consent/test_people_properties.py`.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import idna
import pytest

from shared.contracts import topics
from tests.component.consent.support import ACCOUNTS, headers, services_fixture
from tests.conftest import eventually
from tests.model.people import PeopleModel, ProfileCard, email_key, upper_case
from tests.model.reference import Received

WORLDS = 150
CHANNELS = ("email", "sms_marketing", "sms_transactional", "push")
LOCALS = ("ada", "José.Ng", "zoë")
DOMAINS = ("example.org", "bücher.example", "Straße.example")
STOP_WORDS = ("STOP", "Stop.", "stop all", "\uff33\uff34\uff2f\uff30", "opt-out", "REVOKE!")
START_WORDS = ("START", "unstop", "Yes!")
INVISIBLE = "\u200b\u2060\ufeff\u3164\u00a0"


services = services_fixture(names=("consent", "flow_executor"))


def email_spelling(rng: random.Random, local: str, domain: str) -> str:
    case = rng.choice((str, str.lower, upper_case, str.title))
    dom = rng.choice((domain, upper_case(domain), idna.encode(domain, uts46=True).decode()))
    pad = rng.choice(("", " "))
    return pad + unicodedata.normalize(rng.choice(("NFC", "NFD")), f"{case(local)}@{dom}") + pad


def phone_spelling(rng: random.Random, e164: str) -> str:
    area, mid, last = e164[2:5], e164[5:8], e164[8:]
    wide = "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in e164)
    return rng.choice((e164, f"+1 ({area}) {mid}-{last}", f"001{area}{mid}{last}", wide))


@dataclass
class World:
    """One world's profiles, the messages it publishes and its model."""

    cards: list[ProfileCard]
    messages: list[tuple[str, str, dict[str, Any]]]
    model: PeopleModel
    persons: list[tuple[str, str, str]]  # (local part, domain, number) of each person


def world(rng: random.Random, n: int, account: str, base: datetime) -> World:
    persons = [
        (f"{rng.choice(LOCALS)}.w{n}", rng.choice(DOMAINS), f"+1202555{(3 * n + i):04d}")
        for i in range(rng.randint(2, 3))
    ]
    cards = []
    for i in range(rng.randint(1, 4)):
        local, domain, number = rng.choice(persons)
        email = email_spelling(rng, local, domain) if rng.random() < 0.8 else None
        phone_of = rng.choice(persons)[2]  # several people per number
        phone = phone_spelling(rng, phone_of) if rng.random() < 0.8 else None
        cards.append(ProfileCard(f"w{n}-p{i}", email, phone))
    model = PeopleModel()
    late = datetime.now(UTC) + timedelta(days=1)
    messages: list[tuple[str, str, dict[str, Any]]] = []
    for k in range(rng.randint(1, 6)):
        at = base + timedelta(minutes=rng.randint(0, 3))  # ties within and across channels
        if rng.random() < 0.3:
            number = rng.choice([p[2] for p in persons] + [f"+1202556{n:04d}"])
            word = rng.choice(STOP_WORDS + START_WORDS)
            stop = word in STOP_WORDS
            mid = f"w{n}-m{k}"
            messages.append(
                (topics.SMS_INBOUND, number, {
                    "message_id": mid, "account_id": account,
                    "phone_number": phone_spelling(rng, number), "body": word,
                    "received_at": at.isoformat(),
                })
            )  # fmt: skip
            model.keyword(
                number,
                Received(f"sms:{mid}", "unsubscribe" if stop else "subscribe", "sms", at, late,
                         own=not stop, double_opt_in=False),
            )  # fmt: skip
            continue
        card = rng.choice(cards)
        action = rng.choice(("subscribe", "subscribe", "unsubscribe", "resubscribe"))
        channel = rng.choice(("email", "sms", "sms", "push"))
        purpose = rng.choice(("marketing", "transactional"))
        evidence = rng.choice((None, None, "signed form #7", rng.choice(INVISIBLE) * 2))
        historical = rng.random() < 0.3
        cid = f"w{n}-c{k}"
        profile = {"id": card.profile_id, "email": card.email, "phone_number": card.phone}
        messages.append(
            (topics.CONSENT_COMMANDS, card.profile_id, {
                "command_id": cid, "account_id": account,
                "profile": {k: v for k, v in profile.items() if v is not None},
                "action": action, "channel": channel, "purpose": purpose, "method": "form",
                "evidence": evidence, "historical_import": historical,
                "consented_at": at.isoformat(),
            })
        )  # fmt: skip
        model.act(
            card,
            Received(cid, action, channel, at, late, purpose=purpose, evidence=evidence,
                     historical_import=historical, double_opt_in=False),
        )  # fmt: skip
    for card in cards:
        model.profiles.setdefault(card.profile_id, card)
    return World(cards, messages, model, persons)


async def _publish(kafka: Any, messages: list[tuple[str, str, dict[str, Any]]]) -> None:
    futures = [
        await kafka.producer.send(
            topic, json.dumps({k: v for k, v in value.items() if v is not None}).encode(),
            key=key.encode(),
        )
        for topic, key, value in messages
    ]  # fmt: skip
    await asyncio.gather(*futures)


async def _differences(
    worlds: list[World], account: str, consent: httpx.AsyncClient, executor: httpx.AsyncClient
) -> list[str]:
    sem = asyncio.Semaphore(16)

    async def one(w: World, card: ProfileCard) -> str | None:
        want = w.model.reachable(card.profile_id)
        path = f"/accounts/{account}/profiles/{card.profile_id}"
        async with sem:
            c = await consent.get(f"{path}/consent", headers=headers(account))
            x = await executor.get(f"{path}/reachability", headers=headers(account))
        if c.status_code != 200:
            return f"{card}: consent API {c.status_code}"
        got = {ch: c.json()["channels"][ch]["can_receive"] for ch in CHANNELS}
        if got != want:
            return f"{card}: consent {got}, model {want} {w.model.answer(card.profile_id)}"
        sms = x.status_code == 200 and x.json()["can_receive"]["sms_marketing"]
        if sms != want["sms_marketing"]:
            doc = x.json() if x.status_code == 200 else {}
            return (
                f"{card}: executor SMS {sms}, model {want['sms_marketing']}: "
                f"{doc.get('blocked')} {doc.get('consent')} {doc.get('profile')}"
            )
        return None

    acted = [(w, c) for w in worlds for c in w.cards if c.profile_id in w.model.own]
    return [d for d in await asyncio.gather(*(one(w, c) for w, c in acted)) if d]


@pytest.mark.timeout(300)
async def test_i1_c6_x3_people_through_the_services_agree_with_the_model(
    services: Any, kafka: Any
) -> None:
    rng = random.Random(int(os.environ.get("PEOPLE_SEED", "22")))  # another seed: new worlds
    account = ACCOUNTS[-2]
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    async with (
        httpx.AsyncClient(base_url=services.services["consent"].base_url, timeout=20) as consent,
        httpx.AsyncClient(
            base_url=services.services["flow_executor"].base_url, timeout=20
        ) as executor,
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
                "account_id": account, "flow_id": "noop", "version": 1, "name": "noop",
                "trigger": {"type": "metric", "metric": "Never happens"},
                "steps": [{"id": "wait", "type": "delay", "seconds": 0, "next": None}],
            },
        )  # fmt: skip

        async def flow_known() -> bool:
            path = f"/accounts/{account}/flows/noop/activity"
            return (await executor.get(path, headers=headers(account))).status_code == 200

        await eventually(flow_known, timeout_s=30)
        worlds = [world(rng, n, account, base) for n in range(WORLDS)]
        messages = [m for w in worlds for m in w.messages]
        rng.shuffle(messages)
        await _publish(kafka, messages)
        last: list[str] = []

        async def agree() -> bool:
            nonlocal last
            last = await _differences(worlds, account, consent, executor)
            return not last

        try:
            await eventually(agree, timeout_s=150, interval_s=1.0)
        except AssertionError:
            raise AssertionError(f"{len(last)} profiles differ: {last[:8]}") from None
        await _erase_by_any_spelling(rng, worlds[:25], account, kafka, consent, executor)
    changes = [
        v
        for _, v in await kafka.read_all(topics.CONSENT_CHANGES)
        if v and v["account_id"] == account
    ]
    ids = [c["change_id"] for c in changes]
    assert len(ids) == len(set(ids)), "X2: two consent changes share an id"


async def _erase_by_any_spelling(
    rng: random.Random,
    worlds: list[World],
    account: str,
    kafka: Any,
    consent: httpx.AsyncClient,
    executor: httpx.AsyncClient,
) -> None:
    """P1, P2, I1: a person erased by one spelling of their address is held under
    every other, for every profile that carried it and for a new profile bringing it
    in yet another spelling (an import without evidence): consent's read API and the
    executor's read model both say nothing may go to them."""
    held: list[str] = []
    messages = []
    for n, w in enumerate(worlds):
        local, domain, _ = w.persons[0]
        key = email_key(f"{local}@{domain}")
        named = [  # profiles the service knows that carry the address, in any spelling
            c.profile_id
            for c in w.cards
            if c.email and email_key(c.email) == key and c.profile_id in w.model.own
        ]
        messages.append(
            (topics.PRIVACY_REQUESTS, f"erase-{n}", {
                "request_id": f"erase-{account}-{n}", "account_id": account,
                "email": email_spelling(rng, local, domain), "action": "erase",
            })
        )  # fmt: skip
        newcomer = {"id": f"w{n}-new", "email": email_spelling(rng, local, domain)}
        messages.append(
            (topics.CONSENT_COMMANDS, newcomer["id"], {
                "command_id": f"w{n}-import", "account_id": account, "profile": newcomer,
                "action": "subscribe", "channel": "email", "method": "import",
                "historical_import": True,
                "consented_at": (datetime.now(UTC) - timedelta(days=2)).isoformat(),
            })
        )  # fmt: skip
        held += [*named, newcomer["id"]]
    # The erases and the imports, on two topics: either may be handled first.
    await _publish(kafka, messages[0::2])
    await _publish(kafka, messages[1::2])
    last: list[str] = []

    async def everyone_held() -> bool:
        nonlocal last
        last = []
        for pid in held:
            path = f"/accounts/{account}/profiles/{pid}"
            c = await consent.get(f"{path}/consent", headers=headers(account))
            if c.status_code != 200 or any(
                ch["can_receive"] for ch in c.json()["channels"].values()
            ):
                last.append(f"{pid}: consent {c.status_code} {c.text[:300]}")
                continue
            x = await executor.get(f"{path}/reachability", headers=headers(account))
            if x.status_code == 200 and any(x.json()["can_receive"].values()):
                last.append(f"{pid}: executor {x.json()['blocked']}")
        return not last

    try:
        await eventually(everyone_held, timeout_s=90, interval_s=1.0)
    except AssertionError:
        raise AssertionError(f"{len(last)} erased profiles reachable: {last[:6]}") from None
