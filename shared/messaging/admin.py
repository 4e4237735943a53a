"""Creating consentflow's topics (`consentflow topics`, the embedded stack): every topic of
`shared.contracts.topics` with the partitions and cleanup policy it needs."""

from __future__ import annotations

import contextlib

from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.contracts import topics
from shared.messaging.clients import make_admin
from shared.settings import Settings


async def ensure_topics(
    settings: Settings | str, partitions: int = 4, replication_factor: int = 1
) -> list[str]:
    """Create every consentflow topic (with `KAFKA_TOPIC_PREFIX`) that does not exist
    yet; returns those created. Takes the settings (security options, prefix) or, for
    the embedded broker, just its bootstrap address.

    `flow-definitions` is compacted: the newest version of each flow is kept forever."""
    if isinstance(settings, str):
        settings = Settings(kafka_bootstrap_servers=settings)
    admin = make_admin(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        named = {settings.kafka_topic(t): t for t in topics.ALL_TOPICS}
        wanted = [name for name in named if name not in existing]
        new = [
            NewTopic(
                name,
                num_partitions=partitions,
                replication_factor=replication_factor,
                topic_configs=(
                    {"cleanup.policy": "compact"} if named[name] in topics.COMPACTED_TOPICS else {}
                ),
            )
            for name in wanted
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
        return wanted
    finally:
        await admin.close()
