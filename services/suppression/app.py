"""The suppression service's wiring (its composition root): consumers of
`suppression-commands`, `consent-changes` and `privacy-requests` bound to the PostgreSQL
adapters, and its HTTP API (`http/`: a profile's suppressions; operator actions)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from services.suppression import handlers, http
from services.suppression.adapters.privacy import SuppressionPrivacy
from services.suppression.adapters.repository import PostgresSuppressionRepository
from shared.contracts import (
    ConsentChanged,
    PrivacyRequest,
    PrivacyResult,
    SuppressionChanged,
    SuppressionCommand,
    topics,
)
from shared.db.uow import UnitOfWork
from shared.domain.identity import derived_id
from shared.runtime import Runtime


def on_postgres(
    use_case: Callable[..., Awaitable[None]], **kwargs: Any
) -> Callable[..., Awaitable[None]]:
    """A batch handler running `use_case(repository, outbox, items, **kwargs)` on the
    batch's unit of work."""

    async def handler(items: list[Any], uow: UnitOfWork) -> None:
        await use_case(PostgresSuppressionRepository(uow), uow, items, **kwargs)

    return handler


def command_message_id(command: SuppressionCommand) -> str:
    """The inbox id of a command: one per account and command id (X2)."""
    return derived_id(command.account_id, command.command_id)


def privacy_message_id(request: PrivacyRequest) -> str:
    """The inbox id of a privacy request: one per account and request id (X2)."""
    return derived_id(request.account_id, request.request_id)


def build(rt: Runtime) -> None:
    """Register the consumers and the HTTP routes."""

    async def privacy_requests(items: list[Any], uow: UnitOfWork) -> None:
        await handlers.on_privacy_requests(uow, SuppressionPrivacy(), items)

    rt.kafka.publishes(topics.SUPPRESSION_CHANGES, SuppressionChanged)
    rt.kafka.publishes(topics.PRIVACY_RESULTS, PrivacyResult)
    rt.kafka.subscribe(
        topics.SUPPRESSION_COMMANDS,
        SuppressionCommand,
        on_postgres(handlers.on_commands, settings=rt.settings),
        message_id=command_message_id,
        consumer=handlers.COMMANDS,
    )
    rt.kafka.subscribe(
        topics.CONSENT_CHANGES,
        ConsentChanged,
        on_postgres(handlers.on_consent_changes),
        message_id=lambda c: c.change_id,
        consumer=handlers.CONSENT,
    )
    rt.kafka.subscribe(
        topics.PRIVACY_REQUESTS,
        PrivacyRequest,
        privacy_requests,
        message_id=privacy_message_id,
        consumer=handlers.PRIVACY,
    )
    rt.routes += http.routes(rt)
