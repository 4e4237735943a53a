"""Base classes for every payload on Kafka.

Inputs ignore unknown fields (producers may send more than we read) but reject wrong
types and missing required fields, which sends the message to the dead-letter topic (X1).
Every message carries `schema_version`, raised when a field is removed or retyped.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)
from pydantic_core import to_json

from shared.addresses import checked_email, e164_phone

SCHEMA_VERSION = 1


def json_bytes(value: object) -> bytes:
    """`value` as JSON the way a model writes its own, with NaN and infinities as null:
    JSON has no such numbers and PostgreSQL refuses them, yet producers written in
    Python send them (its json module writes `NaN`). Every JSON the services write
    from plain values (JSON columns, payloads written without a model) goes through
    here, so they all keep one policy."""
    return to_json(value, inf_nan_mode="null")


Id = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Timestamp = AwareDatetime


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


# Checked where they enter (issue: one bad address must not reach a mail worker): an
# address by email-validator, a phone number by phonenumbers, stored in E.164. An empty
# string means "none given", as many producers send it.
EmailAddress = Annotated[str, Field(max_length=320), AfterValidator(checked_email)]
PhoneNumber = Annotated[str, Field(max_length=32), AfterValidator(e164_phone)]
OptionalEmail = Annotated[EmailAddress | None, BeforeValidator(_blank_is_none)]
OptionalPhone = Annotated[PhoneNumber | None, BeforeValidator(_blank_is_none)]


def utcnow() -> datetime:
    """The current instant, timezone-aware (every timestamp on the wire carries its zone)."""
    return datetime.now(UTC)


class Message(BaseModel):
    """A payload on a topic. Frozen: a message is a fact, not a mutable object."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_max_length=100_000)

    schema_version: int = Field(SCHEMA_VERSION, description="Version of this payload's schema.")

    def to_bytes(self) -> bytes:
        """The JSON bytes published on Kafka."""
        return self.model_dump_json(exclude_none=False).encode()


class Profile(BaseModel):
    """The person a message is about, as event producers describe them."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: Id = Field(description="The profile's id in the account (the Kafka key).")
    email: OptionalEmail = Field(None, description="Checked by email-validator.")
    phone_number: OptionalPhone = Field(
        None, description="International form; stored in E.164 (`+15555550100`)."
    )
    first_name: str | None = Field(None, max_length=200)
    last_name: str | None = Field(None, max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict)
