"""`SuppressionWork` (`services/suppression/ports.py`) on one batch's PostgreSQL
transaction: the outbox of every service (`shared.db.work.TransactionWork`) with this
service's repositories and privacy SQL bound to the same connection, so everything a
batch does commits or rolls back together (X2)."""

from __future__ import annotations

from services.suppression.adapters.privacy import SuppressionPrivacy
from services.suppression.adapters.repository import (
    PostgresSuppressionHistory,
    PostgresSuppressionProfiles,
)
from shared.db.uow import UnitOfWork
from shared.db.work import BoundPrivacy, TransactionWork


class PostgresSuppressionWork(TransactionWork):
    """The suppression service's unit of work over `uow`'s transaction."""

    def __init__(
        self, uow: UnitOfWork, soft_bounce_limit: int, privacy: SuppressionPrivacy
    ) -> None:
        super().__init__(uow)
        self.profiles = PostgresSuppressionProfiles(uow.conn)
        self.history = PostgresSuppressionHistory(uow.conn)
        self.privacy = BoundPrivacy(privacy, uow.conn)
        self.soft_bounce_limit = soft_bounce_limit
