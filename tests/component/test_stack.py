"""The embedded stack itself: broker, PostgreSQL and SMTP capture are real and reachable."""

import asyncpg

from shared.contracts import topics
from tests.conftest import Kafka, eventually


async def test_x2_stack_has_topics_and_migrated_schemas(stack, kafka: Kafka) -> None:
    conn = await asyncpg.connect(stack.dsn)
    try:
        schemas = {r["nspname"] for r in await conn.fetch("SELECT nspname FROM pg_namespace")}
        assert {"consent", "suppression", "flow_executor", "alert_dispatcher"} <= schemas
        applied = await conn.fetchval("SELECT count(*) FROM flow_executor.schema_migrations")
        assert applied >= 2
    finally:
        await conn.close()
    await kafka.send(topics.PROFILE_EVENTS + ".dlq", "k", {"probe": True})
    got = await eventually(lambda: kafka.read_all(topics.PROFILE_EVENTS + ".dlq"))
    assert ("k", {"probe": True}) in got


QUIET = """
import logging, pathlib, sys, tempfile
logging.basicConfig(level=logging.WARNING)
from tools.devstack.postgres import EmbeddedPostgres
pg = EmbeddedPostgres(pathlib.Path(tempfile.mkdtemp(prefix="quiet-pg-")) / "pgdata")
pg.start()
pg.stop()
print("ok")
"""


def test_running_embedded_postgres_starts_and_stops_quietly() -> None:
    """A newcomer's first run reads clean: no RuntimeDirWarning without XDG_RUNTIME_DIR,
    no "Failed postgres command … killing it instead" trace on stop."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    proc = subprocess.run(
        [sys.executable, "-W", "default", "-c", QUIET],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    assert proc.stderr == "", proc.stderr
