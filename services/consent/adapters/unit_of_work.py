"""`ConsentWork` (services/consent/ports.py) on PostgreSQL: one batch's (or one HTTP
request's) transaction with the consent stores, the privacy ledger and the privacy SQL
bound to its connection, beside the outbox and mail queue every service's work has
(`shared.db.work.TransactionWork`)."""

from __future__ import annotations

from services.consent.adapters.mails import ConsentMailer
from services.consent.adapters.privacy import ConsentPrivacy, PostgresPrivacyLedger
from services.consent.adapters.repository import PostgresConsentRepository
from services.consent.ports import ConsentOptions
from shared.db.uow import UnitOfWork
from shared.db.work import BoundPrivacy, TransactionWork
from shared.privacy_requests import PrivacyStore


class ConsentTransaction(TransactionWork):
    """Every store is the one repository on the transaction: split in the port so each
    use case names what it touches, one adapter so each statement sees the others."""

    privacy: PrivacyStore

    def __init__(
        self,
        uow: UnitOfWork,
        *,
        sql: ConsentPrivacy,
        mails: ConsentMailer,
        options: ConsentOptions,
    ) -> None:
        super().__init__(uow)
        repo = PostgresConsentRepository(uow)
        self.repository = repo
        self.states = self.identities = self.accounts = repo
        self.suppressions = self.confirmations = self.erasures = self.receipts = repo
        self.privacy_requests = PostgresPrivacyLedger(uow)
        self.privacy = BoundPrivacy(sql, uow.conn)
        self.mails = mails
        self.options = options
