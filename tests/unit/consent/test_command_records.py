"""X1, C1–C11, I1: `consent-commands` decoded into slim records (`adapters.commands`)
are the commands the model decodes. For every input, valid or not: the record is
`ConsentCommand.model_validate_json(raw).model_dump()` when the model accepts it, and the
slim validation accepts nothing the model refuses (a refused input is answered with the
model's own error). And the use case does the same with records as with models: for
several profiles per person and per number, every spelling of an address or number
(case, NFC/NFD, punycode, blanks, full-width digits), evidence made of invisible
characters, equal times and batches cut anywhere, the same state, history, receipts,
published bytes and dead letters."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from aiokafka import ConsumerRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError, field_validator

from services.consent import handlers
from services.consent.adapters.commands import parse_command
from shared.contracts import ConsentCommand, topics
from shared.contracts.outputs import DeadLetter
from shared.contracts.records import record_type
from shared.received import Received, Trace
from tests.unit.consent.fakes import FakeOutbox, FakeWork, InMemoryConsentRepository
from tests.unit.consent.test_handlers import SINGLE
from tests.unit.consent.test_people_properties import (
    ACCOUNT,
    ADDRESSES,
    EVIDENCE,
    INVISIBLE,
    NUMBERS,
    email_spellings,
    phone_spellings,
)

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

TEXTS = st.one_of(
    st.text(max_size=6),
    st.text(alphabet=INVISIBLE + "aZ09 :%", max_size=6),
    st.sampled_from(("", " ", "p-1", "acme", "a:b", "50%", "\uff50-1", "x" * 201)),
)
WRONG = st.one_of(st.none(), st.integers(), st.booleans(), st.lists(st.integers(), max_size=2))
PHONES = st.one_of(
    st.none(),
    st.sampled_from(NUMBERS).flatmap(phone_spellings),
    st.sampled_from(("", " ", "+1", "not a number", "+4915112345678", "0015555550100")),
)
EMAILS = st.one_of(
    st.none(),
    st.sampled_from(ADDRESSES).flatmap(email_spellings),
    st.sampled_from(("", " ", "not an address", "a@b", "x@example.com\u200b")),
)
TIMES = st.one_of(
    st.sampled_from(
        (
            "2026-11-23T10:00:00Z",
            "2026-11-23T10:00:00+00:00",
            "2026-11-23T11:30:00.5+01:30",
            "1970-01-01T00:00:00Z",
            "2099-01-01T00:00:00-08:00",
            "2026-11-23T10:00:00",  # no zone: refused
            "yesterday",
        )
    ),
    WRONG,
)
PROFILES = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(TEXTS, WRONG),
        "email": st.one_of(EMAILS, WRONG),
        "phone_number": st.one_of(PHONES, WRONG),
        "first_name": st.one_of(st.none(), TEXTS),
        "last_name": st.one_of(st.none(), TEXTS),
        "properties": st.one_of(
            st.dictionaries(st.text(max_size=4), st.one_of(st.integers(), TEXTS), max_size=3),
            WRONG,
        ),
        "unknown": TEXTS,
    },
)
SCOPES = st.fixed_dictionaries(
    {},
    optional={
        "level": st.sampled_from(("group", "client", "user", "account", "")),
        "client_id": st.one_of(st.none(), TEXTS),
        "user_id": st.one_of(st.none(), TEXTS),
        "schema_version": st.one_of(st.integers(0, 2), TEXTS),
    },
)
VALUES = st.fixed_dictionaries(
    {},
    optional={
        "command_id": st.one_of(TEXTS, WRONG),
        "account_id": st.one_of(TEXTS, WRONG),
        "profile": st.one_of(PROFILES, WRONG),
        "action": st.sampled_from(("subscribe", "unsubscribe", "resubscribe", "SUBSCRIBE", 1)),
        "channel": st.sampled_from(("email", "sms", "push", "fax")),
        "purpose": st.sampled_from(("marketing", "transactional", "other")),
        "list_id": st.one_of(st.none(), TEXTS, WRONG),
        "method": st.sampled_from(("form", "api", "import", "manual", "link", "keyword", "x")),
        "scope": st.one_of(SCOPES, WRONG),
        "evidence": st.one_of(EVIDENCE, TEXTS, st.just("e" * 2001)),
        "consented_at": TIMES,
        "historical_import": st.one_of(st.booleans(), st.sampled_from(("true", "no", 2))),
        "actor": st.one_of(st.none(), TEXTS),
        "notice": st.one_of(st.none(), TEXTS),
        "jurisdiction": st.one_of(st.none(), TEXTS, st.just("j" * 65)),
        "schema_version": st.one_of(st.integers(0, 2), TEXTS),
        "extra": TEXTS,
    },
)
# Mostly valid commands: every required field there, and well-formed values.
VALID = st.fixed_dictionaries(
    {
        "command_id": st.sampled_from(("c-1", " c-2 ", "c:3", "50%")),
        "account_id": st.sampled_from(("acme", " acme ")),
        "profile": st.fixed_dictionaries(
            {"id": st.sampled_from(("p-1", "p:2"))},
            optional={"email": EMAILS, "phone_number": PHONES, "properties": st.just({"a": 1})},
        ),
        "action": st.sampled_from(("subscribe", "unsubscribe", "resubscribe")),
        "channel": st.sampled_from(("email", "sms", "push")),
        "consented_at": st.sampled_from(("2026-11-23T10:00:00Z", "2026-11-23T11:30:00+01:30")),
    },
    optional={
        "purpose": st.sampled_from(("marketing", "transactional")),
        "list_id": st.sampled_from((None, "news")),
        "method": st.sampled_from(("form", "api", "import", "link")),
        "scope": SCOPES,
        "evidence": EVIDENCE,
        "historical_import": st.booleans(),
        "notice": st.sampled_from((None, "form-v7")),
        "jurisdiction": st.sampled_from((None, "EU")),
        "actor": st.sampled_from((None, "ops@acme")),
    },
)


def _record(raw: bytes) -> ConsumerRecord:
    return ConsumerRecord(topics.CONSENT_COMMANDS, 0, 7, 0, 0, b"k", raw, None, 1, len(raw), [])


@settings(max_examples=600, deadline=None)
@given(value=st.one_of(VALUES, VALID))
def test_x1_a_command_record_is_the_models_dump_and_refused_as_the_model_refuses(
    value: dict[str, Any],
) -> None:
    raw = json.dumps(value).encode()
    try:
        model = ConsentCommand.model_validate_json(raw)
    except ValidationError as exc:
        with pytest.raises(ValidationError):
            parse_command.validate_json(raw)
        with pytest.raises(ValidationError) as got:
            parse_command(_record(raw))
        assert str(got.value) == str(exc)
        return
    record = parse_command(_record(raw))
    assert isinstance(record, dict)
    assert record == model.model_dump()
    assert handlers.act_from_record(record) == handlers.act_from_command(model)


def test_x1_a_record_without_a_value_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_command(
            ConsumerRecord(topics.CONSENT_COMMANDS, 0, 7, 0, 0, b"k", None, None, 1, 0, [])
        )


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[bytes], list[int]]:
    """Commands for a few profiles that share people and numbers, as producers write
    them (raw JSON, any spelling), and where the batches are cut."""
    people = draw(st.integers(1, 3))
    profiles = []
    for i in range(draw(st.integers(1, 4))):
        person = draw(st.integers(0, people - 1))
        profile: dict[str, Any] = {"id": f"p{i}"}
        if draw(st.booleans()):
            profile["email"] = draw(email_spellings(ADDRESSES[person]))
        if draw(st.booleans()):
            profile["phone_number"] = draw(phone_spellings(NUMBERS[draw(st.integers(0, 2))]))
        profiles.append(profile)
    out = []
    for n in range(draw(st.integers(1, 8))):
        minute = draw(st.integers(0, 2))  # equal times within and across channels
        value = {
            "command_id": draw(st.sampled_from((f"c{n}", "c0"))),  # redelivered copies too
            "account_id": ACCOUNT,
            "profile": draw(st.sampled_from(profiles)),
            "action": draw(
                st.sampled_from(("subscribe", "subscribe", "unsubscribe", "resubscribe"))
            ),
            "channel": draw(st.sampled_from(("email", "sms", "sms", "push"))),
            "purpose": draw(st.sampled_from(("marketing", "transactional"))),
            "method": draw(st.sampled_from(("form", "api", "import", "link"))),
            "evidence": draw(EVIDENCE),
            "historical_import": draw(st.booleans()),
            "consented_at": (T0 + timedelta(minutes=minute)).isoformat(),
            **draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "list_id": st.sampled_from((None, "news")),
                        "scope": st.sampled_from(
                            ({"level": "client", "client_id": "c1"}, {"level": "group"})
                        ),
                        "notice": st.just("form-v7"),
                        "jurisdiction": st.just("EU"),
                    },
                )
            ),
        }
        out.append(json.dumps(value).encode())
    cuts = draw(st.lists(st.integers(1, 3), min_size=len(out), max_size=len(out)))
    return out, cuts


async def _deliver(raws: list[bytes], cuts: list[int], as_records: bool) -> tuple[Any, ...]:
    repo, outbox = InMemoryConsentRepository(), _RawOutbox()
    work = FakeWork(repo, outbox, SINGLE)
    i = n = 0
    while i < len(raws):
        chunk = raws[i : i + cuts[n]]
        i, n = i + len(chunk), n + 1
        batch = []
        for raw in chunk:
            record = _record(raw)
            message = (
                parse_command(record) if as_records else ConsentCommand.model_validate_json(raw)
            )
            batch.append(Received(message, record, Trace(correlation_id=uuid.uuid4().hex)))
        with mock.patch.object(handlers, "utcnow", lambda: NOW):
            await handlers.on_commands(batch, work)
    return (
        {k: (r.state, r.profile) for k, r in repo.rows.items()},
        repo.history,
        [(r.account_id, r.profile_id, r.body, r.hash, r.personal) for r in repo.receipts],
        repo.heads,
        outbox.raw,
    )


class _RawOutbox(FakeOutbox):
    """The outbox with what was published as it was handed over (bytes, for changes)."""

    def __init__(self) -> None:
        super().__init__()
        self.raw: list[tuple[str, str | None, Any]] = []

    def publish(self, topic: str, key: str | None, message: Any, headers: Any = None) -> None:
        if isinstance(message, DeadLetter):  # stamped when written: every field but that
            kept: Any = message.model_dump(exclude={"occurred_at"})
        else:
            kept = message
        self.raw.append((topic, key, kept))
        super().publish(topic, key, message, headers)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(history=histories(), order=st.randoms(use_true_random=False))
def test_c1_c11_i1_the_use_case_does_with_records_what_it_does_with_models(
    history: tuple[list[bytes], list[int]], order: Any
) -> None:
    raws, cuts = history
    shuffled = raws[:]
    order.shuffle(shuffled)  # and in another arrival order
    for arrived in (raws, shuffled):
        records = asyncio.run(_deliver(arrived, cuts, True))
        models = asyncio.run(_deliver(arrived, cuts, False))
        assert records == models


def test_x1_a_model_with_validators_written_as_methods_gets_no_record_type() -> None:
    """They are not fields: a record type would validate by halves, so the service
    refuses to start instead."""

    class Checked(BaseModel):
        a: str

        @field_validator("a")
        @classmethod
        def _strip(cls, value: str) -> str:
            return value.strip()

    class Posted(BaseModel):
        a: str

        def model_post_init(self, context: Any) -> None:
            pass

    for model in (Checked, Posted):
        with pytest.raises(TypeError):
            record_type(model, "Record")
