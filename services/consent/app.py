"""The consent service's composition root: its adapters bound once (`bootstrap`), its
Kafka subscribers and publishers declared (`entrypoints/kafka.py`), its HTTP API
(`api.py`, `http/`) and link pages (`pages/`), and the worker that sends the
confirmation mails."""

from __future__ import annotations

from services.consent import api, pages
from services.consent.bootstrap import bootstrap
from services.consent.entrypoints import kafka
from shared.mail_worker import MailWorker
from shared.runtime import Runtime


def build(rt: Runtime) -> None:
    """Consume `consent-commands`, `sms-inbound`, `suppression-changes` and the privacy
    topics; serve the API and the link pages; send double opt-in emails (C8)."""
    work = bootstrap(rt.settings)
    kafka.declare(rt.kafka, work)
    rt.routes += pages.link_routes(rt, work) + api.api_routes(rt, work)

    async def confirmation_mails() -> None:
        await MailWorker.from_settings(rt.db, rt.settings).run()

    rt.workers.append(confirmation_mails)
