"""What the suppression use cases (`handlers.py`) need from the outside world, as
`typing.Protocol` ports, and the records that cross them.

`adapters/repository.py` implements `SuppressionRepository` on PostgreSQL inside a unit
of work; `tests/unit/suppression/fakes.py` implements it in memory, and one contract
suite (`tests/component/suppression/test_repository_contract.py`) runs against both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from services.suppression.domain.rules import Address, SuppressionState
from shared.contracts import Message


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


class SuppressionRepository(Protocol):
    """The suppression service's stored state, within one transaction."""

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

    async def append_history(self, rows: Sequence[HistoryRow]) -> None:
        """Append to the change history, in order."""

    async def carriers(self, wanted: Iterable[Address]) -> dict[Address, set[Key]]:
        """The profiles this service knows that carry each address (I1), whatever
        spelling they were stored under; an address nobody carries is absent."""

    async def with_liftable(self, keys: Sequence[Key]) -> set[Key]:
        """The profiles among `keys` holding an email suppression a consent event may
        lift (S5: spam complaints, global or of a list; C9: the global manual one)."""


class Publisher(Protocol):
    """The unit of work's outbox: messages published when the transaction commits."""

    def publish(self, topic: str, key: str | None, message: Message | bytes | None) -> None:
        """Publish `message` once the transaction commits."""
