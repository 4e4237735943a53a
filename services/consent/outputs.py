"""The `consent-changes` payloads (C9) as the bytes the outbox publishes, written straight
from the documents `handlers.change_documents` builds.

Validating each change as a `ConsentChanged` model and dumping it again cost more than
deciding the act itself (a nested model per channel). The documents are made only of
values that were validated when they came in (the command's profile, the domain's
state), so they are written as JSON directly, in the shape the model would write: every
field of the model in its order, the profile with only the fields of `Profile`, and the
`schema_version` of every nested message, by the serialiser the model itself uses.
`tests/unit/consent/test_change_payloads.py` holds the two writings equal, byte for
byte."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic_core import to_json

from shared.contracts.base import SCHEMA_VERSION, Profile

PROFILE_FIELDS = tuple(Profile.model_fields)
_CHANNELS = ("email", "sms_marketing", "sms_transactional", "push")


def _profile(profile: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {f: profile.get(f) for f in PROFILE_FIELDS}
    out["properties"] = out["properties"] or {}
    return out


def _state(view: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    for key in _CHANNELS:
        out[key] = {"schema_version": SCHEMA_VERSION, **view[key]}
    out["lists"] = view["lists"]
    out["opt_outs"] = view["opt_outs"]
    return out


def change_payload(document: Mapping[str, Any]) -> bytes:
    """One change document as the JSON bytes of its `ConsentChanged`: written by
    pydantic's own serialiser (`pydantic_core.to_json`), which writes datetimes, numbers
    and strings as the model does, in the model's field order."""
    return to_json(
        {
            "schema_version": SCHEMA_VERSION,
            **document,
            "profile": _profile(document["profile"]),
            "state": _state(document["state"]),
        },
        inf_nan_mode="null",  # as the model writes a NaN or infinite property
    )
