"""Smart sending (F9): skip an `email` or `sms` step when any flow of the account sent
the profile a message on that channel within the step's `smart_sending_hours`. Pure.

What was sent is what the executor published on `message-requests`, per (account,
profile, channel), whatever the sending step's own setting; both SMS purposes are one
channel. The default is 16 hours for marketing steps (email, marketing SMS) and 0 (off)
for transactional SMS.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.contracts.flows import EmailStep, FlowDefinition, SmsStep

DEFAULT_HOURS = 16
SKIPPED_SMART_SENDING = "Skipped: smart sending"


def channel_of(step: EmailStep | SmsStep) -> str:
    """The channel smart sending counts on: `email` or `sms`."""
    return "email" if isinstance(step, EmailStep) else "sms"


def smart_sending_hours(step: EmailStep | SmsStep) -> int:
    """The step's window in hours (0: off)."""
    if step.smart_sending_hours is not None:
        return step.smart_sending_hours
    if isinstance(step, SmsStep) and step.purpose == "transactional":
        return 0
    return DEFAULT_HOURS


def skips(step: EmailStep | SmsStep, last_sent: datetime | None, now: datetime) -> bool:
    """Whether a message sent at `last_sent` on the step's channel skips it now: sent
    less than `smart_sending_hours` before `now` (exactly that long ago no longer counts)."""
    hours = smart_sending_hours(step)
    return hours > 0 and last_sent is not None and now - last_sent < timedelta(hours=hours)


def sending_channels(flow: FlowDefinition) -> list[str]:
    """The channels a run of `flow` may message the profile on (its email and SMS steps):
    the ones whose sends a walk of it must not race (F9)."""
    return sorted({channel_of(s) for s in flow.steps if isinstance(s, EmailStep | SmsStep)})
