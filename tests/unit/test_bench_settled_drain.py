"""The bench's executor drains start from a settled group: with `settle_first`, the
backlog is loaded only after every process is ready, that is after every member of its
groups holds its partitions (`bench.product.restart_with_backlog`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.product import restart_with_backlog


class _Process:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls
        self.env: dict[str, str] = {}
        self.log_path = Path("/nonexistent/service.log")

    def stop(self) -> None:
        self.calls.append("stop")

    def start(self) -> None:
        self.calls.append("start")

    def wait_ready(self) -> None:
        self.calls.append("ready")


class _Stack:
    def __init__(self, calls: list[str]) -> None:
        self.services = {"flow_executor": _Process(calls)}


def _order(*, settle_first: bool) -> list[str]:
    calls: list[str] = []

    async def load() -> None:
        calls.append("load")

    asyncio.run(
        restart_with_backlog(
            _Stack(calls),  # type: ignore[arg-type]
            "flow_executor",
            load,
            settle_first=settle_first,
        )
    )
    return calls


def test_a_settled_drain_loads_the_backlog_once_every_member_holds_its_partitions() -> None:
    assert _order(settle_first=True) == ["stop", "start", "ready", "load"]


def test_a_plain_restart_finds_its_backlog_waiting() -> None:
    assert _order(settle_first=False) == ["stop", "load", "start", "ready"]
