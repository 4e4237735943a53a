"""Every topic the consent service reads and writes, declared on its Kafka edge: the
subscribers (consumer groups, inbox ids where the use case does not dedupe itself, use
cases) and the output topics its outbox
publishes to. The AsyncAPI documents are generated from these declarations."""

from __future__ import annotations

from collections.abc import Callable

from services.consent import handlers
from services.consent.adapters.commands import parse_command
from services.consent.ports import ConsentWork
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
from shared.messaging.edge import KafkaEdge
from shared.privacy_requests import message_id


def declare(kafka: KafkaEdge, work: Callable[[UnitOfWork], ConsentWork]) -> None:
    """Consume `consent-commands`, `sms-inbound`, `suppression-changes`,
    `privacy-requests` and `privacy-results`; produce `consent-changes`, `sms-outbound`,
    `privacy-results`. The consumer names are the consumer groups: kept as they are."""
    kafka.publishes(topics.CONSENT_CHANGES, ConsentChanged)
    kafka.publishes(topics.SMS_OUTBOUND, SmsOutbound)
    kafka.publishes(topics.PRIVACY_RESULTS, PrivacyResult)
    kafka.subscribe(
        topics.CONSENT_COMMANDS,
        ConsentCommand,
        handlers.on_commands,
        # X2 without an inbox row per command: the use case applies each command id once
        # (its audit trail and the act log prove it); slim records (`adapters.commands`).
        consumer=handlers.COMMANDS,
        parse=parse_command,
        description="Apply consent acts (C1–C11), publish the changes (C9); a command"
        " that breaks a rule is dead-lettered with its reason.",
        work=work,
        main_input=True,
    )
    kafka.subscribe(
        topics.SMS_INBOUND,
        SmsInbound,
        handlers.on_sms_inbound,
        message_id=lambda m: derived_id(m.account_id, m.message_id),
        consumer=handlers.SMS,
        description="STOP, START and HELP change the number's SMS consent for every"
        " profile on it (C6, C13) and are answered on sms-outbound.",
        work=work,
    )
    kafka.subscribe(
        topics.SUPPRESSION_CHANGES,
        SuppressionChanged,
        handlers.on_suppression_changes,
        message_id=lambda c: c.change_id,
        consumer=handlers.SUPPRESSIONS,
        description="Keep the suppression read model (C14); a spam complaint"
        " unsubscribes the profile's email (S3).",
        work=work,
    )
    kafka.subscribe(
        topics.PRIVACY_REQUESTS,
        PrivacyRequest,
        handlers.on_privacy_requests,
        message_id=message_id,
        consumer=handlers.PRIVACY,
        description="Record a data-subject request and export or erase the consent"
        " service's part, published on privacy-results (P1–P3).",
        work=work,
    )
    kafka.subscribe(
        topics.PRIVACY_RESULTS,
        PrivacyResult,
        handlers.on_privacy_results,
        message_id=lambda r: derived_id(r.account_id, r.request_id, r.service),
        consumer=handlers.PRIVACY_PARTS,
        description="Collect every service's part of a data-subject request; it is done"
        " when all four are in (P1).",
        work=work,
    )
