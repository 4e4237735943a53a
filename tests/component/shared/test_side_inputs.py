"""A service's inputs besides its main one fetch and poll with their own, longer wait
(`KAFKA_SIDE_FETCH_MAX_WAIT_MS`), against the real broker: the embedded broker holds
every fetch for the whole wait, so each idle consumer of a read model, of privacy
requests or of definitions cost a fetch every 50 ms on the dev stack (13 of the 17
consumers of the four services). Records still reach both kinds of input."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaProducer

from shared.db import Database
from shared.health import Health
from shared.messaging.edge import KafkaEdge
from tests.component.shared.conftest import create_topic, settings_for
from tests.component.shared.test_kafka_edge import Ping, _applied, _insert, ping
from tests.conftest import eventually


async def test_side_inputs_fetch_with_their_own_wait_and_still_apply(stack, db: Database) -> None:
    main_topic, side_topic = (f"{kind}-{uuid.uuid4().hex[:6]}" for kind in ("main", "side"))
    settings = settings_for(stack).model_copy(
        update={"kafka_fetch_max_wait_ms": 50, "kafka_side_fetch_max_wait_ms": 700}
    )
    for topic in (main_topic, side_topic):
        await create_topic(settings, topic, partitions=1)
    edge = KafkaEdge(settings, "test", db, Health())
    edge.subscribe(main_topic, Ping, _insert, consumer=f"test.{main_topic}", main_input=True)
    edge.subscribe(side_topic, Ping, _insert, consumer=f"test.{side_topic}")
    await edge.start()
    try:
        by_topic = {s.topic: s for s in edge.subscriptions}
        waits = {
            topic: [
                # What the started client was built with, and how long a poll waits.
                (m.subscriber.consumer._fetcher._fetch_max_wait_ms, m.subscriber.batch_timeout_ms)
                for m in by_topic[topic].members
            ]
            for topic in (main_topic, side_topic)
        }
        assert waits == {main_topic: [(50, 50)], side_topic: [(700, 700)]}
        assert not by_topic[main_topic].side and by_topic[side_topic].side

        producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(main_topic, ping("to-main"))
            await producer.send_and_wait(side_topic, ping("to-side"))
        finally:
            await producer.stop()
        await eventually(lambda: _applied(db, 2), timeout_s=30)
        assert await _applied(db, 2) == ["to-main", "to-side"]
    finally:
        await edge.stop()
