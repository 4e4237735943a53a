"""`profile-events` records to slim event records (`domain.event_records`).

Every record is validated in full, as `ProfileEvent` would be (X1): the record type is
derived from the model, with the same checks by the same libraries (email-validator,
phonenumbers, pydantic). Only the objects are left out. A record the slim validation
refuses is validated again by the model itself, so that its dead letter carries exactly
the error the model gives (and should the two ever disagree on a record, the model's
answer is the one used: its `ProfileEvent` goes on like a record).
"""

from __future__ import annotations

from aiokafka import ConsumerRecord
from pydantic import TypeAdapter, ValidationError

from services.flow_executor.domain.event_records import EVENT_RECORD, EventInput
from shared.contracts import ProfileEvent

# The compiled validator itself: `TypeAdapter.validate_json` is a Python frame around it.
_validate_json = TypeAdapter(EVENT_RECORD).validator.validate_json


def parse_event(record: ConsumerRecord) -> EventInput:
    """The event a record carries, as a record; raises the model's error if invalid."""
    value = record.value
    if value is None:
        raise ValueError("message has no value")
    try:
        return _validate_json(value)  # type: ignore[no-any-return]
    except ValidationError:
        return ProfileEvent.model_validate_json(value)
