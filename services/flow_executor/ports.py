"""What the flow executor's use cases need from the outside, as `typing.Protocol`s:
`FlowWork`, the unit of work that is their only port, with its repositories split by
concern (flows, runs, reviews, profiles, sending, erasures), the outbox and the privacy
store.

`adapters.unit_of_work.FlowUnitOfWork` is the real one (one
`adapters.repository.PostgresFlowRepository` on the batch's transaction serves every
concern); the unit tests use an in-memory repository that one contract suite
(tests/component/flow_executor/test_repository_contract.py) holds to the same behaviour.
Everything crossing these ports is a domain object or one of the small records below
(and `domain.records`); no database rows, no positional tuples.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from services.flow_executor.domain.erasure import ErasureHold, Family
from services.flow_executor.domain.planning import RunEnd, Sent, StepExecution, Timer
from services.flow_executor.domain.records import HeldReview, Observed
from services.flow_executor.domain.runs import DueTimer, ProfileKey, ProfileState, Run, StepKey
from services.flow_executor.domain.sending_window import SendingSettings
from shared.contracts import FlowDefinition
from shared.ports import Outbox
from shared.privacy_requests import PrivacyStore

__all__ = [
    "Erasures",
    "FlowDefinitions",
    "FlowDeletion",
    "FlowRepository",
    "FlowWork",
    "HeldReview",
    "Observed",
    "Profiles",
    "Resubscribed",
    "ReviewRef",
    "Reviews",
    "RunRef",
    "Runs",
    "Sending",
    "SubjectQuery",
]


@dataclass(frozen=True)
class RunRef:
    """A run that a flow's deletion ended."""

    run_id: uuid.UUID
    profile_id: str


@dataclass(frozen=True)
class ReviewRef:
    """A held action that a flow's deletion cancelled."""

    alert_id: str
    run_id: uuid.UUID
    step_id: str
    profile_id: str


@dataclass(frozen=True)
class FlowDeletion:
    """What deleting a flow ended: its active runs and its held reviews."""

    exited: list[RunRef] = field(default_factory=list)
    cancelled: list[ReviewRef] = field(default_factory=list)


@dataclass(frozen=True)
class SubjectQuery:
    """A profile and its subjects as it is now (`domain.erasure.person_subjects`)."""

    account_id: str
    profile_id: str
    subjects: tuple[str, ...]


@dataclass(frozen=True)
class Resubscribed:
    """A consent change that subscribed a profile to a channel family, arrived at `at`."""

    account_id: str
    profile_id: str
    family: Family
    at: datetime


class FlowDefinitions(Protocol):
    """The flows in force per account, their rejected versions and deletions (F1)."""

    async def save_flow(self, flow: FlowDefinition) -> bool:
        """Store `flow` if newer than the stored version or the stored one is deleted."""

    async def reject_flow(self, flow: FlowDefinition, errors: list[str]) -> None:
        """Record why a version was rejected (F1, shown by the activity API)."""

    async def delete_flow(self, account_id: str, flow_id: str) -> FlowDeletion:
        """Mark deleted; cancel its delays, end its active runs, cancel held reviews."""

    async def live_flows(self, accounts: Iterable[str]) -> dict[str, list[FlowDefinition]]:
        """The flows in force (not deleted) per account."""

    async def flows_by_key(
        self, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], FlowDefinition]:
        """The versions in force of the given (account, flow) pairs."""


class Runs(Protocol):
    """Runs and what they did: steps taken, delays waiting (F2-F4). Batch methods
    take a whole batch: one statement each."""

    async def insert_runs(
        self, runs: Sequence[Run], ended: Mapping[uuid.UUID, str] | None = None
    ) -> set[uuid.UUID]:
        """Insert runs, with their trace; the ids that are new (F2). A run `ended` names
        is stored with that status (`completed` or `exited`: its first walk ended it),
        any other as `active`."""

    async def record_executions(self, rows: Sequence[StepExecution]) -> set[StepKey]:
        """Insert step outcomes; the (run, step) keys that are new (F4)."""

    async def add_timers(self, rows: Sequence[Timer]) -> set[StepKey]:
        """Store delays and quiet-hours holds; the (run, step) keys that are new. A fired
        timer under the same key is armed again (a held step held again at its release,
        F8): the walk that asks for it is the one its firing started."""

    async def finish_runs(self, rows: Sequence[RunEnd]) -> None:
        """End runs that are still active."""

    async def claim_due_timers(self, limit: int, replica: str) -> list[DueTimer]:
        """Mark fired, for `replica`, up to `limit` due delays no one else holds (each
        with its run's trace)."""

    async def fail_next_due_timer(self, replica: str, reason: str) -> bool:
        """Set aside the earliest due delay, whose walk raised every time: marked fired
        with outcome `failed: <reason>` so that the scheduler moves past it (F3). False
        if none is due."""


class Reviews(Protocol):
    """Actions held in manual review (F5)."""

    async def add_reviews(self, rows: Sequence[HeldReview]) -> None:
        """Hold actions for review (an alert id held already stays as it is)."""

    async def decide_review(self, alert_id: str, status: str, by: str) -> HeldReview | None:
        """Move a held action out of review (returned with its run's trace); None if
        unknown or decided already."""

    async def set_execution(
        self, run_id: uuid.UUID, step_id: str, outcome: str, reason: str | None
    ) -> None:
        """Change a step's recorded outcome (a held action decided)."""


class Profiles(Protocol):
    """The read model of each profile: its newest data, consent, receipts and
    suppressions (F3, F7, C17)."""

    async def upsert_profiles(self, rows: Sequence[Observed]) -> None:
        """Merge the newest profile data; custom properties merge key by key."""

    async def walk_state(self, keys: Iterable[ProfileKey]) -> dict[ProfileKey, ProfileState]:
        """The read model of each profile named (unknown ones included, empty), with when
        a message last went to it per channel (F9)."""

    async def save_consent(self, rows: Sequence[Observed]) -> None:
        """Keep the newest consent state per profile."""

    async def save_receipts(self, rows: Sequence[Observed]) -> None:
        """C17: keep, per profile and consent slot, the receipt of the newest change
        (`value`: `{slot: receipt_id or None}`, as of `at`)."""

    async def save_suppressions(self, rows: Sequence[Observed]) -> None:
        """Keep the newest suppressions in force per profile."""


class Sending(Protocol):
    """F8, F9: the accounts' sending settings and what was sent to whom."""

    async def sending_settings(self, accounts: Iterable[str]) -> dict[str, SendingSettings]:
        """The sending settings of the accounts that saved any (others: the default)."""

    async def save_sending_settings(self, account_id: str, settings: SendingSettings) -> None:
        """Replace an account's sending settings."""

    async def lock_sending(self, keys: Iterable[tuple[str, str, str]]) -> None:
        """F9: serialise, until the transaction ends, every batch that may send to one
        (account, profile, channel), so that what one sends is seen by the next one's
        `walk_state`. Take it before reading what was sent."""

    async def note_sent(self, rows: Sequence[Sent]) -> None:
        """Keep the newest message sent per (account, profile, channel) (F9)."""


class Erasures(Protocol):
    """P2: erased subjects, and the subscribes that lift their hold per channel."""

    async def hold_erased(self, account_id: str, subjects: Sequence[str], at: datetime) -> None:
        """Remember erased subjects (a later erase of one moves its time to `at`)."""

    async def erasure_holds(self, queries: Sequence[SubjectQuery]) -> dict[ProfileKey, ErasureHold]:
        """For each profile whose subjects match an erase: the newest matching erase and
        the profile's resubscriptions. Profiles that match nothing are absent."""

    async def note_resubscribed(self, rows: Sequence[Resubscribed]) -> None:
        """Keep the newest arrival of a subscribe per profile and channel family."""


class FlowRepository(FlowDefinitions, Runs, Reviews, Profiles, Sending, Erasures, Protocol):
    """Every concern at once: what one repository on a transaction serves (the
    PostgreSQL one, and the in-memory one of the unit tests), held to the same
    behaviour by one contract suite."""


class FlowWork(Outbox, Protocol):
    """One batch's transaction as the executor's use cases see it: its repositories,
    its outbox (`publish`, `dead_letter`: messages go out only if it commits, X2) and
    the privacy store the shared privacy use case answers through (P1). The caller
    commits. `secret` keys the hashes of addresses (`PRIVACY_HASH_SECRET`, P2); without
    it an erase holds by profile id only."""

    @property
    def flows(self) -> FlowDefinitions: ...

    @property
    def runs(self) -> Runs: ...

    @property
    def reviews(self) -> Reviews: ...

    @property
    def profiles(self) -> Profiles: ...

    @property
    def sending(self) -> Sending: ...

    @property
    def erasures(self) -> Erasures: ...

    @property
    def privacy(self) -> PrivacyStore: ...

    @property
    def secret(self) -> str | None: ...
