"""Runs: a profile's way through one flow, and what the executor knows about the profile
while it walks (F2-F7). Pure."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.flow_executor.domain.erasure import ErasureHold
from shared.contracts.flows import FlowDefinition
from shared.domain.identity import derived_id

RUN_NAMESPACE = uuid.UUID("6f1c2b1e-7d1a-4c47-9f0e-0c7f3b1f5a10")

StepKey = tuple[uuid.UUID, str]
"""(run id, step id): an action runs at most once per run (F4)."""

ProfileKey = tuple[str, str]
"""(account id, profile id)."""


@dataclass(frozen=True)
class Run:
    """A profile's way through one flow, started by one event."""

    run_id: uuid.UUID
    flow: FlowDefinition
    profile_id: str
    context: dict[str, Any]
    trigger_type: str
    event_id: str = ""
    # The correlation id and trace context of the input that started the run, carried
    # to everything the run causes, also later (after a delay, on approval; X4). None:
    # the outputs carry whatever the batch at hand carries.
    trace: Mapping[str, str] | None = field(default=None, compare=False)

    @property
    def account_id(self) -> str:
        return self.flow.account_id

    @property
    def flow_id(self) -> str:
        return self.flow.flow_id


@dataclass(frozen=True)
class ProfileState:
    """The executor's read model of one profile (F7): the newest consent state (with
    the receipt in force per slot, C17), the suppressions in force and the newest
    profile data; `erasure`: the erase its id or
    addresses match (P2), if any. The default is a profile the executor has never heard
    of."""

    consent: Mapping[str, Any] | None = None
    suppressions: Sequence[Mapping[str, Any]] = field(default_factory=list)
    profile: Mapping[str, Any] | None = None
    erasure: ErasureHold | None = None
    # F9: when the executor last published a message request to the profile, per
    # channel (`email`, `sms`), by any flow of the account.
    last_sent: Mapping[str, datetime] = field(default_factory=dict)
    # C17: the consent receipt in force per consent slot (`email`, `list:<id>`,
    # `scope:<scope>`, `sms_marketing`, `sms_transactional`, `push`): the receipt of the
    # newest change of that slot (None: that change carried none, e.g. a new number).
    receipts: Mapping[str, str | None] = field(default_factory=dict)


UNKNOWN_PROFILE = ProfileState()


@dataclass(frozen=True)
class DueTimer:
    """A delay whose time has come, claimed for this replica, with the run it holds."""

    run_id: uuid.UUID
    step_id: str
    account_id: str
    flow_id: str
    profile_id: str
    trigger_type: str
    context: dict[str, Any]
    trace: Mapping[str, str] | None = field(default=None, compare=False)
    # `delay`: go on after the delay step; `quiet_hours`: try the message step again (F8).
    kind: str = "delay"


def run_id_for(account_id: str, flow_id: str, event_id: str) -> uuid.UUID:
    """One run per flow and triggering event (F2: an event never enters twice). The
    name is `derived_id` of the parts (X2): flow `fx` with event `q:1E` and flow `fx:q`
    with event `1E` get different runs. Ids without `:` or `%` name what they did
    before."""
    return uuid.uuid5(RUN_NAMESPACE, derived_id(account_id, flow_id, event_id))


def new_run(
    flow: FlowDefinition, event_id: str, profile_id: str, context: dict[str, Any], trigger: str
) -> Run:
    """The run `event_id` starts in `flow` (its id derives from the event, F2)."""
    return Run(
        run_id_for(flow.account_id, flow.flow_id, event_id),
        flow,
        profile_id,
        context,
        trigger,
        event_id,
    )


def action_id(run_id: uuid.UUID, step_id: str) -> str:
    """The id of an action's request (`alert_id` / `request_id`): one per run and step,
    so the consumer's inbox also refuses a second copy (F4). `<run_id>:<step_id>`, the
    step id escaped as `derived_id` does (X2)."""
    return derived_id(str(run_id), step_id)
