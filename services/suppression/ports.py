"""The suppression service's unit of work as its use cases (`handlers.py`) see it, their
only port (`SuppressionWork`), with the records that cross it.

Repositories are split by concern: `profiles` (each profile's suppressions, counters and
attributes, and who carries which address, I1) and `history` (the append-only log of
changes). The outbox (`publish`, `dead_letter`) and the privacy store (`privacy`) are the
ones every service's work offers (`shared.ports`, `shared.privacy_requests`).

`adapters/unit_of_work.py` implements it on the batch's PostgreSQL transaction;
`tests/unit/suppression/fakes.py` implements it in memory, and one contract suite
(`tests/component/suppression/test_repository_contract.py`) runs the repositories of both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from services.suppression.domain.rules import Address, SuppressionState
from shared.ports import Outbox
from shared.privacy_requests import PrivacyStore


class Key(NamedTuple):
    """A profile of an account."""

    account_id: str
    profile_id: str


@dataclass
class Stored:
    """A profile's suppressions and counters, with its attributes, as locked."""

    state: SuppressionState
    profile: dict[str, Any]


@dataclass(frozen=True)
class HistoryRow:
    """One change of a profile's suppressions, with the command or event behind it."""

    account_id: str
    profile_id: str
    change: str
    channel: str
    reason: str
    list_id: str | None
    source: str


class SuppressionProfiles(Protocol):
    """Each profile's suppressions, counters and attributes, within one transaction."""

    async def lock(self, keys: Iterable[Key]) -> dict[Key, Stored]:
        """Every profile of `keys` (created empty when missing), locked until commit."""

    async def save(
        self,
        before: Mapping[Key, SuppressionState],
        after: Mapping[Key, Stored],
        sources: Mapping[Key, str],
    ) -> None:
        """Write what changed from `before` to `after`; an added suppression records the
        source (command or change id) that added it."""

    async def carriers(self, wanted: Iterable[Address]) -> dict[Address, set[Key]]:
        """The profiles this service knows that carry each address (I1), whatever
        spelling they were stored under; an address nobody carries is absent."""

    async def with_liftable(self, keys: Sequence[Key]) -> set[Key]:
        """The profiles among `keys` holding an email suppression a consent event may
        lift (S5: spam complaints, global or of a list; C9: the global manual one)."""


class SuppressionHistory(Protocol):
    """The log of every change of a profile's suppressions (append only)."""

    async def append(self, rows: Sequence[HistoryRow]) -> None:
        """Append to the change history, in order."""


class SuppressionWork(Outbox, Protocol):
    """One batch's unit of work: what it reads and writes commits together with what it
    publishes and dead-letters (X2). `soft_bounce_limit` is the service's setting (S4),
    bound in by `bootstrap`."""

    profiles: SuppressionProfiles
    history: SuppressionHistory
    privacy: PrivacyStore
    soft_bounce_limit: int
