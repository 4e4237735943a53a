"""Flow definitions (`flow-definitions`, compacted, key `account_id:flow_id`).

These models check the shape of a definition and nothing more: they are data. Whether
the steps form a valid graph (F1) and whether alert actions are acceptable (A1, A7) is
one pure rule, `shared.domain.flow_rules.flow_problems`, that both readers of
`flow-definitions` apply.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.base import Id, Message

Op = Literal["eq", "ne", "lt", "lte", "gt", "gte", "in", "exists"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Predicate(_Frozen):
    """`{"property": "event.score", "op": "lte", "value": 6}`."""

    property: str = Field(min_length=1, max_length=200)
    op: Op
    value: Any = None


class AllOf(_Frozen):
    all: list[Condition] = Field(min_length=1)


class AnyOf(_Frozen):
    any: list[Condition] = Field(min_length=1)


Condition = Predicate | AllOf | AnyOf


class MetricTrigger(_Frozen):
    type: Literal["metric"]
    metric: str = Field(min_length=1, max_length=200)
    filter: Condition | None = None


class ListTrigger(_Frozen):
    type: Literal["list"]
    list_id: Id


Trigger = Annotated[MetricTrigger | ListTrigger, Field(discriminator="type")]


class _Step(_Frozen):
    id: Id
    next: str | None = None


class DelayStep(_Step):
    type: Literal["delay"]
    seconds: int = Field(ge=0, le=366 * 24 * 3600)


class SplitStep(_Step):
    type: Literal["split"]
    condition: Condition
    yes: str | None = None
    no: str | None = None


Mode = Literal["live", "manual", "draft"]


class InternalAlertStep(_Step):
    type: Literal["internal_alert"]
    mode: Mode = "live"
    recipients: list[str] = Field(default_factory=list)
    from_email: str = Field(min_length=3, max_length=320)
    from_name: str | None = Field(None, max_length=200)
    reply_to: str | None = Field(None, max_length=320)
    subject: str = Field(max_length=1000)
    body: str = Field(max_length=100_000)


SmartSendingHours = Annotated[
    int | None,
    Field(
        None,
        ge=0,
        le=366 * 24,
        description="F9: skip the step if any flow sent the profile a message on this"
        " channel within this many hours; 0 turns it off. Default: 16 for marketing,"
        " 0 for transactional SMS.",
    ),
]


class EmailStep(_Step):
    type: Literal["email"]
    mode: Mode = "live"
    template_id: str | None = None
    subject: str | None = None
    list_id: str | None = None
    client_id: str | None = None
    user_id: str | None = None
    smart_sending_hours: SmartSendingHours = None


class SmsStep(_Step):
    type: Literal["sms"]
    mode: Mode = "live"
    purpose: Literal["marketing", "transactional"] = "marketing"
    body: str | None = None
    client_id: str | None = None
    user_id: str | None = None
    smart_sending_hours: SmartSendingHours = None


Step = Annotated[
    DelayStep | SplitStep | InternalAlertStep | EmailStep | SmsStep, Field(discriminator="type")
]


class FlowDefinition(Message):
    """A saved flow: trigger, optional profile filter, and its steps (the first runs first)."""

    account_id: Id
    flow_id: Id
    version: int = Field(ge=1)
    name: str = Field(min_length=1, max_length=200)
    trigger: Trigger
    profile_filter: Condition | None = None
    steps: list[Step] = Field(min_length=1, max_length=200)

    @property
    def key(self) -> str:
        return flow_key(self.account_id, self.flow_id)


def flow_key(account_id: str, flow_id: str) -> str:
    """The Kafka key of a flow definition; a null value under it deletes the flow."""
    return f"{account_id}:{flow_id}"


class FlowDeleted(BaseModel):
    """A null value (tombstone) under `account_id:flow_id`: the flow is deleted."""

    model_config = ConfigDict(frozen=True)

    account_id: str
    flow_id: str


def parse_flow_record(key: bytes | None, value: bytes | None) -> FlowDefinition | FlowDeleted:
    """A definition, or a deletion for a tombstone; raises ValueError/ValidationError."""
    if value is None:
        text = (key or b"").decode(errors="replace")
        account_id, sep, flow_id = text.partition(":")
        if not sep or not account_id or not flow_id:
            raise ValueError(f"tombstone key {text!r} is not account_id:flow_id")
        return FlowDeleted(account_id=account_id, flow_id=flow_id)
    return FlowDefinition.model_validate_json(value)
