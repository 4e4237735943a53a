"""The consent service's wiring: batch consumers, the confirmation mail worker, and the
HTTP API and link pages (in `api.py`)."""

from __future__ import annotations

from functools import partial

from services.consent import api, handlers, pages, privacy_api
from shared.contracts import (
    ConsentCommand,
    PrivacyRequest,
    PrivacyResult,
    SmsInbound,
    SuppressionChanged,
    topics,
)
from shared.kafka import json_parser
from shared.mail_worker import MailWorker
from shared.privacy_requests import message_id
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
    rt.consume(
        topics.PRIVACY_REQUESTS,
        json_parser(PrivacyRequest),
        partial(handlers.on_privacy_requests, settings=rt.settings),
        message_id=message_id,
        consumer=handlers.PRIVACY,
    )
    rt.consume(
        topics.PRIVACY_RESULTS,
        json_parser(PrivacyResult),
        handlers.on_privacy_results,
        message_id=lambda r: f"{r.account_id}:{r.request_id}:{r.service}",
        consumer=handlers.PRIVACY_PARTS,
    )

    async def confirmation_mails() -> None:
        await MailWorker.from_settings(rt.db, rt.settings).run()

    rt.workers.append(confirmation_mails)
    rt.routes += pages.link_routes(rt) + api.api_routes(rt) + privacy_api.routes(rt)
