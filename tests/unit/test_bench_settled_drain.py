"""The bench's executor drains start from a settled group: with `settle_first`, the
backlog is loaded only after every process is ready, that is after every member of its
groups holds its partitions (`bench.product.restart_with_backlog`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.product import restart_with_backlog


class _Process:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls
        self.name = "flow_executor"
        self.env: dict[str, str] = {}
        self.log_path = Path("/nonexistent/service.log")

    def stop(self) -> None:
        self.calls.append("stop")

    def start(self) -> None:
        self.calls.append("start")

    def wait_ready(self, timeout_s: float = 60.0) -> None:
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


def test_a_replica_that_never_gets_ready_is_stopped_not_left_running(monkeypatch) -> None:
    """The extra replicas are the bench's own processes, not the stack's: a start that
    fails stops them before the error goes on (one was left running after a failed run,
    without its broker)."""
    calls: list[str] = []

    class _Late(_Process):
        def __init__(self, *args: object) -> None:
            super().__init__(calls)

        def start(self) -> None:
            calls.append("start extra")

        def wait_ready(self, timeout_s: float = 60.0) -> None:
            raise TimeoutError("flow_executor not ready after 60.0s")

        def stop(self) -> None:
            calls.append("stop extra")

    monkeypatch.setattr("bench.product.ServiceProcess", _Late)

    async def load() -> None:
        calls.append("load")

    with pytest.raises(TimeoutError):
        asyncio.run(
            restart_with_backlog(
                _Stack(calls),  # type: ignore[arg-type]
                "flow_executor",
                load,
                replicas=2,
                settle_first=True,
            )
        )
    assert calls == ["stop", "start", "start extra", "ready", "stop extra"]
