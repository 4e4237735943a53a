"""The consent receipt (C15, C16): what the consent service records for every applied
consent act of a profile, after ISO/IEC TS 27560 (consent record information structure)
and the Kantara consent receipt. Published as a JSON Schema with the contracts
(`deploy/contracts/schemas/ConsentReceipt.schema.json`); served over HTTP, by the CLI
and in the privacy export. Not a topic payload.

A receipt commits to keyed hashes (HMAC-SHA256 under `PRIVACY_HASH_SECRET`) of the
personal values it is about (the profile's email and phone number, the evidence), never
to the values, so erasing those (P2) leaves every receipt and the profile's hash chain
intact (C16).
"""

from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.contracts.base import Message

RECEIPT_VERSION = "1"


class ReceiptController(Message):
    """ISO/IEC TS 27560 `controller`: who decides on the processing (the account)."""

    id: str = Field(description="The account id.")
    name: str = Field(description="The account's display name (the id when it has none).")


class ReceiptSubject(Message):
    """ISO/IEC TS 27560 `data subject`: the profile, its identifiers as keyed hashes."""

    profile_id: str
    email_hash: str | None = Field(
        None, description="HMAC-SHA256 of the email address in its I1 normal form, hex."
    )
    phone_hash: str | None = Field(
        None, description="HMAC-SHA256 of the phone number in E.164, hex."
    )


class ReceiptPurpose(Message):
    """One consent the act decided: a slot of the profile's consent and its new status."""

    slot: str = Field(
        description="'email', 'sms_marketing', 'sms_transactional', 'push', 'list:<id>' or "
        "'scope:client:<id>' / 'scope:user:<client>/<user>' (C10)."
    )
    channel: Literal["email", "sms", "push"]
    purpose: Literal["marketing", "transactional"]
    list_id: str | None = None
    scope: str = Field("group", description="'group', 'client:<id>' or 'user:<c>/<u>'.")
    status: Literal["subscribed", "unsubscribed", "never_subscribed"]


class ConsentReceipt(Message):
    """A consent receipt: one applied consent act of one profile (C15), a link of the
    profile's SHA-256 hash chain (C16). `hash` is SHA-256 (hex) of the RFC 8785
    canonical JSON of every other field; `previous_hash` is the `hash` of the profile's
    receipt before it (null for the first)."""

    version: str = Field(RECEIPT_VERSION, description="The receipt format's version.")
    receipt_id: str
    sequence: int = Field(ge=1, description="The receipt's place in the profile's chain.")
    previous_hash: str | None = Field(None, description="The previous receipt's `hash`.")
    controller: ReceiptController
    subject: ReceiptSubject
    jurisdiction: str | None = Field(None, description="As the act gave it (e.g. 'EU').")
    notice: str | None = Field(
        None, description="The notice the person saw (id or URL with version), as given."
    )
    channel: Literal["email", "sms", "push"]
    purposes: list[ReceiptPurpose] = Field(min_length=1)
    status: Literal["subscribed", "unsubscribed", "never_subscribed"] = Field(
        description="The status of the first purpose: what the act made of its consent."
    )
    action: Literal["subscribe", "unsubscribe", "resubscribe"]
    method: str | None = Field(None, description="How consent was collected (C2).")
    act_id: str = Field(description="The source act: the command id, link or keyword id.")
    actor: str | None = Field(None, description="By whom (C2).")
    evidence_hash: str | None = Field(
        None, description="HMAC-SHA256 of the evidence reference (C11), hex."
    )
    historical_import: bool = False
    collected_at: datetime = Field(description="The act's effective time (X3).")
    claimed_at: datetime | None = Field(
        None, description="The future time the act claimed before it was clamped (X3)."
    )
    recorded_at: datetime = Field(description="When the consent service applied the act.")
    hash: str = Field(description="SHA-256 (hex) of the receipt's canonical form (RFC 8785).")
