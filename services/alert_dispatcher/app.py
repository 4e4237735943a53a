"""The alert dispatcher's wiring: consumers, the mail worker, links and the HTTP API."""

from __future__ import annotations

from functools import partial

from services.alert_dispatcher import api, handlers, resend
from services.alert_dispatcher.adapters.privacy import AlertPrivacy
from shared.contracts import AlertRequested, PrivacyRequest, topics
from shared.contracts.flows import parse_flow_record
from shared.db.mail_queue import MailWorker
from shared.kafka import json_parser
from shared.privacy_requests import handle, message_id
from shared.runtime import Runtime


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
    rt.consume(
        topics.PRIVACY_REQUESTS,
        json_parser(PrivacyRequest),
        partial(handle, store=AlertPrivacy(rt.settings)),
        message_id=message_id,
    )

    async def mail_worker() -> None:
        worker = MailWorker.from_settings(
            rt.db,
            rt.settings,
            on_final=handlers.on_mails_final,
            admit=handlers.mail_admission(rt.settings),
        )
        await worker.run()

    rt.workers.append(mail_worker)
    rt.routes += api.link_routes(rt) + api.api_routes(rt) + resend.routes(rt)
