"""The suppression service's use cases, over the ports in `ports.py`: apply suppression
commands (S1, S4, S5) and learn from consent changes (S5, C11), publishing the full list
in force on every change (S6)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from services.suppression.domain.rules import (
    LIFTING_EVENTS,
    Command,
    Outcome,
    SuppressionState,
    decide,
    on_consent_change,
)
from services.suppression.ports import HistoryRow, Key, Publisher, SuppressionRepository
from shared.contracts import (
    ConsentChanged,
    PrivacyRequest,
    Profile,
    SuppressionChanged,
    SuppressionCommand,
    topics,
    utcnow,
)
from shared.db.uow import UnitOfWork
from shared.domain.profiles import merged_profile
from shared.kafka import Received, dead_letter
from shared.privacy_requests import PrivacyStore, handle
from shared.settings import Settings

COMMANDS = f"suppression.{topics.SUPPRESSION_COMMANDS}"
CONSENT = f"suppression.{topics.CONSENT_CHANGES}"
PRIVACY = f"suppression.{topics.PRIVACY_REQUESTS}"


async def _apply(
    repo: SuppressionRepository,
    outbox: Publisher,
    entries: Sequence[tuple[str, str, str, dict[str, Any] | None]],
    step: Callable[[SuppressionState, int], Outcome],
) -> list[Outcome]:
    """Apply `step(state, index)` to each (account, profile, source id, profile attrs) in
    order on one transaction; publish a `suppression-changes` message per change."""
    if not entries:
        return []
    stored = await repo.lock(Key(a, p) for a, p, _, _ in entries)
    before = {k: v.state for k, v in stored.items()}
    now = utcnow()
    outcomes, history, sources = [], [], {}
    touched = set()
    for index, (account, profile_id, source, attrs) in enumerate(entries):
        key = Key(account, profile_id)
        row = stored[key]
        outcome = step(row.state, index)
        outcomes.append(outcome)
        if outcome.rejection is not None:
            continue
        row.state = outcome.state
        row.profile = merged_profile(row.profile, attrs, profile_id)
        touched.add(key)
        sources[key] = source
        history += [
            HistoryRow(account, profile_id, c.type, c.channel, c.reason, c.list_id, source)
            for c in outcome.changes
        ]
        for message in change_messages(account, profile_id, row.profile, source, outcome, now):
            outbox.publish(topics.SUPPRESSION_CHANGES, profile_id, message)
    await repo.save(before, {k: stored[k] for k in touched}, sources)
    await repo.append_history(history)
    return outcomes


def change_messages(
    account_id: str,
    profile_id: str,
    profile: dict[str, Any],
    source: str,
    outcome: Outcome,
    now: datetime,
) -> list[SuppressionChanged]:
    """The `suppression-changes` messages of one decided command (S6): one per change,
    each with every suppression in force after it, and an id stable under redelivery."""
    in_force = [s.to_json() for s in outcome.state.suppressions]
    return [
        SuppressionChanged(
            type=change.type,  # type: ignore[arg-type]
            change_id=f"{account_id}:{source}:{n}",
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
        for n, change in enumerate(outcome.changes)
    ]


async def on_commands(
    repo: SuppressionRepository,
    outbox: Publisher,
    items: list[Received[SuppressionCommand]],
    settings: Settings,
) -> None:
    """`suppression-commands`: S1, S4, S5; a rule violation is dead-lettered with its reason."""
    cmds = [i.message for i in items]

    def step(state: SuppressionState, index: int) -> Outcome:
        c = cmds[index]
        return decide(
            state,
            Command(c.action, c.reason, c.occurred_at, c.channel, c.list_id),
            settings.soft_bounce_limit,
        )

    outcomes = await _apply(
        repo,
        outbox,
        [
            (c.account_id, c.profile.id, c.command_id, c.profile.model_dump(exclude={"properties"}))
            for c in cmds
        ],
        step,
    )
    for item, outcome in zip(items, outcomes, strict=True):
        if outcome.rejection is not None:
            dead_letter(outbox, COMMANDS, item.record, outcome.rejection)  # type: ignore[arg-type]


async def on_consent_changes(
    repo: SuppressionRepository, outbox: Publisher, items: list[Received[ConsentChanged]]
) -> None:
    """S5/C11: a re-subscribe with evidence lifts a spam complaint (global or of a list);
    a subscribe lifts an earlier manual suppression (C9)."""
    events = [
        i.message
        for i in items
        if i.message.type in LIFTING_EVENTS and not i.message.historical_import
    ]
    if not events:
        return
    liftable = await repo.with_liftable([Key(e.account_id, e.profile_id) for e in events])
    events = [e for e in events if (e.account_id, e.profile_id) in liftable]

    def step(state: SuppressionState, index: int) -> Outcome:
        e = events[index]
        at: datetime = e.act_at or e.occurred_at
        return on_consent_change(
            state, e.type, e.evidence, e.historical_import, at, e.scope, e.list_id
        )

    await _apply(
        repo,
        outbox,
        [
            (e.account_id, e.profile_id, e.change_id, e.profile.model_dump(exclude={"properties"}))
            for e in events
        ],
        step,
    )


async def on_privacy_requests(
    uow: UnitOfWork, store: PrivacyStore, items: list[Received[PrivacyRequest]]
) -> None:
    """P1–P3: export or erase what this service holds about the person."""
    await handle(uow, items, store)
