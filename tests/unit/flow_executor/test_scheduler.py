"""The delay scheduler's passes (F3) over fakes bound as bootstrap binds the real work:
a pass fires what is due, and a walk that keeps raising is set aside, one delay at a
time, instead of holding every due delay behind it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.flow_executor import handlers
from services.flow_executor.scheduler import Scheduler
from shared.contracts import topics, utcnow
from tests.unit.flow_executor.fakes import FakeWork, InMemoryFlowRepository, fake_executor
from tests.unit.flow_executor.flows import alert, event, flow
from tests.unit.flow_executor.test_handlers import received, saved


class _Transaction:
    committed = 0

    async def __aenter__(self) -> _Transaction:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        return None

    async def commit(self) -> None:
        _Transaction.committed += 1


class _Database:
    def uow(self) -> _Transaction:
        return _Transaction()


async def _waiting(profiles: int) -> FakeWork:
    repo = InMemoryFlowRepository()
    work = FakeWork(repo)
    delayed = [{"id": "wait", "type": "delay", "seconds": 60, "next": "alert"}, alert()]
    await saved(work, flow(delayed))
    for i in range(profiles):
        ev = event().model_copy(update={"event_id": f"e-{i}"})
        ev = ev.model_copy(update={"profile": ev.profile.model_copy(update={"id": f"p-{i}"})})
        await handlers.enter_from_events([received(ev)], work)
    work.take()
    repo.now = lambda: utcnow() + timedelta(seconds=61)
    return work


def _scheduler(work: FakeWork) -> Scheduler:
    return Scheduler(_Database(), fake_executor(work).work, batch=10, interval_s=0)  # type: ignore[arg-type]


async def test_f3_a_pass_fires_the_due_delays_and_commits() -> None:
    work = await _waiting(2)
    before = _Transaction.committed
    assert await _scheduler(work).fire(10) == 2
    assert len(work.on(topics.ALERT_REQUESTS)) == 2
    assert _Transaction.committed == before + 1


async def test_f3_a_walk_that_raises_is_set_aside_one_delay_at_a_time() -> None:
    work = await _waiting(2)

    async def broken(limit: int, replica: str) -> list[Any]:
        raise RuntimeError("boom")

    work.flows.claim_due_timers = broken  # type: ignore[method-assign]
    assert await _scheduler(work).fire_singly(10) == 2
    outcomes = [t.outcome for t in work.flows.timers.values()]
    assert outcomes == ["failed: RuntimeError: boom"] * 2
    assert work.on(topics.ALERT_REQUESTS) == []
