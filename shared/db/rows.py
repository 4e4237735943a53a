"""Database rows as JSON-ready dicts (exports, API answers)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg


def plain(value: Any) -> Any:
    """A column value JSON can carry: instants as RFC 3339, UUIDs as text."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def row_dicts(rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    """Each row as a dict of plain values."""
    return [{k: plain(v) for k, v in dict(r).items()} for r in rows]


def affected(status: str) -> int:
    """The row count of an asyncpg command status (`UPDATE 3` ⇒ 3)."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0
