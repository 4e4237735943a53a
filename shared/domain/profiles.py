"""The profile attributes a service keeps beside its state: what it knew, updated by what a
message carries. Pure; the consent and suppression services both keep one."""

from __future__ import annotations

from typing import Any


def merged_profile(
    profile: dict[str, Any], incoming: dict[str, Any] | None, profile_id: str
) -> dict[str, Any]:
    """`profile` updated with the attributes of `incoming` that carry a value: a message
    that leaves out (or empties) an attribute does not erase what was known."""
    merged = {**profile, "id": profile_id}
    for key, value in (incoming or {}).items():
        if value not in (None, {}, ""):
            merged[key] = value
    return merged
