"""A stand-in for a service's `KafkaEdge` that records what `entrypoints.kafka.declare`
declares on it, for the unit tests of each service's Kafka declarations."""

from __future__ import annotations

from typing import Any


class Recorded:
    """What was declared: subscriptions by topic (payload, use case and every option) and
    publishers by topic (payload, and the description given, if any)."""

    def __init__(self) -> None:
        self.subscribed: dict[str, dict[str, Any]] = {}
        self.published: dict[str, type] = {}
        self.publisher_descriptions: dict[str, str] = {}

    def subscribe(self, topic: str, payload: type, use_case: Any, **kw: Any) -> None:
        self.subscribed[topic] = {"payload": payload, "use_case": use_case, **kw}

    def publishes(self, topic: str, payload: type, description: str = "") -> None:
        self.published[topic] = payload
        self.publisher_descriptions[topic] = description
