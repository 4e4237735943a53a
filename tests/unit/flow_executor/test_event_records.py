"""X1, F2, F3: profile events decoded into slim records (`adapters.events`,
`domain.event_records`) are held to the general path, `ProfileEvent` objects.

Decoding: every input is accepted or refused as the model does, with the same dead-letter
error, and an accepted one holds exactly the model's values (and the profile row it
writes is the model's JSON, byte for byte). Entering: a batch of records ends in the
same runs, profile rows and published messages as the same batch of `ProfileEvent`s,
over wide inputs (several profiles per person, every spelling of an address, NFD,
zero-width and full-width characters, equal timestamps, every arrival order)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import pytest
from aiokafka import ConsumerRecord
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError, field_validator

from services.flow_executor import handlers
from services.flow_executor.adapters.events import parse_event
from services.flow_executor.domain import messages
from services.flow_executor.domain.entries import event_entries
from services.flow_executor.domain.event_records import (
    EVENT_RECORD,
    PROFILE_RECORD,
    event_of,
    profile_json,
    record_of,
    record_profiles,
)
from services.flow_executor.domain.triggers import EntryIndex, may_enter
from shared.contracts import FlowDefinition, ProfileEvent
from shared.contracts.base import Profile
from shared.contracts.records import record_type
from shared.messaging.batches import describe_error
from shared.received import Received, Trace
from tests.unit.flow_executor.fakes import FakeWork
from tests.unit.flow_executor.flows import alert, flow

# --- wide inputs -----------------------------------------------------------------------

ZW, NBSP = "\u200b", "\u00a0"
EMAILS = [
    "ada@example.com",
    " Ada@Example.COM ",
    "ADA@EXAMPLE.COM",
    "zoë@bücher.example",
    "zoe\u0308@bu\u0308cher.example",  # NFD
    "zoë@xn--bcher-kva.example",
    "ａｄａ@example.com",  # full-width local part
    "ada@ｅｘａｍｐｌｅ.com",  # full-width domain
    f"ada{ZW}@example.com",
    f"{NBSP}ada@example.com{NBSP}",
    "ß@A.example",
    "not-an-email",
    "ada@",
    "a\nb@example.com",
    "",
    "   ",
    None,
]
PHONES = [
    "+12125550100",
    "+1 (212) 555-0100",
    "0012125550100",
    "＋１２１２５５５０１００",  # full-width
    f"+1212{ZW}5550100",
    "2125550100",
    "+1",
    "",
    None,
]
IDS = ["p-1", " p-1 ", "p-2", "P-1", "p\u0308", "ｐ-1", f"p{ZW}1", "", "  ", "x" * 201]
TIMES = [
    "2026-11-23T10:00:00Z",
    "2026-11-23T11:00:00+01:00",  # the same instant
    "2026-11-23T10:00:01Z",
    "2026-11-23T10:06:00Z",  # after the arrival, within the skew allowed
    "2026-11-23T10:00:00",  # no zone
    "2099-01-01T00:00:00Z",  # future-dated
    "2026-11-23",
    "yesterday",
    1764000000,
    None,
]
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
PROPS = st.dictionaries(st.text(max_size=5), JSON_VALUES, max_size=3)
EVENT_PROPS = st.dictionaries(st.sampled_from(["score", "x"]), JSON_VALUES, max_size=2)
MISSING = object()


def maybe(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A value, or the field left out."""
    return st.one_of(st.just(MISSING), values)


@st.composite
def profiles(draw: st.DrawFn, ids: list[str] = IDS) -> Any:
    if draw(st.integers(0, 20)) == 0:
        return draw(st.sampled_from([None, "p-1", [], 3]))
    fields = {
        "id": draw(st.sampled_from(ids) | st.integers(0, 3)),
        "email": draw(maybe(st.sampled_from(EMAILS))),
        "phone_number": draw(maybe(st.sampled_from(PHONES))),
        "first_name": draw(maybe(st.sampled_from(["Ada", "", "Zoë", None, "x" * 201, 7]))),
        "last_name": draw(maybe(st.sampled_from(["Lovelace", None]))),
        "properties": draw(maybe(PROPS | JSON_VALUES)),
        "unknown": draw(maybe(JSON_VALUES)),
    }
    return {k: v for k, v in fields.items() if v is not MISSING}


@st.composite
def payloads(draw: st.DrawFn, ids: list[str] = IDS, event_ids: Any = None) -> Any:
    """A `profile-events` payload, valid or not in any way a producer may get wrong."""
    if draw(st.integers(0, 30)) == 0:
        return draw(st.sampled_from([[], "event", 3, None, True]))
    fields = {
        "schema_version": draw(maybe(st.sampled_from([1, 2, "1", 1.0, 1.5, "x", None]))),
        "event_id": draw(event_ids or st.sampled_from(["e-1", " e-1 ", "e:2", "", "x" * 201, 5])),
        "account_id": draw(st.sampled_from(["acme", " acme ", "other", ""])),
        "metric": draw(st.sampled_from(["Left NPS Score", "Viewed Page", "", "m" * 201, 1])),
        "profile": draw(profiles(ids)),
        "properties": draw(
            maybe(st.dictionaries(st.sampled_from(["score", "x"]), JSON_VALUES, max_size=2))
        ),
        "time": draw(st.sampled_from(TIMES)),
        "historical_import": draw(maybe(st.sampled_from([False, True, "true", 0, 1, "no", None]))),
        "extra": draw(maybe(JSON_VALUES)),
    }
    return {k: v for k, v in fields.items() if v is not MISSING}


def record(value: bytes | None) -> ConsumerRecord:
    size = len(value) if value is not None else 0
    return ConsumerRecord("profile-events", 0, 0, 0, 0, b"k", value, None, 1, size, [])


def decoded(value: bytes | None) -> tuple[Any, str | None]:
    try:
        return parse_event(record(value)), None
    except (ValidationError, ValueError) as exc:
        return None, describe_error(exc)


def by_model(value: bytes) -> tuple[ProfileEvent | None, str | None]:
    try:
        return ProfileEvent.model_validate_json(value), None
    except ValidationError as exc:
        return None, describe_error(exc)


# --- decoding (X1) -----------------------------------------------------------------------


def test_the_record_types_have_the_models_fields_in_order() -> None:
    assert list(EVENT_RECORD.__annotations__) == list(ProfileEvent.model_fields)
    assert list(PROFILE_RECORD.__annotations__) == list(Profile.model_fields)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads())
@example({"event_id": "e", "account_id": "a", "metric": "m", "profile": {"id": "p"}, "time": 0})
@example(
    {
        "event_id": "e",
        "account_id": "a",
        "metric": "m",
        "profile": {"id": "p", "email": " Ada@Example.COM ", "phone_number": "0012125550100"},
        "time": "2026-11-23T10:00:00Z",
    }
)
def test_x1_a_record_is_accepted_refused_and_valued_as_the_model(payload: Any) -> None:
    raw = json.dumps(payload).encode()
    model, model_error = by_model(raw)
    got, error = decoded(raw)
    assert error == model_error  # the same dead letter
    if model is None:
        return
    assert isinstance(got, dict), "what the model accepts, the record accepts"
    assert got == model.model_dump()
    assert record_of(got) == record_of(model)
    assert event_of(got) == model
    assert profile_json(got["profile"]) == model.profile.model_dump_json()


def test_x1_bytes_that_are_not_an_event_are_refused_as_before() -> None:
    for raw in (b"", b"{", b"\xff\xfe", b"[]", b'"x"', b"null", b"{}", b'{"profile": 1}'):
        assert decoded(raw)[1] == by_model(raw)[1]
        assert decoded(raw)[1]
    assert decoded(None) == (None, "ValueError: message has no value")


# --- deciding on records (F2, F3) --------------------------------------------------------

NOW = datetime(2026, 11, 23, 10, 2, tzinfo=UTC)
FILTERED = flow([alert()])  # score <= 6, read off the event
BY_PERSON = flow(
    [alert()],
    flow_id="vip",
    trigger={
        "type": "metric",
        "metric": "Left NPS Score",
        "filter": {"property": "person.vip", "op": "eq", "value": True},
    },
)
GOLD = flow(
    [alert()],
    flow_id="gold",
    profile_filter={"property": "tier", "op": "eq", "value": "gold"},
    trigger={"type": "metric", "metric": "Viewed Page"},
)
FLOWS = [FILTERED, BY_PERSON, GOLD]
FLOW_SETS = st.sets(st.sampled_from(range(len(FLOWS)))).map(lambda s: [FLOWS[i] for i in sorted(s)])


def _valid(payloads_: list[Any]) -> list[ProfileEvent]:
    events = []
    for p in payloads_:
        model, _ = by_model(json.dumps(p).encode())
        if model is not None:
            events.append(model)
    return events


@settings(max_examples=150, deadline=None)
@given(st.lists(payloads(), max_size=8), FLOW_SETS)
def test_f2_records_decide_entry_as_the_events_do(
    payloads_: list[Any], flows: list[FlowDefinition]
) -> None:
    events = _valid(payloads_)
    by_account = {"acme": list(flows)} if flows else {}
    index = EntryIndex(by_account)
    for e in events:
        r = record_of(parse_event(record(e_bytes(e))))
        fast = index.may_enter(
            r["account_id"], r["metric"], r["properties"], r["historical_import"]
        )
        assert fast == (e.account_id in by_account and may_enter(by_account[e.account_id], e))
    records = [record_of(parse_event(record(e_bytes(e)))) for e in events]
    fast = record_profiles(records, by_account, NOW)
    general = messages.event_profiles(events, by_account, NOW)
    assert [replace(o, value=profile_json(o.value)) for o in fast] == general


def e_bytes(e: ProfileEvent) -> bytes:
    return e.model_dump_json().encode()


# Several profiles per person: ids and spellings of one address drawn from few values.
PEOPLE_IDS = ["p-1", "p-2", " p-1 ", "p-3"]
PEOPLE_EMAILS = [e for e in EMAILS[:11] if e]


@st.composite
def person_events(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 8))
    out = []
    for i in range(n):
        profile: dict[str, Any] = {"id": draw(st.sampled_from(PEOPLE_IDS))}
        if draw(st.booleans()):
            profile["email"] = draw(st.sampled_from(PEOPLE_EMAILS))
        if draw(st.booleans()):
            profile["phone_number"] = draw(st.sampled_from(PHONES[:5]))
        if draw(st.booleans()):
            profile["first_name"] = draw(st.sampled_from(["Ada", "Zoë", None]))
        profile["properties"] = draw(
            st.dictionaries(
                st.sampled_from(["tier", "vip"]), st.sampled_from(["gold", True, 1]), max_size=2
            )
        )
        out.append(
            {
                "event_id": draw(st.sampled_from([f"e-{i}", "e-0", "e:0"])),
                "account_id": draw(st.sampled_from(["acme", "acme", "other"])),
                "metric": draw(st.sampled_from(["Left NPS Score", "Viewed Page", "Other"])),
                "profile": profile,
                "properties": {"score": draw(st.sampled_from([0, 6, 7, "x"]))},
                "time": draw(st.sampled_from(TIMES[:4] + TIMES[5:6])),
                "historical_import": draw(st.booleans()),
            }
        )
    return out


async def reference_enter(batch: list[Received[ProfileEvent]], work: FakeWork) -> None:
    """The general path, as `enter_from_events` was before records: a `ProfileEvent` per
    event, `may_enter` on each, `messages.event_profiles` for the profile rows."""
    events = [i.message for i in batch]
    flows = await work.flows.live_flows(e.account_id for e in events)
    candidates = [e for e in events if e.account_id in flows and may_enter(flows[e.account_id], e)]
    known = await work.profiles.walk_state((e.account_id, e.profile.id) for e in candidates)
    await work.profiles.upsert_profiles(messages.event_profiles(events, flows, handlers.utcnow()))
    entries = event_entries(candidates, flows, known)
    if entries:
        await handlers._enter(
            work, entries, handlers._traces_by(batch, lambda e: e.event_id, entries)
        )


async def _enter_all(
    batches: list[list[Any]], flows: list[FlowDefinition], use_case: Any
) -> FakeWork:
    work = FakeWork()
    for f in flows:
        await work.flows.save_flow(f)
    with mock.patch.object(handlers, "utcnow", lambda: NOW):
        for batch in batches:
            await use_case(
                [Received(m, None, Trace(f"t-{i}")) for i, m in enumerate(batch)],  # type: ignore[arg-type]
                work,
            )
    return work


def _outcome(work: FakeWork) -> Any:
    repo = work.flows
    published = [
        (t, k, type(m).__name__, m.model_dump(exclude={"requested_at", "occurred_at"}))
        for t, k, m in work.published
    ]
    return (
        repo.profiles,
        {rid: (r.profile_id, r.flow_id, r.context, r.event_id) for rid, r in repo.runs.items()},
        repo.run_status,
        repo.executions,
        published,
        [h for _, _, h in work.headers],
    )


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    person_events(),
    FLOW_SETS.filter(bool),
    st.randoms(use_true_random=False),
    st.integers(1, 3),
)
async def test_f2_f3_a_batch_of_records_enters_and_keeps_as_the_events_do(
    payloads_: list[dict[str, Any]], flows: list[FlowDefinition], rnd: Any, parts: int
) -> None:
    rnd.shuffle(payloads_)  # any arrival order
    events = _valid(payloads_)
    cut = max(1, len(events) // parts)
    split = [events[i : i + cut] for i in range(0, len(events), cut)]
    ordered = flows
    reference = await _enter_all(split, ordered, reference_enter)
    records = [[parse_event(record(e_bytes(e))) for e in b] for b in split]
    assert all(isinstance(r, dict) for b in records for r in b)
    slim = await _enter_all(records, ordered, handlers.enter_from_events)
    assert _outcome(slim) == _outcome(reference)
    # ProfileEvent objects (tests, the decoder's fallback) take the same way.
    objects = await _enter_all(split, ordered, handlers.enter_from_events)
    assert _outcome(objects) == _outcome(reference)


def test_x1_f3_a_nan_or_infinity_a_producer_sends_is_kept_as_the_model_keeps_it() -> None:
    """JSON has no NaN, but the contract's parser takes one (and Infinity); the profile
    row has it as null, as `Profile.model_dump_json()` writes it, never as a literal
    PostgreSQL would refuse (with the batch's other rows)."""
    raw = (
        b'{"event_id": "e-1", "account_id": "acme", "metric": "m", "time": "2026-11-23T10:00:00Z",'
        b' "profile": {"id": "p-1", "properties": {"x": NaN, "y": -Infinity}},'
        b' "properties": {"score": Infinity}}'
    )
    model, _ = by_model(raw)
    assert model is not None
    got, error = decoded(raw)
    assert error is None and isinstance(got, dict)
    assert profile_json(got["profile"]) == model.profile.model_dump_json()
    assert '"x":null' in profile_json(got["profile"])


def test_a_model_with_validator_methods_gets_no_record_type() -> None:
    """A check written as a method of the contract would be left out of the record;
    deriving its record type fails instead, when the service starts."""

    class Checked(Profile):
        @field_validator("first_name")
        @classmethod
        def _no_digits(cls, value: str | None) -> str | None:
            return value

    with pytest.raises(TypeError, match="Checked"):
        record_type(Checked, "CheckedRecord")
