"""Publish a consent command and a profile event to consentflow with aiokafka.

    pip install aiokafka            # (installed with consentflow)
    . var/dev.env                   # KAFKA_BOOTSTRAP_SERVERS of `consentflow dev`
    python examples/produce_aiokafka.py

What a shop's back end does: one JSON payload per message (here the files next to this
script: examples/consent-commands.json and examples/profile-events.json, valid by the
schemas in deploy/contracts/schemas/), keyed by the profile id so that one person's
messages stay in order, acknowledged by all in-sync replicas. Settings from the
environment: KAFKA_BOOTSTRAP_SERVERS (default localhost:9092) and KAFKA_TOPIC_PREFIX
(default none).
"""

import asyncio
import json
import os
from pathlib import Path

from aiokafka import AIOKafkaProducer

HERE = Path(__file__).resolve().parent
TOPICS = ("consent-commands", "profile-events")  # each example file is named after its topic


async def main() -> None:
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    prefix = os.environ.get("KAFKA_TOPIC_PREFIX", "")
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await producer.start()
    try:
        for topic in TOPICS:
            payload = json.loads((HERE / f"{topic}.json").read_text())
            key = payload["profile"]["id"]  # both topics are keyed by the profile id
            sent = await producer.send_and_wait(
                prefix + topic, json.dumps(payload).encode(), key=key.encode()
            )
            print(f"{sent.topic}: key {key}, partition {sent.partition}, offset {sent.offset}")
    finally:
        await producer.stop()


if __name__ == "__main__":
    asyncio.run(main())
