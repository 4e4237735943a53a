"""The alert dispatcher's wiring: consumers, the mail worker, links and the HTTP API.
Use cases get the PostgreSQL store on the batch's unit of work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from services.alert_dispatcher import api, handlers
from services.alert_dispatcher.adapters.privacy import AlertPrivacy
from services.alert_dispatcher.adapters.repository import PostgresAlertStore
from services.alert_dispatcher.delivery import AlertDelivery
from services.alert_dispatcher.ports import AlertStore
from shared.contracts import AlertOutcome, AlertRequested, PrivacyRequest, PrivacyResult, topics
from shared.contracts.flows import FlowDefinition, parse_flow_record
from shared.db.uow import UnitOfWork
from shared.db.work import PrivacyTransaction
from shared.domain.identity import derived_id
from shared.mail_worker import MailWorker
from shared.privacy_requests import handle
from shared.runtime import Runtime
from shared.settings import Settings

UseCase = Callable[[AlertStore, list[Any], Settings], Awaitable[None]]


def _on_store(use_case: UseCase, settings: Settings) -> Callable[..., Awaitable[None]]:
    """A batch handler that runs `use_case` over the store of the batch's unit of work."""

    async def handler(items: list[Any], uow: UnitOfWork) -> None:
        await use_case(PostgresAlertStore(uow), items, settings)

    return handler


def privacy_message_id(request: PrivacyRequest) -> str:
    """The inbox id of a privacy request: one per account and request id (X2)."""
    return derived_id(request.account_id, request.request_id)


def build(rt: Runtime) -> None:
    rt.kafka.publishes(topics.ALERT_OUTCOMES, AlertOutcome)
    rt.kafka.publishes(topics.PRIVACY_RESULTS, PrivacyResult)
    rt.kafka.subscribe(
        topics.FLOW_DEFINITIONS,
        FlowDefinition,
        _on_store(handlers.save_definitions, rt.settings),
        parse=lambda r: parse_flow_record(r.key, r.value),
        consumer=handlers.DEFINITIONS,
    )
    rt.kafka.subscribe(
        topics.ALERT_REQUESTS,
        AlertRequested,
        _on_store(handlers.dispatch, rt.settings),
        message_id=lambda r: r.alert_id,
    )
    rt.kafka.subscribe(
        topics.PRIVACY_REQUESTS,
        PrivacyRequest,
        handle,
        message_id=privacy_message_id,
        work=lambda uow: PrivacyTransaction(uow, AlertPrivacy(rt.settings)),
    )

    async def mail_worker() -> None:
        hooks = AlertDelivery(rt.settings, PostgresAlertStore)
        await MailWorker.from_settings(rt.db, rt.settings, hooks=hooks).run()

    rt.workers.append(mail_worker)
    rt.routes += api.routes(rt)
