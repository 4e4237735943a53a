"""One contract for the flow executor's repository port, run against the in-memory fake
that the unit tests use and against PostgreSQL, so that the fake cannot drift from what
the database does (F1-F7 as the repository keeps them)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import pytest

from services.flow_executor import handlers
from services.flow_executor.adapters.repository import PostgresFlowRepository
from services.flow_executor.domain.erasure import ErasureHold, subjects
from services.flow_executor.domain.planning import RunEnd, Sent, StepExecution, Timer
from services.flow_executor.domain.runs import ProfileState, Run, new_run
from services.flow_executor.domain.sending_window import SendingSettings
from services.flow_executor.ports import (
    FlowRepository,
    HeldReview,
    Observed,
    Resubscribed,
    SubjectQuery,
)
from shared.contracts import FlowActivity, MessageRequested, ProfileEvent, utcnow
from shared.received import Received, Trace
from tests.unit.flow_executor.fakes import InMemoryFlowRepository, OneRepository
from tests.unit.flow_executor.flows import alert, event, flow

NOW = utcnow()


@pytest.fixture(params=["fake", "postgres"])
async def repo(request, pool) -> AsyncIterator[FlowRepository]:
    """The repository under contract; PostgreSQL's in a transaction rolled back after."""
    if request.param == "fake":
        yield InMemoryFlowRepository()
        return
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            yield PostgresFlowRepository(conn)
        finally:
            await tx.rollback()


@pytest.fixture
def acct() -> str:
    return f"rc-{uuid.uuid4().hex[:10]}"


def a_flow(acct: str, version: int = 1, flow_id: str = "nps", **extra):
    return flow([alert()], account_id=acct, flow_id=flow_id, version=version, **extra)


def a_run(acct: str, event_id: str = "e-1", flow_id: str = "nps") -> Run:
    context = {"event": {"score": 3}, "person": {"id": "p-1", "email": "ada@example.com"}}
    return new_run(a_flow(acct, flow_id=flow_id), event_id, "p-1", context, "metric")


async def test_f1_a_higher_version_replaces_a_lower_one_and_deleted_flows_are_gone(
    repo: FlowRepository, acct: str
) -> None:
    assert await repo.save_flow(a_flow(acct, 2))
    assert not await repo.save_flow(a_flow(acct, 1))
    assert not await repo.save_flow(a_flow(acct, 2))
    assert [f.version for f in (await repo.live_flows([acct]))[acct]] == [2]
    await repo.delete_flow(acct, "nps")
    assert await repo.live_flows([acct]) == {}
    assert await repo.flows_by_key([(acct, "nps")]) == {}
    assert await repo.save_flow(a_flow(acct, 1))  # re-created from any version
    assert (await repo.flows_by_key([(acct, "nps")]))[(acct, "nps")].version == 1


async def test_f2_a_run_is_inserted_once_per_flow_and_event(
    repo: FlowRepository, acct: str
) -> None:
    run = a_run(acct)
    assert await repo.insert_runs([run, a_run(acct, "e-2")]) == {
        run.run_id,
        a_run(acct, "e-2").run_id,
    }
    assert await repo.insert_runs([run]) == set()


async def test_f2_a_run_its_first_walk_ended_is_stored_ended_and_stays_so(
    repo: FlowRepository, acct: str
) -> None:
    """A run is stored with the status its first walk left it in: a run that walk ended
    is never active, so deleting its flow exits only the one still waiting (F1, F2); a
    second delivery of an ended run's event inserts nothing."""
    done, left, waiting = (a_run(acct, f"e-{n}") for n in (1, 2, 3))
    await repo.save_flow(a_flow(acct))
    ended = {done.run_id: "completed", left.run_id: "exited"}
    assert await repo.insert_runs([done, left, waiting], ended) == {
        done.run_id,
        left.run_id,
        waiting.run_id,
    }
    assert await repo.insert_runs([done], {}) == set()
    deletion = await repo.delete_flow(acct, "nps")
    assert [r.run_id for r in deletion.exited] == [waiting.run_id]


async def test_f4_executions_and_timers_report_only_new_keys(
    repo: FlowRepository, acct: str
) -> None:
    run = a_run(acct)
    await repo.insert_runs([run])
    done = StepExecution(run.run_id, "alert", acct, "nps", "executed")
    assert await repo.record_executions([done, done]) == {done.key}
    assert await repo.record_executions([done]) == set()
    timer = Timer(run.run_id, "wait", NOW + timedelta(hours=1))
    assert await repo.add_timers([timer]) == {timer.key}
    assert await repo.add_timers([timer]) == set()


async def test_f3_due_timers_are_claimed_once_in_due_order_with_their_run(
    repo: FlowRepository, acct: str
) -> None:
    runs = [a_run(acct, f"e-{i}") for i in range(3)]
    await repo.insert_runs(runs)
    await repo.add_timers(
        [
            Timer(runs[0].run_id, "wait", NOW - timedelta(minutes=1)),
            Timer(runs[1].run_id, "wait", NOW - timedelta(minutes=2)),
            Timer(runs[2].run_id, "wait", NOW + timedelta(hours=1)),
        ]
    )
    first = await repo.claim_due_timers(1, "r1")
    assert [(t.run_id, t.step_id) for t in first] == [(runs[1].run_id, "wait")]
    assert (first[0].account_id, first[0].flow_id, first[0].profile_id) == (acct, "nps", "p-1")
    assert (first[0].trigger_type, first[0].context) == ("metric", runs[1].context)
    assert [t.run_id for t in await repo.claim_due_timers(10, "r1")] == [runs[0].run_id]
    assert await repo.claim_due_timers(10, "r1") == []


async def test_f3_a_timer_set_aside_is_not_claimed_again(repo: FlowRepository, acct: str) -> None:
    """The scheduler sets aside the earliest due delay whose walk keeps raising; the
    next pass claims the others, and nothing is left to set aside."""
    runs = [a_run(acct, f"e-{i}") for i in range(2)]
    await repo.insert_runs(runs)
    await repo.add_timers(
        [
            Timer(runs[0].run_id, "wait", NOW - timedelta(days=2)),
            Timer(runs[1].run_id, "wait", NOW - timedelta(days=1)),
        ]
    )
    assert await repo.fail_next_due_timer("r1", "RuntimeError: boom") is True
    assert [t.run_id for t in await repo.claim_due_timers(10, "r1")] == [runs[1].run_id]
    assert await repo.fail_next_due_timer("r1", "RuntimeError: boom") is False


def _held(run: Run) -> HeldReview:
    return HeldReview(
        f"{run.run_id}:alert",
        run.run_id,
        "alert",
        run.account_id,
        run.flow_id,
        run.profile_id,
        {"id": "alert", "type": "internal_alert"},
        {"alert_id": f"{run.run_id}:alert"},
    )


async def test_f5_a_held_review_is_decided_once(repo: FlowRepository, acct: str) -> None:
    run = a_run(acct)
    await repo.insert_runs([run])
    await repo.record_executions([StepExecution(run.run_id, "alert", acct, "nps", "in_review")])
    held = _held(run)
    await repo.add_reviews([held])
    assert await repo.decide_review(held.alert_id, "approved", "lead") == held
    assert await repo.decide_review(held.alert_id, "rejected", "lead") is None
    assert await repo.decide_review("unknown", "approved", "lead") is None


async def test_x4_a_runs_trace_comes_back_with_its_due_timer_and_its_decided_review(
    repo: FlowRepository, acct: str
) -> None:
    trace = {"correlation_id": "c-1", "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}
    traced, untraced = replace(a_run(acct), trace=trace), a_run(acct, "e-2")
    await repo.insert_runs([traced, untraced])
    await repo.add_timers(
        [Timer(r.run_id, "wait", NOW - timedelta(minutes=1)) for r in (traced, untraced)]
    )
    due = {t.run_id: t.trace for t in await repo.claim_due_timers(10, "r1")}
    assert due == {traced.run_id: trace, untraced.run_id: None}
    await repo.add_reviews([_held(traced)])
    decided = await repo.decide_review(_held(traced).alert_id, "approved", "lead")
    assert decided is not None
    assert decided.trace == trace


async def test_f1_deleting_a_flow_ends_active_runs_cancels_delays_and_reviews(
    repo: FlowRepository, acct: str
) -> None:
    waiting, held, done = a_run(acct, "e-1"), a_run(acct, "e-2"), a_run(acct, "e-3")
    await repo.save_flow(a_flow(acct))
    await repo.insert_runs([waiting, held, done])
    await repo.finish_runs([RunEnd(done.run_id, "completed"), RunEnd(held.run_id, "completed")])
    await repo.add_timers([Timer(waiting.run_id, "wait", NOW - timedelta(minutes=1))])
    await repo.add_reviews([_held(held)])
    deletion = await repo.delete_flow(acct, "nps")
    assert [(r.run_id, r.profile_id) for r in deletion.exited] == [(waiting.run_id, "p-1")]
    assert [(r.alert_id, r.step_id) for r in deletion.cancelled] == [
        (_held(held).alert_id, "alert")
    ]
    assert await repo.claim_due_timers(10, "r1") == []
    assert await repo.decide_review(_held(held).alert_id, "approved", "lead") is None
    await repo.finish_runs([RunEnd(waiting.run_id, "completed")])  # ended already: no change


async def test_f3_profiles_merge_newest_fields_and_properties_key_by_key(
    repo: FlowRepository, acct: str
) -> None:
    key = (acct, "p-1")
    assert (await repo.walk_state([key]))[key] == ProfileState(None, [], None)
    await repo.upsert_profiles(
        [
            Observed(acct, "p-1", {"id": "p-1", "email": "a@x.test", "properties": {"a": 1}}, NOW),
            Observed(acct, "p-1", {"id": "p-1", "email": None, "properties": {"b": 2}}, NOW),
        ]
    )
    # Older data fills what is not known yet and replaces nothing (F3).
    older = (
        '{"id": "p-1", "email": "old@x.test", "first_name": "Ada", "properties": {"a": 0, "c": 3}}'
    )
    await repo.upsert_profiles([Observed(acct, "p-1", older, NOW - timedelta(days=1))])
    profile = (await repo.walk_state([key]))[key].profile
    assert profile == {
        "id": "p-1",
        "email": "a@x.test",
        "first_name": "Ada",
        "properties": {"a": 1, "b": 2, "c": 3},
    }
    # ... and the newest time stays the one later data is compared with.
    newer = {"id": "p-1", "first_name": "Adele", "properties": {}}
    await repo.upsert_profiles([Observed(acct, "p-1", newer, NOW + timedelta(seconds=1))])
    assert (await repo.walk_state([key]))[key].profile["first_name"] == "Adele"


async def test_f3_a_profile_is_written_only_when_the_merge_changes_it_or_is_newer(
    pool, acct: str
) -> None:
    """Most events repeat the profile as stored: they cost a lookup, not a row (the
    row's `xmin` is the transaction that last wrote it). Newer data, or older data that
    fills an unknown field, is still written."""
    ada = {"id": "p-1", "email": "a@x.test", "properties": {"a": 1}}

    async def write(value: Any, at) -> int:
        async with pool.acquire() as conn:
            await PostgresFlowRepository(conn).upsert_profiles([Observed(acct, "p-1", value, at)])
            return int(
                await conn.fetchval(
                    "SELECT xmin::text FROM profiles WHERE account_id = $1 AND profile_id = 'p-1'",
                    acct,
                )
            )

    first = await write(ada, NOW)
    assert await write(ada, NOW) == first  # the same data at the same time
    assert await write({**ada, "properties": {}}, NOW) == first  # nothing new in it
    assert await write({**ada, "email": "old@x.test"}, NOW - timedelta(days=1)) == first
    filled = await write({"id": "p-1", "first_name": "Ada"}, NOW - timedelta(days=1))
    assert filled != first  # older, but fills what was unknown
    assert await write(ada, NOW + timedelta(seconds=1)) != filled  # newer: the time moves


async def test_f7_consent_and_suppressions_keep_the_newest(repo: FlowRepository, acct: str) -> None:
    key = (acct, "p-1")
    await repo.save_consent([Observed(acct, "p-1", {"email": {"status": "unsubscribed"}}, NOW)])
    await repo.save_consent(
        [Observed(acct, "p-1", {"email": {"status": "subscribed"}}, NOW - timedelta(hours=1))]
    )
    suppressed = [{"channel": "email", "reason": "hard_bounce"}]
    await repo.save_suppressions([Observed(acct, "p-1", suppressed, NOW)])
    await repo.save_suppressions([Observed(acct, "p-1", [], NOW - timedelta(hours=1))])
    state = (await repo.walk_state([key]))[key]
    assert state.consent == {"email": {"status": "unsubscribed"}}
    assert state.suppressions == suppressed
    assert state.profile is None


SECRET = "contract-test-privacy-hash-secret-32-bytes"


async def test_p2_i1_an_erased_subject_holds_every_profile_that_carries_it(
    repo: FlowRepository, acct: str
) -> None:
    erased = subjects(SECRET, "p-1", ["Ada@Example.com"], ["+15555550100"])
    await repo.hold_erased(acct, erased, NOW)
    queries = [
        SubjectQuery(acct, "p-1", subjects(SECRET, "p-1")),
        SubjectQuery(acct, "p-2", subjects(SECRET, "p-2", [" ADA@example.COM "])),
        SubjectQuery(acct, "p-3", subjects(SECRET, "p-3", [], ["+1 555 555 0100"])),
        SubjectQuery(acct, "p-4", subjects(SECRET, "p-4", ["bob@example.com"])),
        SubjectQuery("another-account", "p-1", subjects(SECRET, "p-1")),
    ]
    holds = await repo.erasure_holds(queries)
    assert holds == {(acct, p): ErasureHold(NOW, {}) for p in ("p-1", "p-2", "p-3")}
    assert await repo.erasure_holds([]) == {}


async def test_p2_a_later_erase_moves_the_hold_and_resubscriptions_keep_the_newest(
    repo: FlowRepository, acct: str
) -> None:
    erased = subjects(SECRET, "p-1", ["ada@example.com"])
    await repo.hold_erased(acct, erased, NOW)
    await repo.hold_erased(acct, erased, NOW + timedelta(hours=1))
    await repo.hold_erased(acct, erased, NOW - timedelta(hours=1))  # an older one: no move
    later = NOW + timedelta(hours=2)
    await repo.note_resubscribed(
        [
            Resubscribed(acct, "p-1", "email", later),
            Resubscribed(acct, "p-1", "email", NOW),
            Resubscribed(acct, "p-1", "sms", NOW),
            Resubscribed(acct, "p-2", "email", later),
        ]
    )
    await repo.note_resubscribed([Resubscribed(acct, "p-1", "sms", NOW - timedelta(days=1))])
    [(key, hold)] = (await repo.erasure_holds([SubjectQuery(acct, "p-1", erased)])).items()
    assert key == (acct, "p-1")
    assert hold.erased_at == NOW + timedelta(hours=1)
    assert dict(hold.resubscribed) == {"email": later, "sms": NOW}


async def test_f8_a_quiet_hours_hold_is_a_timer_fired_once_and_armed_again_when_asked(
    repo: FlowRepository, acct: str
) -> None:
    run = a_run(acct)
    await repo.insert_runs([run])
    due = NOW - timedelta(seconds=1)
    assert await repo.add_timers([Timer(run.run_id, "text", due, "quiet_hours")]) == {
        (run.run_id, "text")
    }
    assert await repo.add_timers([Timer(run.run_id, "text", due, "quiet_hours")]) == set()
    [claimed] = await repo.claim_due_timers(10, "r1")
    assert (claimed.step_id, claimed.kind) == ("text", "quiet_hours")
    assert await repo.claim_due_timers(10, "r1") == []
    # Held again at its release (the walk the firing started asks for it): armed again.
    again = Timer(run.run_id, "text", due, "quiet_hours")
    assert await repo.add_timers([again]) == {(run.run_id, "text")}
    assert [t.kind for t in await repo.claim_due_timers(10, "r1")] == ["quiet_hours"]


async def test_f9_the_newest_message_sent_per_channel_is_in_the_walk_state(
    repo: FlowRepository, acct: str
) -> None:
    earlier, later = NOW - timedelta(hours=2), NOW - timedelta(hours=1)
    await repo.note_sent([Sent(acct, "p-1", "sms", later), Sent(acct, "p-1", "email", earlier)])
    await repo.note_sent([Sent(acct, "p-1", "sms", earlier)])  # older: ignored
    state = await repo.walk_state([(acct, "p-1"), (acct, "p-2")])
    assert dict(state[(acct, "p-1")].last_sent) == {"sms": later, "email": earlier}
    assert dict(state[(acct, "p-2")].last_sent) == {}


async def test_f8_sending_settings_are_kept_per_account(repo: FlowRepository, acct: str) -> None:
    assert await repo.sending_settings([acct]) == {}
    chosen = SendingSettings(9 * 60, 24 * 60, "Europe/Berlin", True)
    await repo.save_sending_settings(acct, chosen)
    await repo.save_sending_settings(acct, chosen)
    assert await repo.sending_settings([acct, "other"]) == {acct: chosen}


async def test_c17_the_receipt_of_the_newest_change_per_slot_is_in_the_walk_state(
    repo: FlowRepository, acct: str
) -> None:
    key = (acct, "p-1")
    earlier = NOW - timedelta(hours=1)
    await repo.save_receipts([Observed(acct, "p-1", {"email": "r-2"}, NOW)])
    await repo.save_receipts(
        [
            Observed(acct, "p-1", {"email": "r-1", "list:news": "r-list"}, earlier),  # late
            Observed(acct, "p-2", {"sms_marketing": "r-sms"}, earlier),
        ]
    )
    await repo.save_receipts(
        [Observed(acct, "p-2", {"sms_marketing": None, "sms_transactional": None}, NOW)]
    )
    state = await repo.walk_state([key, (acct, "p-2"), (acct, "p-3")])
    assert dict(state[key].receipts) == {"email": "r-2", "list:news": "r-list"}
    assert dict(state[(acct, "p-2")].receipts) == {
        "sms_marketing": None,
        "sms_transactional": None,
    }
    assert dict(state[(acct, "p-3")].receipts) == {}
    await repo.save_consent([Observed(acct, "p-1", {"email": {"status": "subscribed"}}, NOW)])
    assert dict((await repo.walk_state([key]))[key].receipts)["email"] == "r-2"


@dataclass
class _Batch(OneRepository):
    """`ports.FlowWork` on one PostgreSQL transaction, keeping what it publishes."""

    flows: PostgresFlowRepository
    secret: str | None = None
    published: list[Any] = field(default_factory=list)

    def publish(self, topic: str, key: str | None, message: Any, headers: Any = None) -> None:
        self.published.append(message)

    def dead_letter(self, consumer: str, record: Any, error: str) -> None:
        raise AssertionError(error)


def _event(acct: str, metric: str) -> ProfileEvent:
    return event().model_copy(
        update={"account_id": acct, "metric": metric, "event_id": f"e-{uuid.uuid4().hex}"}
    )


async def test_f9_the_scheduler_and_an_event_batch_sending_to_one_profile_send_once(
    pool, acct: str
) -> None:
    """A delay of one flow falls due while an event enters another flow with a mail for
    the same profile: the scheduler's walk waits for the event batch's lock on (account,
    profile, email), then sees its send and skips (F9). Without the lock both read
    "nothing sent" and both mail."""
    mail = {"id": "mail", "type": "email", "template_id": "t-1", "next": None}
    wait = {"id": "wait", "type": "delay", "seconds": 3600, "next": "mail"}
    later = flow([wait, mail], account_id=acct, flow_id="later", trigger=_metric("Later"))
    now_ = flow([mail], account_id=acct, flow_id="now", trigger=_metric("Now"))
    async with pool.acquire() as conn:
        repo = PostgresFlowRepository(conn)
        for f in (later, now_):
            await repo.save_flow(f)
        await handlers.enter_from_events([_received(_event(acct, "Later"))], _Batch(repo))
        await conn.execute(
            "UPDATE timers t SET due_at = now() - interval '1 second' FROM runs r"
            " WHERE r.run_id = t.run_id AND r.account_id = $1",
            acct,
        )
    async with pool.acquire() as first_conn, pool.acquire() as second_conn:
        first, second = _Batch(PostgresFlowRepository(first_conn)), None
        tx = first_conn.transaction()
        await tx.start()
        await handlers.enter_from_events([_received(_event(acct, "Now"))], first)

        async def fire() -> int:
            nonlocal second
            async with second_conn.transaction():
                second = _Batch(PostgresFlowRepository(second_conn))
                return await handlers.fire_due_timers(second, 1000, "r-test")

        scheduler = asyncio.create_task(fire())
        await asyncio.sleep(0.3)
        assert not scheduler.done()  # waiting for the event batch's lock
        await tx.commit()
        assert await scheduler >= 1
    sent = [m for m in first.published + second.published if isinstance(m, MessageRequested)]
    assert [(m.flow_id, m.profile_id) for m in sent] == [("now", "p-1")]
    skipped = [
        m
        for m in second.published
        if isinstance(m, FlowActivity) and m.type == "skipped" and m.account_id == acct
    ]
    assert [(m.flow_id, m.reason) for m in skipped] == [("later", "Skipped: smart sending")]


async def test_f2_an_entering_run_its_walk_ends_is_one_row_and_a_redelivery_writes_none(
    pool, acct: str
) -> None:
    """Events that enter a flow whose walk ends the run at once (one alert step): each
    run is written once, already completed, by the one statement that inserts the runs:
    no statement updates a run afterwards. The same events delivered again enter no run,
    record no step and publish nothing (F2, F4). The statements are PostgreSQL's own, as
    the connection sent them."""
    events = [_event(acct, "Left NPS Score") for _ in range(5)]
    sent: list[str] = []
    async with pool.acquire() as conn:
        work = _Batch(PostgresFlowRepository(conn))
        async with conn.transaction():
            await work.flows.save_flow(a_flow(acct))
        conn.add_query_logger(lambda q: sent.append(" ".join(q.query.split())))
        for delivery in ("first", "again"):
            work.published.clear()
            sent.clear()
            async with conn.transaction():
                await handlers.enter_from_events([_received(e) for e in events], work)
            touching_runs = [
                q.split(" (")[0] for q in sent if q.startswith(("INSERT INTO runs", "UPDATE runs"))
            ]
            assert touching_runs == ["INSERT INTO runs"], delivery
            if delivery == "first":
                assert {type(m).__name__ for m in work.published} == {
                    "AlertRequested",
                    "FlowActivity",
                }
            else:
                assert work.published == []
        statuses = await conn.fetch("SELECT status FROM runs WHERE account_id = $1", acct)
        steps = await conn.fetchval(
            "SELECT count(*) FROM step_executions WHERE account_id = $1", acct
        )
    assert [r["status"] for r in statuses] == ["completed"] * 5
    assert steps == 5


def _metric(name: str) -> dict[str, Any]:
    return {"type": "metric", "metric": name}


def _received(message: Any) -> Received[Any]:
    return Received(message, None, Trace("test"))  # type: ignore[arg-type]
