"""In-memory stand-ins for the suppression service's unit of work
(`services/suppression/ports.py: SuppressionWork`), so its use cases run without
PostgreSQL or Kafka. `tests/component/suppression/test_repository_contract.py` runs the
same checks against these repositories and the PostgreSQL ones.

`bootstrap` binds them the way `services/suppression/bootstrap.py` binds the real
adapters: a work factory, settings bound in."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from aiokafka import ConsumerRecord

from services.suppression.domain.rules import Address, Suppression, SuppressionState, addresses
from services.suppression.ports import HistoryRow, Key, Stored
from shared.contracts import PrivacyRequest, topics
from shared.contracts.outputs import DeadLetter
from shared.settings import Settings


@dataclass
class InMemorySuppressionProfiles:
    """`SuppressionProfiles` on dictionaries; copies in and out, as a database would."""

    states: dict[Key, SuppressionState] = field(default_factory=dict)
    profiles: dict[Key, dict[str, Any]] = field(default_factory=dict)
    sources: dict[tuple[Key, tuple[str, str, str | None]], str | None] = field(default_factory=dict)

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


@dataclass
class InMemorySuppressionHistory:
    """`SuppressionHistory` as a list."""

    rows: list[HistoryRow] = field(default_factory=list)

    async def append(self, rows: Sequence[HistoryRow]) -> None:
        self.rows += rows


@dataclass
class InMemorySuppressionPrivacy:
    """`shared.privacy_requests.PrivacyStore` over the fake profiles: a person is found
    by profile id or by any spelling of an address (I1); erase blanks the attributes and
    keeps the suppressions, as the SQL does."""

    profiles: InMemorySuppressionProfiles
    service: str = "suppression"

    async def resolve(self, request: PrivacyRequest) -> list[str]:
        named = {"email": request.email, "phone_number": request.phone_number}
        wanted = addresses(request.account_id, named)
        found = await self.profiles.carriers(wanted)
        ids = {k.profile_id for keys in found.values() for k in keys}
        return sorted(ids | ({request.profile_id} if request.profile_id else set()))

    async def export(self, account_id: str, profile_ids: list[str]) -> dict[str, Any]:
        keys = [
            Key(account_id, p) for p in profile_ids if Key(account_id, p) in self.profiles.profiles
        ]
        return {
            "profiles": [self.profiles.profiles[k] for k in keys],
            "suppressions": [
                {"profile_id": k.profile_id, "channel": s.channel, "reason": s.reason}
                for k in keys
                for s in self.profiles.states.get(k, SuppressionState()).suppressions
            ],
        }

    async def erase(self, request: PrivacyRequest, profile_ids: list[str]) -> dict[str, int]:
        keys = [Key(request.account_id, p) for p in profile_ids]
        erased = [k for k in keys if k in self.profiles.profiles]
        for key in erased:
            self.profiles.profiles[key] = {"id": key.profile_id}
        return {"suppression_profiles": len(erased)}

    async def drop_unpublished(self, request: PrivacyRequest, profile_ids: list[str]) -> int:
        return 0


@dataclass
class FakeSuppressionWork:
    """`SuppressionWork` in memory: the repositories above, and an outbox that keeps what
    was published (dead letters too, on `<topic>.dlq`) in order."""

    profiles: InMemorySuppressionProfiles = field(default_factory=InMemorySuppressionProfiles)
    history: InMemorySuppressionHistory = field(default_factory=InMemorySuppressionHistory)
    soft_bounce_limit: int = Settings().soft_bounce_limit
    published: list[tuple[str, str | None, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.privacy = InMemorySuppressionPrivacy(self.profiles)

    def publish(self, topic: str, key: str | None, message: Any, headers: Any = None) -> None:
        self.published.append((topic, key, message))

    def dead_letter(self, consumer: str, record: ConsumerRecord, error: str) -> None:
        key = record.key.decode() if isinstance(record.key, bytes) else record.key
        letter = DeadLetter(
            consumer=consumer,
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
            key=key,
            original=base64.b64encode(record.value or b"").decode(),
            original_size=len(record.value or b""),
            error=error,
        )
        self.publish(topics.dlq(record.topic), key, letter)

    def on(self, topic: str) -> list[Any]:
        """What was published on `topic`, in order."""
        return [m for t, _, m in self.published if t == topic]


def bootstrap(settings: Settings) -> Callable[[Any], FakeSuppressionWork]:
    """The fakes bound as `services.suppression.bootstrap.bootstrap` binds the adapters;
    every batch of a test shares one state, as batches share the database."""
    shared = FakeSuppressionWork(soft_bounce_limit=settings.soft_bounce_limit)
    return lambda _transaction=None: shared
