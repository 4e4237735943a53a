"""The alert dispatcher's wiring: consumers, the mail worker, links and the HTTP API.
Use cases get the PostgreSQL store on the batch's unit of work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from services.alert_dispatcher import api, handlers
from services.alert_dispatcher.adapters.privacy import AlertPrivacy
from services.alert_dispatcher.adapters.repository import PostgresAlertStore
from services.alert_dispatcher.delivery import AlertDelivery
from services.alert_dispatcher.ports import AlertStore
from shared.contracts import AlertRequested, PrivacyRequest, topics
from shared.contracts.flows import parse_flow_record
from shared.db.uow import UnitOfWork
from shared.domain.identity import derived_id
from shared.kafka import json_parser
from shared.mail_worker import MailWorker
from shared.privacy_requests import handle
from shared.runtime import Runtime
from shared.settings import Settings

UseCase = Callable[[AlertStore, list[Any], Settings], Awaitable[None]]


def _on_store(use_case: UseCase, settings: Settings) -> Callable[..., Awaitable[None]]:
    """A batch handler that runs `use_case` over the store of the batch's unit of work."""

    async def handler(uow: UnitOfWork, items: list[Any]) -> None:
        await use_case(PostgresAlertStore(uow), items, settings)

    return handler


def privacy_message_id(request: PrivacyRequest) -> str:
    """The inbox id of a privacy request: one per account and request id (X2)."""
    return derived_id(request.account_id, request.request_id)


def build(rt: Runtime) -> None:
    rt.consume(
        topics.FLOW_DEFINITIONS,
        lambda r: parse_flow_record(r.key, r.value),
        _on_store(handlers.save_definitions, rt.settings),
        consumer=handlers.DEFINITIONS,
    )
    rt.consume(
        topics.ALERT_REQUESTS,
        json_parser(AlertRequested),
        _on_store(handlers.dispatch, rt.settings),
        message_id=lambda r: r.alert_id,
    )
    rt.consume(
        topics.PRIVACY_REQUESTS,
        json_parser(PrivacyRequest),
        partial(handle, store=AlertPrivacy(rt.settings)),
        message_id=privacy_message_id,
    )

    async def mail_worker() -> None:
        hooks = AlertDelivery(rt.settings, PostgresAlertStore)
        await MailWorker.from_settings(rt.db, rt.settings, hooks=hooks).run()

    rt.workers.append(mail_worker)
    rt.routes += api.routes(rt)
