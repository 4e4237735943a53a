"""The dispatcher's one bootstrap: what its settings bind (the mail composer with the link
key and public URL, the privacy SQL and hash key, the default sending limit and window)
is made once here and put into every unit of work, so the use cases take none of it as a
parameter. The entrypoints (Kafka subscribers, HTTP routes, the mail worker's hooks) get
the work factory it returns; the unit tests get a fake work through the same call:

    work = bootstrap(settings)                                   # PostgreSQL, per uow
    work = bootstrap(settings, MemoryAlertWork)(MemoryTables())  # in memory
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.alert_dispatcher.adapters.mails import AlertMails
from services.alert_dispatcher.adapters.privacy import AlertPrivacy
from services.alert_dispatcher.adapters.unit_of_work import Bindings, PostgresAlertWork
from services.alert_dispatcher.ports import AlertWork
from shared.settings import Settings


def bindings(settings: Settings) -> Bindings:
    """What `settings` put into each unit of work."""
    return Bindings(
        compose=AlertMails(settings),
        privacy=AlertPrivacy(settings),
        settings=settings,
        send_limit_per_window=settings.alert_send_limit_per_hour,
        send_window_s=settings.alert_send_window_s,
    )


def bootstrap(
    settings: Settings,
    unit_of_work: Callable[[Any, Bindings], AlertWork] = PostgresAlertWork,
) -> Callable[[Any], AlertWork]:
    """The work factory: the dispatcher's unit of work over a transaction (by default
    `PostgresAlertWork` over a `shared.db.uow.UnitOfWork`), settings bound in."""
    bound = bindings(settings)

    def work(transaction: Any) -> AlertWork:
        return unit_of_work(transaction, bound)

    return work
