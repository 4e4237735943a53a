"""Data-subject requests (P1–P3): what producers ask on `privacy-requests` and what each
service answers on `privacy-results`.

A request names the person by `profile_id`, or by `email` or `phone_number` (each service
resolves the address to the profiles it holds). Every service answers with its own part;
the consent service, which owns the profile's identity, collects the parts.
"""

from typing import Any, Literal

from pydantic import Field, model_validator

from shared.contracts.base import Id, Message, Timestamp, utcnow

PrivacyAction = Literal["export", "erase"]
PRIVACY_SERVICES = ("consent", "suppression", "flow_executor", "alert_dispatcher")


class PrivacyRequest(Message):
    """An export or erase request (`privacy-requests`, key `profile_id`, or the address
    when no profile id is known)."""

    request_id: Id = Field(description="The requester's id; a redelivery is ignored.")
    account_id: Id
    profile_id: Id | None = Field(None, description="The profile to act on.")
    email: str | None = Field(None, max_length=320, description="Or: every profile with it.")
    phone_number: str | None = Field(
        None, max_length=32, description="Or: every profile with this phone number."
    )
    action: PrivacyAction
    requested_at: Timestamp = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _names_someone(self) -> "PrivacyRequest":
        if not (self.profile_id or self.email or self.phone_number):
            raise ValueError("one of profile_id, email or phone_number is required")
        return self

    @property
    def key(self) -> str:
        """The Kafka key: the profile id, or the address it names."""
        return self.profile_id or self.email or self.phone_number or ""


class PrivacyResult(Message):
    """One service's part of a request (`privacy-results`, key `request_id`: an address
    named by the request never becomes a key the product writes)."""

    request_id: str
    account_id: str
    service: Literal["consent", "suppression", "flow_executor", "alert_dispatcher"]
    action: PrivacyAction
    profile_ids: list[str] = Field(description="The profiles the request resolved to here.")
    data: dict[str, Any] | None = Field(
        None, description="Export: everything this service holds about those profiles."
    )
    erased: dict[str, int] | None = Field(
        None, description="Erase: rows removed or anonymised, per table."
    )
    completed_at: Timestamp
