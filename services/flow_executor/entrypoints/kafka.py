"""Every topic the flow executor consumes and produces, declared on its Kafka edge.

Each subscriber hands its batches to one use case, `use_case(batch, work)`, with the
work made from the batch's transaction; the consumer names are the consumer groups and
the inbox's names, so they never change. Outputs go through the outbox
(`work.publish`); they are declared here so that the AsyncAPI document says what the
executor produces.
"""

from __future__ import annotations

from collections.abc import Callable

from services.flow_executor import handlers
from services.flow_executor.adapters.definitions import parse_definition
from services.flow_executor.adapters.events import parse_event
from services.flow_executor.ports import FlowWork
from shared.contracts import (
    AlertRequested,
    ConsentChanged,
    FlowActivity,
    FlowDefinition,
    MessageRequested,
    PrivacyRequest,
    PrivacyResult,
    ProfileEvent,
    ReviewDecision,
    SuppressionChanged,
    topics,
)
from shared.db.uow import UnitOfWork
from shared.messaging.edge import KafkaEdge
from shared.privacy_requests import handle, message_id

SERVICE = "flow_executor"
INPUT_MEMBERS = 2
"""Members of the `profile-events` group in each replica unless `KAFKA_INPUT_CONSUMERS`
says otherwise."""


Work = Callable[[UnitOfWork], FlowWork]


def declare(kafka: KafkaEdge, work: Work) -> None:
    """Declare the executor's publishers and subscribers on `kafka`."""
    _outputs(kafka)
    _flows(kafka, work)
    _read_model(kafka, work)
    _requests(kafka, work)


def _outputs(kafka: KafkaEdge) -> None:
    """What the executor produces, each described by its payload type."""
    kafka.publishes(topics.ALERT_REQUESTS, AlertRequested)
    kafka.publishes(topics.MESSAGE_REQUESTS, MessageRequested)
    kafka.publishes(topics.FLOW_ACTIVITY, FlowActivity)
    kafka.publishes(topics.PRIVACY_RESULTS, PrivacyResult)


def _flows(kafka: KafkaEdge, work: Work) -> None:
    """What starts runs: definitions, and the events that enter them."""
    kafka.subscribe(
        topics.FLOW_DEFINITIONS,
        FlowDefinition,
        handlers.save_definitions,
        consumer=handlers.DEFINITIONS,
        message_id=lambda d: d.message_id,
        parse=parse_definition,
        description="Saves a valid higher version of a flow, rejects an invalid one, "
        "deletes a flow on a tombstone (F1).",
        work=work,
    )
    # No inbox claim for profile events: the run's id, derived from the event id, is what
    # dedupes an entry (F2), and the profile merge is safe to repeat (see the handler).
    # Events are validated as `ProfileEvent` into slim records (`adapters.events`).
    kafka.subscribe(
        topics.PROFILE_EVENTS,
        ProfileEvent,
        handlers.enter_from_events,
        consumer=f"{SERVICE}.{topics.PROFILE_EVENTS}",
        parse=parse_event,
        description="Enters each event's profile into the metric flows it matches and "
        "keeps the newest profile data (F2, F3).",
        work=work,
        main_input=True,
        # Two members by default: while one waits for PostgreSQL the other decodes and
        # decides. Measured from a settled group in three alternating pairs: 11-21 % more
        # intake from a backlog at the same CPU per event (docs/performance.md, 8 Dec).
        members=INPUT_MEMBERS,
    )


def _read_model(kafka: KafkaEdge, work: Work) -> None:
    """What the executor keeps about people: consent and suppressions (F7)."""
    kafka.subscribe(
        topics.CONSENT_CHANGES,
        ConsentChanged,
        handlers.on_consent_changes,
        consumer=f"{SERVICE}.{topics.CONSENT_CHANGES}",
        message_id=lambda c: c.change_id,
        description="Keeps the newest consent per profile; a list subscribe enters "
        "list-triggered flows (F7, F2).",
        work=work,
    )
    kafka.subscribe(
        topics.SUPPRESSION_CHANGES,
        SuppressionChanged,
        handlers.on_suppression_changes,
        consumer=f"{SERVICE}.{topics.SUPPRESSION_CHANGES}",
        message_id=lambda c: c.change_id,
        description="Keeps the suppressions in force per profile (F7).",
        work=work,
    )


def _requests(kafka: KafkaEdge, work: Work) -> None:
    """What people ask of the executor: review decisions, privacy requests."""
    kafka.subscribe(
        topics.REVIEW_DECISIONS,
        ReviewDecision,
        handlers.on_review_decisions,
        consumer=f"{SERVICE}.{topics.REVIEW_DECISIONS}",
        description="Approves or rejects actions held in manual review (F5).",
        work=work,
    )
    kafka.subscribe(
        topics.PRIVACY_REQUESTS,
        PrivacyRequest,
        handle,
        consumer=f"{SERVICE}.{topics.PRIVACY_REQUESTS}",
        message_id=message_id,
        description="Exports or erases what the executor holds about a person (P1-P3).",
        work=work,
    )
