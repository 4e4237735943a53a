"""In-memory stand-in for the suppression service's repository port
(`services/suppression/ports.py`), so its use cases run without PostgreSQL.
`tests/component/suppression/test_repository_contract.py` runs the same checks against
this fake and the PostgreSQL repository."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from services.suppression.domain.rules import Address, Suppression, SuppressionState, addresses
from services.suppression.ports import HistoryRow, Key, Stored


@dataclass
class InMemorySuppressionRepository:
    """`SuppressionRepository` on dictionaries; copies in and out, as a database would."""

    states: dict[Key, SuppressionState] = field(default_factory=dict)
    profiles: dict[Key, dict[str, Any]] = field(default_factory=dict)
    sources: dict[tuple[Key, tuple[str, str, str | None]], str | None] = field(default_factory=dict)
    history: list[HistoryRow] = field(default_factory=list)

    async def lock(self, keys: Iterable[Key]) -> dict[Key, Stored]:
        out = {}
        for key in sorted(Key(*k) for k in set(keys)):
            state = self.states.setdefault(key, SuppressionState())
            ordered = tuple(sorted(state.suppressions, key=lambda s: (s.since, s.reason)))
            out[key] = Stored(
                replace(state, suppressions=ordered, list_bounces=dict(state.list_bounces)),
                copy.deepcopy(self.profiles.setdefault(key, {})),
            )
        return out

    async def save(
        self,
        before: Mapping[Key, SuppressionState],
        after: Mapping[Key, Stored],
        sources: Mapping[Key, str],
    ) -> None:
        for key, stored in after.items():
            old = {s.key for s in before[key].suppressions}
            for s in stored.state.suppressions:
                if s.key not in old:
                    self.sources[(key, s.key)] = sources.get(key)
            self.states[key] = stored.state
            self.profiles[key] = copy.deepcopy(stored.profile)

    async def append_history(self, rows: Sequence[HistoryRow]) -> None:
        self.history += rows

    async def carriers(self, wanted: Iterable[Address]) -> dict[Address, set[Key]]:
        wanted = set(wanted)
        out: dict[Address, set[Key]] = {}
        for key, profile in self.profiles.items():
            for address in addresses(key.account_id, profile) & wanted:
                out.setdefault(address, set()).add(key)
        return out

    async def with_liftable(self, keys: Sequence[Key]) -> set[Key]:
        def liftable(s: Suppression) -> bool:
            return s.channel == "email" and (
                s.reason == "spam_complaint" or (s.reason == "manual" and s.list_id is None)
            )

        return {
            Key(*k)
            for k in keys
            if any(liftable(s) for s in self.states.get(Key(*k), SuppressionState()).suppressions)
        }
