"""Every topic the dispatcher reads and writes, declared on its Kafka edge: the AsyncAPI
document is generated from these declarations, and the consumer names are its consumer
groups and inbox names (changing one would make a new group read from the start).

Each subscriber hands its batches to a use case, `use_case(batch, work)`, with `work`
the dispatcher's unit of work over the batch's transaction (`bootstrap`). Outputs go
through the outbox of that transaction; the publishers only say what is produced."""

from __future__ import annotations

from collections.abc import Callable

from services.alert_dispatcher import handlers
from services.alert_dispatcher.ports import AlertWork
from shared import privacy_requests
from shared.contracts import AlertOutcome, AlertRequested, PrivacyRequest, PrivacyResult, topics
from shared.contracts.flows import FlowDefinition, parse_flow_record
from shared.db.uow import UnitOfWork
from shared.messaging.edge import KafkaEdge

# Consumer groups (and inbox names), as they have always been.
ALERT_REQUESTS = "alert_dispatcher.alert-requests"
PRIVACY_REQUESTS = "alert_dispatcher.privacy-requests"


def declare(kafka: KafkaEdge, work: Callable[[UnitOfWork], AlertWork]) -> None:
    """Declare the dispatcher's subscribers and publishers on `kafka`."""
    kafka.publishes(
        topics.ALERT_OUTCOMES,
        AlertOutcome,
        "The outcome of each alert request: sent (to whom, who refused), skipped or"
        " failed, with the reason (A6).",
    )
    kafka.publishes(
        topics.PRIVACY_RESULTS,
        PrivacyResult,
        "The dispatcher's part of each export or erase request (P1).",
    )
    kafka.subscribe(
        topics.FLOW_DEFINITIONS,
        FlowDefinition,
        handlers.save_definitions,
        parse=lambda r: parse_flow_record(r.key, r.value),
        consumer=handlers.DEFINITIONS,
        description="Keeps each flow's alert actions and registers their recipients, who"
        " are sent a confirmation mail (A1, A3); an invalid version is dead-lettered with"
        " the reason and a deletion removes the flow's actions.",
        work=work,
    )
    kafka.subscribe(
        topics.ALERT_REQUESTS,
        AlertRequested,
        handlers.dispatch,
        message_id=lambda r: r.alert_id,
        consumer=ALERT_REQUESTS,
        description="Queues one alert mail per confirmed recipient, or records the alert"
        " as skipped or failed at once with the reason (A5, A7).",
        work=work,
        main_input=True,
    )
    kafka.subscribe(
        topics.PRIVACY_REQUESTS,
        PrivacyRequest,
        privacy_requests.handle,
        message_id=privacy_requests.message_id,
        consumer=PRIVACY_REQUESTS,
        description="Exports or erases the alerts a person's events triggered and the"
        " mails they became (P1–P3).",
        work=work,
    )
