"""X8 under a fault that raises nothing: PostgreSQL and every backend frozen (SIGSTOP).
Queries then hang without an error, so only the stall time can tell. `/readyz` must
answer (not hang) with 503, name the database and the background loops that stopped
passing, and turn back to 200 once the server runs again. Own stack: it freezes it."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest

from tests.conftest import eventually
from tools.devstack import EmbeddedStack

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def stalling_stack(tmp_path_factory: pytest.TempPathFactory):
    stack = EmbeddedStack(tmp_path_factory.mktemp("stall"))
    stack.start()
    try:
        stack.start_services(("consent",), KAFKA_STALL_S="3")
        yield stack
    finally:
        stack.postgres.resume()
        stack.stop()


def _readiness(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=8) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


async def test_x8_loops_hanging_on_a_frozen_database_turn_readyz_503_and_back(
    stalling_stack: EmbeddedStack,
) -> None:
    url = f"{stalling_stack.services['consent'].base_url}/readyz"
    assert (await asyncio.to_thread(_readiness, url))[0] == 200

    async def stalled():
        code, body = await asyncio.to_thread(_readiness, url)
        loops = {k: v for k, v in body.get("checks", body).items() if k.startswith("outbox.")}
        hung = code == 503 and any(str(v).startswith("stalled") for v in loops.values())
        return body if hung else None

    stalling_stack.postgres.pause()
    try:
        body = await eventually(stalled, timeout_s=30, interval_s=0.5)
    finally:
        stalling_stack.postgres.resume()
    checks = body.get("checks", body)
    assert checks["database"] is False

    async def ready_again():
        return (await asyncio.to_thread(_readiness, url))[0] == 200

    assert await eventually(ready_again, timeout_s=30, interval_s=0.5)
