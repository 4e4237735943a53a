"""`ports.AlertWork` on the PostgreSQL transaction of a batch (or of an HTTP request, or of
a mail-worker step): the repositories on its connection, and publish, dead-letter and
queue mail through the same transaction (`shared.db.work.TransactionWork`), so a use
case's writes, outputs and mails commit or roll back together (X2)."""

from __future__ import annotations

from dataclasses import dataclass

from services.alert_dispatcher.adapters.mails import AlertMails
from services.alert_dispatcher.adapters.privacy import AlertPrivacy
from services.alert_dispatcher.adapters.repository import (
    PostgresAccounts,
    PostgresAlerts,
    PostgresFlows,
    PostgresLimits,
    PostgresMails,
    PostgresRecipients,
)
from shared.db.uow import UnitOfWork
from shared.db.work import BoundPrivacy, TransactionWork
from shared.privacy import hash_secret, subject_hashes
from shared.settings import Settings


@dataclass(frozen=True)
class Bindings:
    """What the service's settings put into every unit of work (`bootstrap`), made once:
    the use cases receive no settings."""

    compose: AlertMails
    privacy: AlertPrivacy
    settings: Settings
    # A8: the limit of an account that set none, and the window it counts in.
    send_limit_per_window: int
    send_window_s: int

    @property
    def hash_secret(self) -> str:
        """The key of the hashes that stand for who triggered an alert (P1), read when
        first needed (as the privacy SQL reads it): the runtime refuses to start
        without one, a test that never stores an alert needs none."""
        return hash_secret(self.settings)


class PostgresAlertWork(TransactionWork):
    """The dispatcher's unit of work over `uow`."""

    def __init__(self, uow: UnitOfWork, bound: Bindings) -> None:
        super().__init__(uow)
        conn = uow.conn
        self.flows = PostgresFlows(conn)
        self.recipients = PostgresRecipients(conn)
        self.accounts = PostgresAccounts(conn)
        self.alerts = PostgresAlerts(conn)
        self.mails = PostgresMails(conn)
        self.limits = PostgresLimits(conn, bound.send_limit_per_window, bound.send_window_s)
        self.compose = bound.compose
        self.privacy = BoundPrivacy(bound.privacy, conn)
        self._bound = bound

    def subject_hashes(self, email: str | None, phone_number: str | None) -> list[str]:
        return subject_hashes(self._bound.hash_secret, email, phone_number)
