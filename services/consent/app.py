"""The consent service's wiring: batch consumers, the confirmation mail worker, and the
HTTP API and link pages (in `api.py`)."""

from __future__ import annotations

from functools import partial

from services.consent import api, handlers
from shared.contracts import ConsentCommand, SmsInbound, SuppressionChanged, topics
from shared.db.mail_queue import MailWorker
from shared.kafka import json_parser
from shared.runtime import Runtime


def build(rt: Runtime) -> None:
    """Register consumers of `consent-commands`, `sms-inbound` and `suppression-changes`,
    the worker that sends double opt-in emails (C8), and the HTTP routes."""
    rt.consume(
        topics.CONSENT_COMMANDS,
        json_parser(ConsentCommand),
        partial(handlers.on_commands, settings=rt.settings),
        message_id=lambda c: f"{c.account_id}:{c.command_id}",
        consumer=handlers.COMMANDS,
    )
    rt.consume(
        topics.SMS_INBOUND,
        json_parser(SmsInbound),
        partial(handlers.on_sms_inbound, settings=rt.settings),
        message_id=lambda m: f"{m.account_id}:{m.message_id}",
        consumer=handlers.SMS,
    )
    rt.consume(
        topics.SUPPRESSION_CHANGES,
        json_parser(SuppressionChanged),
        partial(handlers.on_suppression_changes, settings=rt.settings),
        message_id=lambda c: c.change_id,
        consumer=handlers.SUPPRESSIONS,
    )

    async def confirmation_mails() -> None:
        await MailWorker.from_settings(rt.db, rt.settings).run()

    rt.workers.append(confirmation_mails)
    rt.routes += api.link_routes(rt) + api.api_routes(rt)
