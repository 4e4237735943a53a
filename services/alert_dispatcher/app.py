"""The alert dispatcher's composition root: bootstrap binds the adapters, then the Kafka
entrypoints, the HTTP routes and the mail worker are wired to the work it returns."""

from __future__ import annotations

from services.alert_dispatcher import api
from services.alert_dispatcher.bootstrap import bootstrap
from services.alert_dispatcher.delivery import AlertDelivery
from services.alert_dispatcher.entrypoints import kafka
from shared.mail_worker import MailWorker
from shared.runtime import Runtime


def build(rt: Runtime) -> None:
    work = bootstrap(rt.settings)
    kafka.declare(rt.kafka, work)
    rt.routes += api.routes(rt, work)

    async def mail_worker() -> None:
        await MailWorker.from_settings(rt.db, rt.settings, hooks=AlertDelivery(work)).run()

    rt.workers.append(mail_worker)
