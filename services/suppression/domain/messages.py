"""What the suppression service's messages say, in the domain's terms and back: a
`suppression-commands` record as the `Command` the rules decide, and a decided outcome
as the `suppression-changes` messages it publishes (S6). Pure mapping, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from services.suppression.domain.rules import Command, Outcome
from shared.contracts import Profile, SuppressionChanged, SuppressionCommand


def command_of(command: SuppressionCommand) -> Command:
    """The command as the rules decide it (S1, S4, S5)."""
    return Command(
        command.action, command.reason, command.occurred_at, command.channel, command.list_id
    )


def change_messages(
    account_id: str,
    profile_id: str,
    profile: dict[str, Any],
    change_ids: Sequence[str],
    outcome: Outcome,
    now: datetime,
) -> list[SuppressionChanged]:
    """The `suppression-changes` messages of one decided command (S6): one per change,
    each with every suppression in force after it, and an id stable under redelivery."""
    in_force = [s.to_json() for s in outcome.state.suppressions]
    return [
        SuppressionChanged(
            type=change.type,  # type: ignore[arg-type]
            change_id=change_id,
            account_id=account_id,
            profile_id=profile_id,
            profile=Profile.model_validate(profile),
            channel=change.channel,  # type: ignore[arg-type]
            reason=change.reason,
            list_id=change.list_id,
            suppressions=in_force,
            occurred_at=now,
            reported_at=change.at,
        )
        for change_id, change in zip(change_ids, outcome.changes, strict=True)
    ]
