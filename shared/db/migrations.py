"""Apply each service's SQL migrations into its own schema, once each.

A migration is a `NNNN_name.sql` file. The runner takes an advisory lock per schema (so
replicas or a Kubernetes Job can run it concurrently), applies the shared messaging tables
first, then the service's files in name order, each in its own transaction together with
its row in `schema_migrations`.
"""

import hashlib
from importlib import resources
from pathlib import Path

import asyncpg

from shared.logging import get_logger

log = get_logger(__name__)

SERVICES = ("consent", "suppression", "flow_executor", "alert_dispatcher")


def _files(package: str) -> list[tuple[str, str]]:
    root = resources.files(package)
    return sorted(
        (entry.name, entry.read_text()) for entry in root.iterdir() if entry.name.endswith(".sql")
    )


def migration_files(service: str) -> list[tuple[str, str]]:
    """(name, sql) of the shared tables followed by the service's own migrations."""
    shared = [(f"shared/{n}", sql) for n, sql in _files("shared.db.sql")]
    own = [(n, sql) for n, sql in _files(f"services.{service}.migrations")]
    return shared + own


async def migrate(dsn: str, service: str) -> list[str]:
    """Bring `service`'s schema up to date; returns the names it applied."""
    conn = await asyncpg.connect(dsn)
    applied: list[str] = []
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{service}"')
        await conn.execute(f'SET search_path TO "{service}"')
        lock_id = int.from_bytes(hashlib.sha256(service.encode()).digest()[:7], "big")
        await conn.execute("SELECT pg_advisory_lock($1)", lock_id)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        for name, sql in migration_files(service):
            if name in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
                    name,
                    hashlib.sha256(sql.encode()).hexdigest(),
                )
            applied.append(name)
        await conn.execute("SELECT pg_advisory_unlock($1)", lock_id)
    finally:
        await conn.close()
    if applied:
        log.info("migrations applied", schema=service, applied=applied)
    return applied


async def migrate_all(dsn: str) -> dict[str, list[str]]:
    """Apply every service's migrations (`consentflow migrate`)."""
    return {service: await migrate(dsn, service) for service in SERVICES}


def service_migrations_dir(service: str) -> Path:
    return Path(str(resources.files(f"services.{service}.migrations")))
