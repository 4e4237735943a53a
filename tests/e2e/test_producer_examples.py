"""The producer quickstart in Python works as written: `examples/produce_aiokafka.py` and
`examples/produce_confluent.py`, run as a producer runs them (a process, settings from
the environment), publish the example consent command and profile event, keyed by the
profile id, to the embedded broker, and the records read back are the example files.

Each run has a topic prefix of its own (KAFKA_TOPIC_PREFIX), so the example person does
not land on the topics other tests' services consume."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.conftest import Kafka

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TOPICS = ("consent-commands", "profile-events")
SCRIPTS = ("produce_aiokafka.py", "produce_confluent.py")


async def _create(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, 2, 1) for n in names])
    finally:
        await admin.close()


async def _run(script: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / script),
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_the_python_producer_examples_publish_the_example_payloads(
    stack, kafka: Kafka
) -> None:
    prefixes = {s: f"ex{uuid.uuid4().hex[:6]}-{s.split('_')[1][:-3]}." for s in SCRIPTS}
    await _create(stack.broker.bootstrap, [p + t for p in prefixes.values() for t in TOPICS])
    runs = await asyncio.gather(
        *(
            _run(s, {"KAFKA_BOOTSTRAP_SERVERS": stack.broker.bootstrap, "KAFKA_TOPIC_PREFIX": p})
            for s, p in prefixes.items()
        )
    )
    for script, (code, out, err) in zip(SCRIPTS, runs, strict=True):
        assert code == 0 and "Traceback" not in err, (script, out, err)
        prefix = prefixes[script]
        for topic in TOPICS:
            assert f"{prefix}{topic}: key ada, partition " in out, (script, out)
            payload = json.loads((EXAMPLES / f"{topic}.json").read_text())
            assert await kafka.read_all(prefix + topic) == [("ada", payload)], (script, topic)
