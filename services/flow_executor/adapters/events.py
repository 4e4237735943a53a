"""`profile-events` records to slim event records (`domain.event_records`).

Every record is validated in full, as `ProfileEvent` would be (X1): the record type is
derived from the model, with the same checks by the same libraries (email-validator,
phonenumbers, pydantic). Only the objects are left out. A record the slim validation
refuses is validated again by the model itself, so that its dead letter carries exactly
the error the model gives (and should the two ever disagree on a record, the model's
answer is the one used: its `ProfileEvent` goes on like a record).
"""

from __future__ import annotations

from services.flow_executor.domain.event_records import EVENT_RECORD
from shared.contracts import ProfileEvent
from shared.contracts.records import SlimParser

parse_event = SlimParser(ProfileEvent, EVENT_RECORD)
"""The event a record carries, as a record; raises the model's error if invalid."""
