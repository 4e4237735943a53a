"""Properties of people, not records (I1, C6, C11, C13, X2, X3), against the people model.

Generated: two or three persons (addresses with non-ASCII local parts and IDN domains,
valid numbers), up to four profiles that carry them in every spelling (case, NFC/NFD,
punycode or Unicode domain, surrounding blanks; number formats, full-width digits),
several profiles per address and per number, numbers that no profile has; producer
commands of every action with evidence from the whole of Unicode (zero-width and
format characters alone are no evidence) and equal timestamps within and across
channels; keywords with punctuation, spacing and width variants; every arrival order,
in random batches. The consent use cases run over in-memory ports.

Invariants, each a named check:
(a) `check_a_opted_out_person_unreachable`: a number whose newest own act is STOP is
    unreachable by SMS through every profile that carries it, unless that profile
    itself later consented with evidence;
(b) `check_b_order_never_matters`: two arrival orders end in the same state per profile;
(c) `check_c_every_change_reaches_consumers`: no two changes share an id, and a reader
    that applies every change once (dedupe by change id) ends with each profile's state;
(m) `check_m_agrees_with_people_model`: per profile and channel, reachable exactly when
    the people model says so.
"""

from __future__ import annotations

import asyncio
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import idna
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.consent import handlers
from services.consent.ports import Key
from shared.contracts import ConsentCommand, SmsInbound, topics
from tests.model.people import PeopleModel, ProfileCard, phone_key, reachable, upper_case
from tests.model.reference import Received, has_visible_text
from tests.unit.consent.fakes import FakeOutbox, FakeWork, InMemoryConsentRepository
from tests.unit.consent.test_handlers import SINGLE, received

ACCOUNT = "acme"
ADDRESSES = ("ada@example.org", "José.Ng@bücher.example", "zoë@Straße.example")
NUMBERS = ("+12025550101", "+12025550102", "+12025550103")
STRANGER = "+12025550199"  # a number no profile carries
STOP_WORDS = ("STOP", "Stop.", "stop all", "\uff33\uff34\uff2f\uff30", "opt-out", "REVOKE!")
START_WORDS = ("START", "unstop", "Yes!")
INVISIBLE = "\u200b\u2060\ufeff\u00ad\u3164\u180e \u00a0\u3000"


def email_spellings(address: str) -> st.SearchStrategy[str]:
    """Every spelling of one address: case, NFC/NFD, punycode domain, blanks."""
    local, _, domain = address.partition("@")
    puny = idna.encode(domain, uts46=True).decode()  # IDNA 2008, as email-validator
    return st.builds(
        lambda case, form, dom, pad: (
            pad + unicodedata.normalize(form, f"{case(local)}@{dom}") + pad
        ),
        st.sampled_from((str, str.lower, upper_case, str.title)),
        st.sampled_from(("NFC", "NFD")),
        st.sampled_from((domain, upper_case(domain), puny)),
        st.sampled_from(("", " ", "\u00a0")),
    )


def phone_spellings(e164: str) -> st.SearchStrategy[str]:
    area, mid, last = e164[2:5], e164[5:8], e164[8:]
    wide = "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in e164)
    return st.sampled_from(
        (e164, f"+1 ({area}) {mid}-{last}", f"+1-{area}-{mid}-{last}", f"001{area}{mid}{last}",
         wide, f" +1 {area} {mid} {last} ")
    )  # fmt: skip


EVIDENCE = st.one_of(
    st.none(),
    st.just("signed form #7"),
    st.text(alphabet=INVISIBLE, min_size=1, max_size=4),  # no evidence (C11)
    st.builds(lambda a, b: a + "ok" + b, st.text(INVISIBLE, max_size=2), st.text(INVISIBLE)),
)


@dataclass(frozen=True)
class Cmd:
    profile: int
    action: str
    channel: str
    purpose: str
    method: str
    evidence: str | None
    historical_import: bool
    minute: int


@dataclass(frozen=True)
class Text:
    number: str  # as the gateway spells it
    word: str
    minute: int


@st.composite
def worlds(draw: Any) -> tuple[list[ProfileCard], list[Any], Any]:
    n_people = draw(st.integers(2, 3))
    cards = []
    for i in range(draw(st.integers(1, 4))):
        person = draw(st.integers(0, n_people - 1))
        email = draw(st.none() | email_spellings(ADDRESSES[person]))
        number = draw(st.sampled_from(NUMBERS[:n_people]))  # several people per number
        phone = draw(st.none() | phone_spellings(number))
        cards.append(ProfileCard(f"p{i}-{uuid.uuid4().hex[:4]}", email, phone))
    minute = st.integers(0, 3)  # few distinct times: ties within and across channels
    cmd = st.builds(
        Cmd,
        st.integers(0, len(cards) - 1),
        st.sampled_from(("subscribe", "subscribe", "unsubscribe", "resubscribe")),
        st.sampled_from(("email", "sms", "sms", "push")),
        st.sampled_from(("marketing", "transactional")),
        st.sampled_from(("form", "api", "import")),
        EVIDENCE,
        st.booleans(),
        minute,
    )
    texts = st.builds(
        Text,
        st.sampled_from((*NUMBERS[:n_people], STRANGER)).flatmap(phone_spellings),
        st.sampled_from(STOP_WORDS + START_WORDS),
        minute,
    )
    inputs = draw(st.lists(st.one_of(cmd, cmd, texts), min_size=1, max_size=8))
    return cards, inputs, draw(st.randoms(use_true_random=False))


def payloads(cards: list[ProfileCard], inputs: list[Any], t0: datetime) -> list[Any]:
    """Each input as the message a producer or gateway publishes, with fixed ids."""
    out: list[Any] = []
    for n, item in enumerate(inputs):
        at = t0 + timedelta(minutes=item.minute)
        if isinstance(item, Text):
            out.append(
                SmsInbound(
                    message_id=f"m{n}", account_id=ACCOUNT, phone_number=item.number,
                    body=item.word, received_at=at,
                )
            )  # fmt: skip
            continue
        card = cards[item.profile]
        profile = {"id": card.profile_id, "email": card.email, "phone_number": card.phone}
        out.append(
            ConsentCommand.model_validate(
                {
                    "command_id": f"c{n}", "account_id": ACCOUNT, "profile": profile,
                    "action": item.action, "channel": item.channel, "purpose": item.purpose,
                    "method": item.method, "evidence": item.evidence,
                    "historical_import": item.historical_import, "consented_at": at,
                }
            )
        )  # fmt: skip
    return out


def model_of(cards: list[ProfileCard], inputs: list[Any], t0: datetime) -> PeopleModel:
    model = PeopleModel()
    for card in cards:
        model.profiles[card.profile_id] = card
    late = datetime.now(UTC) + timedelta(days=1)  # received long after every act
    for n, item in enumerate(inputs):
        at = t0 + timedelta(minutes=item.minute)
        if isinstance(item, Text):
            stop = item.word in STOP_WORDS
            model.keyword(
                item.number,
                Received(f"sms:m{n}", "unsubscribe" if stop else "subscribe", "sms", at, late,
                         own=not stop, double_opt_in=False),
            )  # fmt: skip
            continue
        model.act(
            cards[item.profile],
            Received(f"c{n}", item.action, item.channel, at, late, purpose=item.purpose,
                     evidence=item.evidence, historical_import=item.historical_import,
                     double_opt_in=False),
        )  # fmt: skip
    return model


async def deliver(messages: list[Any], rng: Any) -> tuple[InMemoryConsentRepository, FakeOutbox]:
    """Through the use cases, in random batches of one topic each."""
    repo, outbox = InMemoryConsentRepository(), FakeOutbox()
    i = 0
    while i < len(messages):
        size = rng.randint(1, 3)
        batch = [messages[i]]
        while len(batch) < size and i + len(batch) < len(messages):
            nxt = messages[i + len(batch)]
            if type(nxt) is not type(batch[0]):
                break
            batch.append(nxt)
        i += len(batch)
        if isinstance(batch[0], SmsInbound):
            items = [received(m, topics.SMS_INBOUND) for m in batch]
            await handlers.on_sms_inbound(items, FakeWork(repo, outbox, SINGLE))
        else:
            await handlers.on_commands([received(m) for m in batch], FakeWork(repo, outbox, SINGLE))
    return repo, outbox


def statuses(repo: InMemoryConsentRepository, pid: str) -> tuple[dict[str, str], str | None]:
    row = repo.rows.get(Key(ACCOUNT, pid))
    if row is None:
        return {}, None
    state = row.state
    shown = {k: s.status for k, s in state.slots.items() if s.status != "never_subscribed"}
    return shown, state.phone_number


def check_m_agrees_with_people_model(repo, model: PeopleModel, cards) -> None:
    for card in cards:
        if card.profile_id not in model.own:
            continue  # a profile that never acted is not in the consent service
        got = reachable(statuses(repo, card.profile_id)[0])
        assert got == model.reachable(card.profile_id), (card, model.answer(card.profile_id))


def check_a_opted_out_person_unreachable(repo, cards, inputs, t0) -> None:
    for card in cards:
        if not card.phone or not any(i.profile == cards.index(card) for i in _cmds(inputs)):
            continue
        number = phone_key(card.phone)
        keys = [
            (i.minute, i.word in STOP_WORDS, i.word in STOP_WORDS)
            for i in inputs
            if isinstance(i, Text) and phone_key(i.number) == number
        ]
        own = [
            (i.minute, i.action == "unsubscribe", False)
            for i in _cmds(inputs)
            if cards[i.profile] == card
            and i.channel == "sms"
            and (i.action == "unsubscribe" or has_visible_text(i.evidence))
        ]
        newest = max(keys + own, default=None)  # opt-out last at equal times (X3)
        if newest is not None and newest[2]:  # the number's own STOP is the newest word
            assert statuses(repo, card.profile_id)[0].get("sms_marketing") != "subscribed"


def _cmds(inputs: list[Any]) -> list[Cmd]:
    return [i for i in inputs if isinstance(i, Cmd)]


def check_c_every_change_reaches_consumers(repo, outbox: FakeOutbox, cards) -> None:
    changes = outbox.on(topics.CONSENT_CHANGES)
    ids = [c.change_id for c in changes]
    assert len(ids) == len(set(ids)), "two changes share an id"
    numbers = {c.profile_id: phone_key(c.phone) for c in cards if c.phone}
    for c in changes:  # a reader learns the number from the change (F7: SMS goes to it)
        if c.profile_id in numbers:
            assert c.profile.phone_number == numbers[c.profile_id], c
    seen: dict[str, Any] = {}
    for c in changes:  # a reader that keeps each profile's newest state
        seen[c.profile_id] = c.state
    for pid, state in seen.items():
        slots = ("email", "sms_marketing", "sms_transactional", "push")
        read = reachable({s: getattr(state, s).status for s in slots})
        assert read == reachable(statuses(repo, pid)[0]), pid


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(world=worlds())
def test_i1_c6_x3_people_against_the_model_in_every_arrival_order(world) -> None:
    cards, inputs, rng = world
    t0 = datetime.now(UTC) - timedelta(days=1)
    messages = payloads(cards, inputs, t0)
    model = model_of(cards, inputs, t0)
    shuffled = messages[:]
    rng.shuffle(shuffled)
    finals = []
    for sequence in (messages, shuffled):
        repo, outbox = asyncio.run(deliver(sequence, rng))
        check_m_agrees_with_people_model(repo, model, cards)
        check_a_opted_out_person_unreachable(repo, cards, inputs, t0)
        check_c_every_change_reaches_consumers(repo, outbox, cards)
        finals.append({c.profile_id: statuses(repo, c.profile_id) for c in cards})
    assert finals[0] == finals[1], "check_b_order_never_matters"
