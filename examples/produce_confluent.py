"""Publish a consent command and a profile event to consentflow with confluent-kafka.

    pip install confluent-kafka
    . var/dev.env                   # KAFKA_BOOTSTRAP_SERVERS of `consentflow dev`
    python examples/produce_confluent.py

The same two messages as examples/produce_aiokafka.py, with librdkafka: one JSON payload
per message (examples/consent-commands.json and examples/profile-events.json), keyed by
the profile id, acknowledged by all in-sync replicas. Settings from the environment:
KAFKA_BOOTSTRAP_SERVERS (default localhost:9092) and KAFKA_TOPIC_PREFIX (default none).
"""

import json
import os
import sys
from pathlib import Path

from confluent_kafka import KafkaException, Producer

HERE = Path(__file__).resolve().parent
TOPICS = ("consent-commands", "profile-events")  # each example file is named after its topic


def main() -> int:
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    prefix = os.environ.get("KAFKA_TOPIC_PREFIX", "")
    producer = Producer({"bootstrap.servers": servers, "acks": "all"})
    failures = []

    def report(err, msg):  # called from flush() once the broker answers
        if err is not None:
            failures.append(f"{msg.topic()}: {err}")
        else:
            print(
                f"{msg.topic()}: key {msg.key().decode()}, partition {msg.partition()}, "
                f"offset {msg.offset()}"
            )

    for topic in TOPICS:
        payload = json.loads((HERE / f"{topic}.json").read_text())
        key = payload["profile"]["id"]  # both topics are keyed by the profile id
        producer.produce(
            prefix + topic, json.dumps(payload).encode(), key.encode(), on_delivery=report
        )
    if producer.flush(30) > 0:
        failures.append(f"not delivered within 30 s to {servers}")
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KafkaException as exc:
        sys.exit(f"cannot publish: {exc}")
