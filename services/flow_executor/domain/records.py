"""The two records the use cases build for the repositories and get back from them: a
fact observed about a profile, and an action held in review. Pure values, so that the
mapping from the contracts (`domain.messages`) can build them without the ports."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Observed:
    """A fact about a profile seen at `at`: its data (a dict or its JSON text), its
    consent state, or its suppressions in force. Older facts never replace newer ones."""

    account_id: str
    profile_id: str
    value: Any
    at: datetime


@dataclass(frozen=True)
class HeldReview:
    """An action kept in review (F5): the step and the request as they were when held,
    in their wire JSON, so that an approval sends exactly what was held."""

    alert_id: str
    run_id: uuid.UUID
    step_id: str
    account_id: str
    flow_id: str
    profile_id: str
    step: dict[str, Any] | None
    request: dict[str, Any] | None
    # The trace of the input that started the run (`Run.trace`): an approval carries
    # the correlation id of the event that led to the held action (X4).
    trace: Mapping[str, str] | None = field(default=None, compare=False)
