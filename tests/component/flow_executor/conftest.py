"""Fixtures the flow executor's component tests share."""

from __future__ import annotations

import pytest

from shared.db.pool import create_pool


@pytest.fixture(scope="module")
async def pool(stack):
    """A small pool on the executor's schema, for the module's tests."""
    pool = await create_pool(stack.dsn, "flow_executor", 2)
    try:
        yield pool
    finally:
        await pool.close()
