"""The edge's parser of `flow-definitions` records: a definition, or a deletion for a
tombstone, with the id the inbox dedupes its redelivery on."""

from __future__ import annotations

import hashlib

from aiokafka import ConsumerRecord

from services.flow_executor.domain.messages import DefinitionRecord
from shared.contracts.flows import parse_flow_record


def parse_definition(record: ConsumerRecord) -> DefinitionRecord:
    """A definition, or a deletion for a tombstone; raises on a bad shape (dead letter)."""
    message = parse_flow_record(record.key, record.value)
    digest = hashlib.sha256((record.key or b"") + b"\0" + (record.value or b"")).hexdigest()
    return DefinitionRecord(message, f"{record.partition}:{record.offset}:{digest[:32]}")
