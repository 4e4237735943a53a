"""The alert dispatcher's wiring: consumers, the mail worker, links and the HTTP API."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from services.alert_dispatcher import api, handlers
from shared.contracts import AlertRequested, topics
from shared.contracts.flows import parse_flow_record
from shared.db.mail_queue import MailWorker
from shared.kafka import json_parser
from shared.mail import SmtpSender
from shared.runtime import Runtime

# Mails claimed together are all `sending` until the batch is done: a small batch keeps
# the crash window (mails accepted by SMTP but not yet marked sent) small (A9).
MAIL_BATCH = 10


def build(rt: Runtime) -> None:
    rt.consume(
        topics.FLOW_DEFINITIONS,
        lambda r: parse_flow_record(r.key, r.value),
        partial(handlers.save_definitions, settings=rt.settings),
        consumer=handlers.DEFINITIONS,
    )
    rt.consume(
        topics.ALERT_REQUESTS,
        json_parser(AlertRequested),
        partial(handlers.dispatch, settings=rt.settings),
        message_id=lambda r: r.alert_id,
    )

    async def mail_worker() -> None:
        worker = MailWorker(
            rt.db,
            SmtpSender(rt.settings),
            on_final=handlers.on_mails_final,
            admit=handlers.mail_admission(rt.settings),
            batch_size=MAIL_BATCH,
            lease=timedelta(seconds=rt.settings.mail_lease_s),
            base_backoff_s=rt.settings.mail_retry_base_s,
        )
        await worker.run()

    rt.workers.append(mail_worker)
    rt.routes += api.link_routes(rt) + api.api_routes(rt)
