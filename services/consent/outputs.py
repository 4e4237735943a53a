"""The `consent-changes` payloads (C9) as the bytes the outbox publishes, written straight
from the documents `handlers.change_documents` builds.

Validating each change as a `ConsentChanged` model and dumping it again cost more than
deciding the act itself (a nested model per channel). The documents are made only of
values that were validated when they came in (the command's profile, the domain's
state), so they are written as JSON directly, in the shape the model would write: every
field of the model, the profile with only the fields of `Profile`, and the
`schema_version` of every nested message. `tests/unit/consent/test_change_payloads.py`
holds the two writings equal."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shared.contracts.base import SCHEMA_VERSION, Profile

PROFILE_FIELDS = tuple(Profile.model_fields)
_CHANNELS = ("email", "sms_marketing", "sms_transactional", "push")


def _iso(value: Any) -> str:
    """A datetime as pydantic writes it (RFC 3339, `Z` for UTC)."""
    if isinstance(value, datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    raise TypeError(f"not JSON: {type(value).__name__}")


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_iso).encode


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
    """One change document as the JSON bytes of its `ConsentChanged`."""
    return _encode(
        {
            "schema_version": SCHEMA_VERSION,
            **document,
            "profile": _profile(document["profile"]),
            "state": _state(document["state"]),
        }
    ).encode()
