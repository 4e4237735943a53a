"""Where the consent service's real adapters are bound, once: `bootstrap(settings)` gives
the factory of its unit of work (`ConsentWork`) over a transaction, which the Kafka
entrypoints, the HTTP API and the link pages all use. The unit tests bind in-memory fakes
to the same port (`tests/unit/consent/fakes.py`)."""

from __future__ import annotations

from collections.abc import Callable

from services.consent.adapters.mails import ConsentMailer
from services.consent.adapters.privacy import ConsentPrivacy
from services.consent.adapters.unit_of_work import ConsentTransaction
from services.consent.ports import ConsentOptions, ConsentWork
from shared.db.uow import UnitOfWork
from shared.privacy import hash_secret
from shared.settings import Settings

WorkFactory = Callable[[UnitOfWork], ConsentWork]


def bootstrap(settings: Settings) -> WorkFactory:
    """The work factory: settings, privacy SQL and mail builder bound once, a work made
    per transaction."""
    secret = hash_secret(settings)
    sql = ConsentPrivacy(secret)
    mails = ConsentMailer(settings)
    options = ConsentOptions(hash_secret=secret, email_double_opt_in=settings.email_double_opt_in)

    def work(uow: UnitOfWork) -> ConsentWork:
        return ConsentTransaction(uow, sql=sql, mails=mails, options=options)

    return work
