"""Binding the flow executor's ports to their adapters, once, for every entrypoint: the
Kafka subscribers, the scheduler and the HTTP API all get their unit of work from the
`Executor` this returns. The unit tests bind fakes to the same shape
(tests/unit/flow_executor/fakes.py: `FakeWork`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.flow_executor.adapters.unit_of_work import FlowUnitOfWork
from services.flow_executor.ports import FlowWork
from shared.db.uow import UnitOfWork
from shared.privacy import hash_secret
from shared.settings import Settings


@dataclass(frozen=True)
class Executor:
    """What the entrypoints need: `work` makes the use cases' `FlowWork` from a
    transaction (`shared.db.uow.UnitOfWork`); `secret` keys the hashes of addresses
    (`PRIVACY_HASH_SECRET`, P2), which the reachability API needs to match an erase."""

    work: Callable[[UnitOfWork], FlowWork]
    secret: str | None


def bootstrap(settings: Settings) -> Executor:
    """The real adapters: the PostgreSQL unit of work with the hash key bound to it."""
    secret = hash_secret(settings)

    def work(uow: UnitOfWork) -> FlowWork:
        return FlowUnitOfWork(uow, secret)

    return Executor(work=work, secret=secret)
