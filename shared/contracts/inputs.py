"""Payloads that event producers write to the input topics (SPEC "Input payloads")."""

from typing import Any, Literal

from pydantic import Field

from shared.contracts.base import Id, Message, PhoneNumber, Profile, Timestamp
from shared.contracts.flows import FlowDefinition

__all__ = [
    "ConsentCommand",
    "FlowDefinition",
    "ProfileEvent",
    "ReviewDecision",
    "Scope",
    "SmsInbound",
    "SuppressionCommand",
]

Channel = Literal["email", "sms", "push"]
Purpose = Literal["marketing", "transactional"]
ConsentMethod = Literal["form", "api", "import", "manual", "link", "keyword", "preference_center"]
SuppressionReason = Literal[
    "manual", "hard_bounce", "soft_bounce", "spam_complaint", "invalid_email", "delivered"
]


class ProfileEvent(Message):
    """Something a profile did (`profile-events`, key `profile_id`)."""

    event_id: Id
    account_id: Id
    metric: str = Field(min_length=1, max_length=200)
    profile: Profile
    properties: dict[str, Any] = Field(default_factory=dict)
    time: Timestamp
    historical_import: bool = False


class Scope(Message):
    """Who an opt-out applies to (C10): the whole account, one client, or one user."""

    level: Literal["group", "client", "user"] = "group"
    client_id: str | None = None
    user_id: str | None = None


class ConsentCommand(Message):
    """A request to change a profile's consent (`consent-commands`, key `profile_id`)."""

    command_id: Id
    account_id: Id
    profile: Profile
    action: Literal["subscribe", "unsubscribe", "resubscribe"]
    channel: Channel
    purpose: Purpose = "marketing"
    list_id: str | None = None
    method: ConsentMethod = "api"
    scope: Scope = Field(default_factory=Scope)
    evidence: str | None = Field(None, max_length=2000)
    consented_at: Timestamp
    historical_import: bool = False
    actor: str | None = Field(
        None,
        max_length=200,
        description="Who made the change (C2: an operator, a system); kept in the history.",
    )
    notice: str | None = Field(
        None,
        max_length=2000,
        description="C15: the notice the person saw (an id or URL with its version, e.g. "
        "'https://acme.example/privacy#v3' or 'signup-form-v7'); kept in the receipt as given.",
    )
    jurisdiction: str | None = Field(
        None,
        max_length=64,
        description="C15: the jurisdiction the consent was given under (e.g. 'EU', 'US-CA'); "
        "kept in the receipt.",
    )


class SuppressionCommand(Message):
    """A request to suppress or unsuppress a profile (`suppression-commands`).

    Delivery reports are part of this contract (S4): a mail provider reports each outcome
    of a send as a command: `suppress` with `hard_bounce` or `soft_bounce` for a bounce,
    and `reason: delivered` (either action) for a delivery, which resets the soft-bounce
    count (of `list_id`, or every count when no list is given) and suppresses nothing.
    Soft bounces are counted per list (`list_id`) and globally (no `list_id`).
    """

    command_id: Id
    account_id: Id
    profile: Profile
    action: Literal["suppress", "unsuppress"]
    reason: SuppressionReason = Field(
        description="Why: `manual`, `hard_bounce`, `soft_bounce`, `spam_complaint`, "
        "`invalid_email`, or `delivered` (a delivery report, S4)."
    )
    channel: Literal["email", "sms"] = Field("email", description="The suppressed channel.")
    list_id: str | None = Field(
        None, description="Suppress from this list only (S1); the list a bounce or delivery is for."
    )
    evidence: str | None = Field(None, max_length=2000)
    occurred_at: Timestamp = Field(
        description="When it happened (a spam complaint is ordered by it against consent, S3)."
    )
    actor: str | None = Field(None, max_length=200, description="Who made the change.")


class SmsInbound(Message):
    """A text message a profile sent us (`sms-inbound`, key phone number)."""

    message_id: Id
    account_id: Id
    phone_number: PhoneNumber = Field(min_length=3, description="The sender, stored in E.164.")
    body: str = Field(max_length=2000)
    received_at: Timestamp


class ReviewDecision(Message):
    """An operator's decision on an alert held in manual review (`review-decisions`)."""

    alert_id: Id
    decision: Literal["approve", "reject"]
    by: str = Field(min_length=1, max_length=320)
