"""What an alert's outcome is once each recipient's mail is done (A5, A9). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

NO_CONFIRMED = "Skipped: no confirmed recipients"
ALL_REFUSED = "Failed: every recipient's server refused the alert"

DeliveryStatus = Literal["pending", "sent", "failed", "skipped"]


@dataclass(frozen=True)
class Outcome:
    type: Literal["sent", "skipped", "failed"]
    recipients: list[str]
    failed_recipients: list[str]
    reason: str | None


def decide(deliveries: Mapping[str, str]) -> Outcome | None:
    """The outcome for deliveries by recipient email, or None while any is pending.

    `sent` when at least one recipient got it (with who did and whose server refused);
    `skipped` when nobody was confirmed at send time; `failed` when every confirmed
    recipient's server refused it permanently."""
    if not deliveries or any(s == "pending" for s in deliveries.values()):
        return None
    sent = sorted(e for e, s in deliveries.items() if s == "sent")
    failed = sorted(e for e, s in deliveries.items() if s == "failed")
    if sent:
        return Outcome("sent", sent, failed, None)
    if failed:
        return Outcome("failed", [], failed, ALL_REFUSED)
    return Outcome("skipped", [], [], NO_CONFIRMED)
