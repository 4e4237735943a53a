"""The suppression service's use cases, each `async def on_<input>(batch, work)` over its
one port, the unit of work of `ports.py`: apply suppression commands (S1, S4, S5), learn
from consent changes (S5, C11), publishing the full list in force on every change (S6),
and answer privacy requests (P1–P3). What the messages say is mapped to and from the
domain in `domain/messages.py`."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from services.suppression.domain.messages import change_messages, command_of
from services.suppression.domain.rules import (
    LIFTING_EVENTS,
    Outcome,
    SuppressionState,
    addresses,
    decide,
    for_carrier,
    inherit,
    on_consent_change,
)
from services.suppression.ports import HistoryRow, Key, Stored, SuppressionWork
from shared.contracts import ConsentChanged, PrivacyRequest, SuppressionCommand, topics, utcnow
from shared.domain.identity import derived_id
from shared.domain.profiles import merged_profile
from shared.privacy_requests import handle
from shared.received import Received

# The consumers (consumer groups and inboxes) the use cases run in; a rejected command is
# dead-lettered in its consumer's name.
COMMANDS = f"suppression.{topics.SUPPRESSION_COMMANDS}"
CONSENT = f"suppression.{topics.CONSENT_CHANGES}"
PRIVACY = f"suppression.{topics.PRIVACY_REQUESTS}"


class _Locked:
    """One batch's profiles, locked, and what happens to them: states and attributes
    changed in order, `suppression-changes` published per change, all written at the end
    on the batch's transaction."""

    def __init__(self, work: SuppressionWork) -> None:
        self.work = work
        self.stored: dict[Key, Stored] = {}
        self.before: dict[Key, SuppressionState] = {}
        self.touched: set[Key] = set()
        self.sources: dict[Key, str] = {}
        self.history: list[HistoryRow] = []
        self.now = utcnow()

    async def lock(self, keys: Iterable[Key]) -> None:
        missing = set(keys) - set(self.stored)
        if missing:
            more = await self.work.profiles.lock(missing)
            self.stored.update(more)
            self.before.update({k: v.state for k, v in more.items()})

    def merge_profile(self, key: Key, attrs: dict[str, Any] | None) -> None:
        row = self.stored[key]
        row.profile = merged_profile(row.profile, attrs, key.profile_id)
        self.touched.add(key)

    def apply(self, key: Key, source: str, outcome: Outcome, *cause: str) -> None:
        """Take `outcome` as `key`'s new state and publish its changes, each with an id
        unique per account, source, profile and cause (X2)."""
        row = self.stored[key]
        row.state = outcome.state
        self.touched.add(key)
        if not outcome.changes:
            return
        self.sources[key] = source
        self.history += [
            HistoryRow(*key, c.type, c.channel, c.reason, c.list_id, source)
            for c in outcome.changes
        ]
        ids = [
            derived_id(key.account_id, source, key.profile_id, *cause, str(n))
            for n in range(len(outcome.changes))
        ]
        for message in change_messages(*key, row.profile, ids, outcome, self.now):
            self.work.publish(topics.SUPPRESSION_CHANGES, key.profile_id, message)

    async def save(self) -> None:
        await self.work.profiles.save(
            self.before, {k: self.stored[k] for k in sorted(self.touched)}, self.sources
        )
        await self.work.history.append(self.history)


async def on_commands(batch: list[Received[SuppressionCommand]], work: SuppressionWork) -> None:
    """`suppression-commands`: S1, S4, S5; a rule violation is dead-lettered with its
    reason. I1: the command's address (its email, or for an SMS suppression its number)
    names the person, so what it adds or lifts reaches every profile known to carry that
    address, and a profile that newly carries an address takes on its suppressions."""
    if not batch:
        return
    pending = _Locked(work)
    cmds = [i.message for i in batch]
    keys = [Key(c.account_id, c.profile.id) for c in cmds]
    attrs = [c.profile.model_dump(exclude={"properties"}) for c in cmds]
    await pending.lock(keys)
    # Who carries the addresses these profiles will carry: known profiles, then each
    # profile of the batch as its command gives its address.
    wanted = {
        a
        for key, a_ in zip(keys, attrs, strict=True)
        for a in addresses(
            key.account_id, merged_profile(pending.stored[key].profile, a_, key.profile_id)
        )
    }
    carriers = await work.profiles.carriers(wanted)
    await pending.lock(k for ks in carriers.values() for k in ks)
    for key, row in pending.stored.items():
        for a in addresses(key.account_id, row.profile):
            carriers.setdefault(a, set()).add(key)
    limit = work.soft_bounce_limit
    for item, key, a_ in zip(batch, keys, attrs, strict=True):
        c = item.message
        row = pending.stored[key]
        had = addresses(key.account_id, row.profile)
        pending.merge_profile(key, a_)
        has = addresses(key.account_id, row.profile)
        for gone in had - has:
            carriers.get(gone, set()).discard(key)
        for new in has - had:
            carried = [
                s
                for other in sorted(carriers.setdefault(new, set()) - {key})
                for s in pending.stored[other].state.suppressions
                if s.channel == new.channel
            ]
            carriers[new].add(key)
            pending.apply(key, c.command_id, inherit(row.state, carried), "inherited")
        cmd = command_of(c)
        own = decide(row.state, cmd, limit)
        if own.rejection is not None:
            work.dead_letter(COMMANDS, item.record, own.rejection)
            continue
        pending.apply(key, c.command_id, own)
        address = next((a for a in has if a.channel == c.channel), None)
        for other in sorted(carriers.get(address, set()) - {key}) if address else ():
            state = pending.stored[other].state
            pending.apply(other, c.command_id, for_carrier(state, cmd, own, limit))
    await pending.save()


async def on_consent_changes(batch: list[Received[ConsentChanged]], work: SuppressionWork) -> None:
    """S5/C11: a re-subscribe with evidence lifts a spam complaint (global or of a list);
    a subscribe lifts an earlier manual suppression (C9). Only for the profile it is
    about: a subscribe of one profile never subscribes another (I1)."""
    events = [
        i.message
        for i in batch
        if i.message.type in LIFTING_EVENTS and not i.message.historical_import
    ]
    if not events:
        return
    keys = [Key(e.account_id, e.profile_id) for e in events]
    liftable = await work.profiles.with_liftable(keys)
    events = [e for e in events if (e.account_id, e.profile_id) in liftable]
    if not events:
        return
    pending = _Locked(work)
    await pending.lock(Key(e.account_id, e.profile_id) for e in events)
    for e in events:
        key = Key(e.account_id, e.profile_id)
        at: datetime = e.act_at or e.occurred_at
        outcome = on_consent_change(
            pending.stored[key].state,
            e.type,
            e.evidence,
            e.historical_import,
            at,
            e.scope,
            e.list_id,
        )
        pending.merge_profile(key, e.profile.model_dump(exclude={"properties"}))
        pending.apply(key, e.change_id, outcome)
    await pending.save()


async def on_privacy_requests(batch: list[Received[PrivacyRequest]], work: SuppressionWork) -> None:
    """P1–P3: export or erase what this service holds about the person (its profiles'
    attributes; suppressions and their history name no address and are kept)."""
    await handle(batch, work)
