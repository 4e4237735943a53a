"""`consentflow publish TOPIC FILE`: publish one JSON payload to an input topic, checked
first by the same contract model the consuming service parses it with, and keyed as the
topic's contract says (docs/architecture.md, "Topics"). For trying a stack out and for scripts; a
producer in production uses its own Kafka client (see examples/)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError

from shared.contracts import topics
from shared.contracts.flows import FlowDefinition
from shared.settings import Settings


class NotAPayload(ValueError):
    """The file is not JSON, or not a valid payload of the topic (the reason says why)."""


def message_key(topic: str, message: BaseModel) -> str:
    """The Kafka key a payload of `topic` is published under (docs/architecture.md, "Topics")."""
    data: Any = message
    if isinstance(message, FlowDefinition):
        return message.key
    if topic in (topics.PROFILE_EVENTS, topics.CONSENT_COMMANDS, topics.SUPPRESSION_COMMANDS):
        return str(data.profile.id)
    if topic == topics.SMS_INBOUND:
        return str(data.phone_number)
    if topic == topics.REVIEW_DECISIONS:
        return str(data.alert_id)
    if topic == topics.PRIVACY_REQUESTS:
        return str(data.key)
    raise NotAPayload(f"{topic} is not an input topic")


def parse(topic: str, raw: bytes) -> tuple[str, BaseModel]:
    """(key, message) of a payload for `topic`, or NotAPayload with the reason."""
    from tools.contracts_gen import BY_TOPIC

    if topic not in topics.INPUT_TOPICS:
        raise NotAPayload(
            f"{topic!r} is not an input topic; one of: {', '.join(topics.INPUT_TOPICS)}"
        )
    try:
        message = BY_TOPIC[topic].model.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}" for e in exc.errors()
        )
        raise NotAPayload(f"not a valid {topic} payload: {problems}") from None
    return message_key(topic, message), message


async def publish(settings: Settings, topic: str, key: str, raw: bytes) -> tuple[int, int]:
    """Publish `raw` (the file's own bytes: unknown fields travel as written) under `key`;
    returns (partition, offset)."""
    from shared.messaging.clients import make_producer

    producer = make_producer(settings, "consentflow-publish")
    try:
        await producer.start()
        meta = await producer.send_and_wait(
            settings.kafka_topic(topic), json.dumps(json.loads(raw)).encode(), key=key.encode()
        )
    finally:
        await producer.stop()
    return meta.partition, meta.offset
