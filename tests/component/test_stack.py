"""The embedded stack itself: broker, PostgreSQL and SMTP capture are real and reachable."""

from pathlib import Path

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


def test_a_started_broker_and_service_close_their_log_in_the_starting_process(
    tmp_path: Path,
) -> None:
    """The broker and each service write their log through their own descriptor: the
    process that starts them closes its copy at once, rather than leaving it for the
    garbage collector (which warns of an unclosed file: a test run or the dev stack
    starts dozens of them)."""
    import gc
    import warnings

    from tools.devstack.broker import TansuBroker
    from tools.devstack.ports import free_port
    from tools.devstack.processes import stop_process
    from tools.devstack.stack import ServiceProcess

    broker = TansuBroker(free_port(), tmp_path / "broker.log")
    idle = ServiceProcess("idle", {}, tmp_path / "idle.log", free_port(), module="this")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", ResourceWarning)
        try:
            broker.start()
            idle.start()
            assert idle.proc is not None
            # The child still has it: what it prints lands in the log.
            idle.proc.wait(timeout=30)
            assert b"Beautiful is better than ugly" in (tmp_path / "idle.log").read_bytes()
        finally:
            broker.stop()
            if idle.proc is not None:
                stop_process(idle.proc, 5)
        gc.collect()
    unclosed = [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)]
    assert not [m for m in unclosed if ".log" in m], unclosed
