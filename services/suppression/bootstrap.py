"""The suppression service's one binding of its port to real adapters: the unit of work
each batch's use case runs on (`ports.SuppressionWork`), made from the batch's
PostgreSQL transaction, with the service's settings bound in so no use case takes them
as a parameter. The unit tests bind the in-memory fakes through the same shape
(`tests/unit/suppression/fakes.py: bootstrap`)."""

from __future__ import annotations

from collections.abc import Callable

from services.suppression.adapters.privacy import SuppressionPrivacy
from services.suppression.adapters.unit_of_work import PostgresSuppressionWork
from services.suppression.ports import SuppressionWork
from shared.db.uow import UnitOfWork
from shared.settings import Settings

WorkFactory = Callable[[UnitOfWork], SuppressionWork]


def bootstrap(settings: Settings) -> WorkFactory:
    """The work factory the entrypoints hand to every subscriber (`entrypoints.kafka`)."""
    limit = settings.soft_bounce_limit
    privacy = SuppressionPrivacy()

    def work(uow: UnitOfWork) -> SuppressionWork:
        return PostgresSuppressionWork(uow, limit, privacy)

    return work
