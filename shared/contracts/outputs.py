"""Payloads consentflow publishes. Each carries `type`, its own id, `account_id`, the key
entity's id, a timestamp, and what a consumer needs without calling back."""

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from shared.contracts.base import Message, Profile, utcnow


class ChannelState(Message):
    """One channel's consent after a change (part of the full state in C9)."""

    status: Literal["subscribed", "unsubscribed", "never_subscribed"] = "never_subscribed"
    consented_at: datetime | None = None
    method: str | None = None
    phone_number: str | None = None


class ConsentState(Message):
    """A profile's full consent state (C1): per channel, lists, and scoped opt-outs."""

    email: ChannelState = Field(default_factory=ChannelState)
    sms_marketing: ChannelState = Field(default_factory=ChannelState)
    sms_transactional: ChannelState = Field(default_factory=ChannelState)
    push: ChannelState = Field(default_factory=ChannelState)
    lists: dict[str, Literal["subscribed", "unsubscribed"]] = Field(default_factory=dict)
    opt_outs: list[str] = Field(
        default_factory=list,
        description="Scoped email opt-outs: 'group', 'client:<id>', 'user:<client>/<user>'.",
    )


class ConsentChanged(Message):
    """A subscription event on `consent-changes` (C9), key `profile_id`."""

    type: str = Field(description="The C9 event name, e.g. 'Subscribed to Email Marketing'.")
    change_id: str
    account_id: str
    profile_id: str
    profile: Profile
    channel: Literal["email", "sms", "push"]
    list_id: str | None = None
    scope: str | None = None
    method: str | None = None
    consented_at: datetime
    historical_import: bool = False
    evidence: str | None = Field(
        None, description="The operator's reference to written consent (C11), if any."
    )
    state: ConsentState
    occurred_at: datetime = Field(default_factory=utcnow)
    act_at: datetime | None = Field(
        None,
        description="The act's ordering time (X3: `consented_at` as claimed, clamped to "
        "1990 and to its receipt); suppression lifts compare it with `since` (S5).",
    )
    receipt_id: str | None = Field(
        None,
        description="C15, C17: the consent receipt this change rests on (the profile's "
        "receipt of the act that made it), so a read model can name it in its decisions.",
    )


class SuppressionChanged(Message):
    """A change of a profile's suppressions on `suppression-changes`, key `profile_id`."""

    type: Literal["suppressed", "unsuppressed"]
    change_id: str
    account_id: str
    profile_id: str
    profile: Profile
    channel: Literal["email", "sms"] = "email"
    reason: str
    list_id: str | None = None
    suppressions: list[dict[str, Any]] = Field(
        default_factory=list, description="Every suppression in force after the change."
    )
    occurred_at: datetime
    reported_at: datetime | None = Field(
        None,
        description="When the suppressing event happened (the command's `occurred_at`): "
        "the consent service orders a spam complaint by it (S3).",
    )


class AlertContent(Message):
    """The alert action as it stood in the flow version that ran it, so the dispatcher
    renders exactly what was saved even if a newer version arrives meanwhile."""

    recipients: list[str]
    from_email: str
    from_name: str | None = None
    reply_to: str | None = None
    subject: str
    body: str


class AlertRequested(Message):
    """The flow executor asks the dispatcher to send an internal alert (`alert-requests`),
    key `profile_id`."""

    type: Literal["alert_requested"] = "alert_requested"
    alert_id: str
    account_id: str
    flow_id: str
    flow_version: int
    step_id: str
    profile_id: str
    profile: Profile
    event: dict[str, Any] = Field(default_factory=dict)
    trigger_type: Literal["metric", "list"] = "metric"
    action: AlertContent
    requested_at: datetime = Field(default_factory=utcnow)


class MessageRequested(Message):
    """A consent-checked email or SMS to the profile itself (`message-requests`)."""

    type: Literal["message_requested"] = "message_requested"
    request_id: str
    account_id: str
    flow_id: str
    step_id: str
    channel: Literal["email", "sms"]
    profile_id: str
    profile: Profile
    template_id: str | None = None
    run_id: str | None = Field(None, description="The flow run that reached the action.")
    flow_version: int | None = Field(None, description="The flow version that ran it.")
    subject: str | None = Field(None, description="Email subject as saved in the step.")
    body: str | None = Field(None, description="SMS text as saved in the step.")
    list_id: str | None = Field(None, description="Email: the list it is sent for.")
    purpose: Literal["marketing", "transactional"] | None = Field(
        None, description="SMS: marketing or transactional (C5)."
    )
    client_id: str | None = Field(None, description="Email: sent on behalf of (C10).")
    user_id: str | None = Field(None, description="Email: sent on behalf of (C10).")
    requested_at: datetime = Field(default_factory=utcnow)
    receipt_id: str | None = Field(
        None,
        description="C17: the consent receipt in force for the consent that let it go "
        "(email, the sender's scope or list; the SMS purpose's), as the executor's read "
        "model has it; null when none is known (e.g. never subscribed).",
    )
    suppressions: list[dict[str, Any]] = Field(
        default_factory=list,
        description="C17: the suppressions in force that counted for it (`channel`, "
        "`reason`, `list_id`, `since`); empty for a message that went.",
    )


class FlowActivity(Message):
    """What happened to a profile at a step (`flow-activity`)."""

    type: Literal["entered", "scheduled", "in_review", "executed", "skipped", "exited"]
    activity_id: str
    account_id: str
    flow_id: str
    step_id: str | None = None
    run_id: str
    profile_id: str
    reason: str | None = None
    due_at: datetime | None = None
    alert_id: str | None = Field(
        None,
        description="On `in_review`: the id a reviewer sends on `review-decisions`"
        " (the held action's id; for an internal alert also its `alert_id`).",
    )
    occurred_at: datetime = Field(default_factory=utcnow)
    receipt_id: str | None = Field(
        None,
        description="C17, on an email or SMS step executed or skipped after its consent "
        "check: the consent receipt in force for the consent that decided it (null when "
        "none is known, and on other activity).",
    )
    suppressions: list[dict[str, Any]] = Field(
        default_factory=list,
        description="C17, with `receipt_id`: the suppressions in force that blocked or "
        "counted for the step (`channel`, `reason`, `list_id`, `since`).",
    )


class AlertOutcome(Message):
    """The result of one alert (`alert-outcomes`), key `profile_id`."""

    type: Literal["sent", "skipped", "failed"]
    alert_id: str
    account_id: str
    flow_id: str
    step_id: str
    profile_id: str
    recipients: list[str] = Field(default_factory=list)
    failed_recipients: list[str] = Field(default_factory=list)
    reason: str | None = None
    occurred_at: datetime = Field(default_factory=utcnow)


class SmsOutbound(Message):
    """A reply to an inbound SMS keyword (`sms-outbound`, key phone number)."""

    type: Literal["sms_reply"] = "sms_reply"
    reply_id: str
    account_id: str
    phone_number: str
    body: str
    in_reply_to: str
    occurred_at: datetime = Field(default_factory=utcnow)


class DeadLetter(Message):
    """A message that could not be accepted (X1), on `<topic>.dlq`.

    `original` is the message's bytes, base64-encoded, exactly as received (the first
    256 KiB of a larger one, so that the letter itself always fits on the broker).
    """

    # No length limit here: a dead letter must be writable for any input, however large.
    model_config = ConfigDict(frozen=True, extra="ignore", str_max_length=None)

    schema_version: int = Field(
        2, description="2: no length limit on `original`; `original_size`, `original_truncated`."
    )
    type: Literal["dead_letter"] = "dead_letter"
    consumer: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: str | None = None
    original: str
    original_size: int = Field(0, description="Length of the original value in bytes.")
    original_truncated: bool = Field(
        False, description="True when only the first 256 KiB of the original are kept."
    )
    error: str
    occurred_at: datetime = Field(default_factory=utcnow)
