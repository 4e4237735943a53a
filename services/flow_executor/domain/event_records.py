"""Profile events as slim records: what the executor decides on before any domain object
is built (F2, F3). Pure.

Most events enter no flow; for them the executor only needs the account, the metric,
the event's own properties and time, and the profile's data to keep (F3). Building a
`ProfileEvent` (two frozen pydantic models) for each cost about a third of its decoding,
so events are validated into plain dicts of the same fields (`adapters.events`, with
`EVENT_RECORD`), decided on as such, and only those a flow may take are made into a
`ProfileEvent`.

The record types are derived from the contract models field by field
(`shared.contracts.records.record_type`), so a record holds exactly what the model would:
`record == ProfileEvent.model_validate_json(raw).model_dump()` for every input the
model accepts (a property test holds them to that), and a field added to the contract
is in the record too. Handlers also take `ProfileEvent` objects (tests, the decoder's
fallback), so both forms are accepted wherever a record is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from services.flow_executor.domain.event_time import SKEW
from services.flow_executor.domain.records import Observed
from shared.contracts import ProfileEvent
from shared.contracts.base import Profile, json_bytes
from shared.contracts.records import record_type

EventRecord = dict[str, Any]
"""A validated `profile-events` payload as a dict: the fields of `ProfileEvent`, with
`profile` the fields of `Profile`, defaults filled."""

EventInput = EventRecord | ProfileEvent
"""What a profile-events use case takes per message: a record or a `ProfileEvent`."""

PROFILE_RECORD = record_type(Profile, "ProfileRecord")
EVENT_RECORD = record_type(ProfileEvent, "EventRecord", {"profile": PROFILE_RECORD})


def record_of(message: EventInput) -> EventRecord:
    """`message` as a record (a `ProfileEvent` is dumped: tests and the fallback only)."""
    return message if isinstance(message, dict) else message.model_dump()


def event_of(message: EventInput) -> ProfileEvent:
    """`message` as the domain's `ProfileEvent`. A record holds values the contract
    already accepted, and validating them again gives them back unchanged (the checks are
    idempotent: a stripped id, an address as checked, a number in E.164)."""
    return message if isinstance(message, ProfileEvent) else ProfileEvent.model_validate(message)


def event_id_of(message: EventInput) -> str:
    return message["event_id"] if isinstance(message, dict) else message.event_id


def profile_json(profile: Mapping[str, Any]) -> str:
    """The JSON of a profile record, byte for byte `Profile.model_dump_json()` of the same
    profile (its fields in the model's order, every default filled by validation; a
    NaN or infinite number, which producers may send, written as null as the model
    writes it)."""
    return json_bytes(profile).decode()


def record_profiles(
    records: Iterable[EventRecord], accounts: Any, arrived: datetime
) -> list[Observed]:
    """`messages.event_profiles` on records: the profile data events of `accounts` carry,
    as of each event's time; a time later than the batch's arrival (beyond the allowed
    skew) counts as the arrival (F2, `domain.event_time`). The data is the record's
    profile itself (its JSON is `profile_json`): the repository writes the batch's rows
    as one JSON document."""
    latest = arrived + SKEW
    return [
        Observed(
            r["account_id"],
            (p := r["profile"])["id"],
            p,
            t if (t := r["time"]) <= latest else arrived,
        )
        for r in records
        if r["account_id"] in accounts
    ]
