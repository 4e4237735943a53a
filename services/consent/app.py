"""The consent service's wiring (its composition root): batch consumers bound to the
PostgreSQL adapters, the confirmation mail worker, the HTTP API (`api.py`, `http/`) and
the link pages (`pages/`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from services.consent import api, handlers, pages
from services.consent.adapters.privacy import ConsentPrivacy, PostgresPrivacyLedger
from services.consent.adapters.repository import PostgresConsentRepository
from shared.contracts import (
    ConsentChanged,
    ConsentCommand,
    PrivacyRequest,
    PrivacyResult,
    SmsInbound,
    SmsOutbound,
    SuppressionChanged,
    topics,
)
from shared.db.uow import UnitOfWork
from shared.domain.identity import derived_id
from shared.mail_worker import MailWorker
from shared.privacy import hash_secret
from shared.privacy_requests import message_id
from shared.runtime import Runtime

UseCase = Callable[..., Awaitable[None]]


def on_postgres(use_case: UseCase, **kwargs: Any) -> Callable[..., Awaitable[None]]:
    """A batch handler running `use_case(repository, outbox, items, **kwargs)` on the
    batch's unit of work."""

    async def handler(items: list[Any], uow: UnitOfWork) -> None:
        await use_case(PostgresConsentRepository(uow), uow, items, **kwargs)

    return handler


def build(rt: Runtime) -> None:
    """Register consumers of `consent-commands`, `sms-inbound` and `suppression-changes`,
    the worker that sends double opt-in emails (C8), and the HTTP routes."""
    store = ConsentPrivacy(hash_secret(rt.settings))

    async def privacy_requests(items: list[Any], uow: UnitOfWork) -> None:
        await handlers.on_privacy_requests(uow, PostgresPrivacyLedger(uow), store, items)

    async def privacy_results(items: list[Any], uow: UnitOfWork) -> None:
        await handlers.on_privacy_results(PostgresPrivacyLedger(uow), items)

    rt.kafka.publishes(topics.CONSENT_CHANGES, ConsentChanged)
    rt.kafka.publishes(topics.SMS_OUTBOUND, SmsOutbound)
    rt.kafka.publishes(topics.PRIVACY_RESULTS, PrivacyResult)
    rt.kafka.subscribe(
        topics.CONSENT_COMMANDS,
        ConsentCommand,
        on_postgres(handlers.on_commands, settings=rt.settings),
        message_id=lambda c: derived_id(c.account_id, c.command_id),
        consumer=handlers.COMMANDS,
    )
    rt.kafka.subscribe(
        topics.SMS_INBOUND,
        SmsInbound,
        on_postgres(handlers.on_sms_inbound, settings=rt.settings),
        message_id=lambda m: derived_id(m.account_id, m.message_id),
        consumer=handlers.SMS,
    )
    rt.kafka.subscribe(
        topics.SUPPRESSION_CHANGES,
        SuppressionChanged,
        on_postgres(handlers.on_suppression_changes, settings=rt.settings),
        message_id=lambda c: c.change_id,
        consumer=handlers.SUPPRESSIONS,
    )
    rt.kafka.subscribe(
        topics.PRIVACY_REQUESTS,
        PrivacyRequest,
        privacy_requests,
        message_id=message_id,
        consumer=handlers.PRIVACY,
    )
    rt.kafka.subscribe(
        topics.PRIVACY_RESULTS,
        PrivacyResult,
        privacy_results,
        message_id=lambda r: derived_id(r.account_id, r.request_id, r.service),
        consumer=handlers.PRIVACY_PARTS,
    )

    async def confirmation_mails() -> None:
        await MailWorker.from_settings(rt.db, rt.settings).run()

    rt.workers.append(confirmation_mails)
    rt.routes += pages.link_routes(rt) + api.api_routes(rt)
