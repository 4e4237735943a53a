"""Everything the suppression service consumes and produces on Kafka, declared in one
place on the service's `KafkaEdge`: the AsyncAPI document is generated from these
declarations, and the consumer names are the consumer groups (and inboxes) the service
has always used, so a deploy keeps its offsets.

Each subscriber runs a use case of `handlers.py` as `use_case(batch, work)`, `work` made
by `bootstrap` from the batch's transaction."""

from __future__ import annotations

from collections.abc import Callable

from services.suppression import handlers
from services.suppression.ports import SuppressionWork
from shared import privacy_requests
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
from shared.messaging.edge import KafkaEdge


def command_message_id(command: SuppressionCommand) -> str:
    """The inbox id of a command: one per account and command id (X2)."""
    return derived_id(command.account_id, command.command_id)


def change_message_id(change: ConsentChanged) -> str:
    """The inbox id of a consent change: its change id, unique per account (X2)."""
    return change.change_id


def declare(kafka: KafkaEdge, work: Callable[[UnitOfWork], SuppressionWork]) -> None:
    """Declare the service's publishers and its three batch subscribers."""
    kafka.publishes(
        topics.SUPPRESSION_CHANGES,
        SuppressionChanged,
        "Every change of a profile's suppressions, with all suppressions then in force (S6).",
    )
    kafka.publishes(
        topics.PRIVACY_RESULTS,
        PrivacyResult,
        "The suppression service's part of a privacy request: its export, or what it erased.",
    )
    kafka.subscribe(
        topics.SUPPRESSION_COMMANDS,
        SuppressionCommand,
        handlers.on_commands,
        consumer=handlers.COMMANDS,
        message_id=command_message_id,
        description="Suppress or lift a profile's address (S1, S4, S5), for every profile"
        " carrying it (I1); a command the rules refuse is dead-lettered with its reason.",
        work=work,
        main_input=True,
    )
    kafka.subscribe(
        topics.CONSENT_CHANGES,
        ConsentChanged,
        handlers.on_consent_changes,
        consumer=handlers.CONSENT,
        message_id=change_message_id,
        description="Lift a spam complaint on a re-subscribe with evidence, or a manual"
        " suppression on a subscribe, of that profile only (S5, C9, C11).",
        work=work,
    )
    kafka.subscribe(
        topics.PRIVACY_REQUESTS,
        PrivacyRequest,
        handlers.on_privacy_requests,
        consumer=handlers.PRIVACY,
        message_id=privacy_requests.message_id,
        description="Export or erase what the service holds about a person (P1–P3).",
        work=work,
    )
