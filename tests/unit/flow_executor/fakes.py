"""In-memory stand-ins for the flow executor's ports, so its use cases run without
PostgreSQL or Kafka. `InMemoryFlowRepository` behaves as `PostgresFlowRepository` does:
tests/component/flow_executor/test_repository_contract.py runs one suite against both."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from services.flow_executor.bootstrap import Executor
from services.flow_executor.domain.erasure import ErasureHold
from services.flow_executor.domain.planning import RunEnd, Sent, StepExecution, Timer
from services.flow_executor.domain.runs import DueTimer, ProfileKey, ProfileState, Run, StepKey
from services.flow_executor.domain.sending_window import SendingSettings
from services.flow_executor.ports import (
    FlowDeletion,
    HeldReview,
    Observed,
    Resubscribed,
    ReviewRef,
    RunRef,
    SubjectQuery,
)
from shared.contracts import FlowDefinition, Message, utcnow

FLOW_DELETED = "Skipped: flow deleted"
SECRET = "unit-test-privacy-hash-secret-of-32-bytes"
ALL_DAY = SendingSettings(0, 24 * 60)
"""A window open at every hour: tests that are not about quiet hours (F8) set it for
their account so that they do not depend on the wall clock."""


def any_hour_repository() -> InMemoryFlowRepository:
    """The repository of `FakeWork`: account `acme` sends at any hour (F8 tests set
    their own window)."""
    return InMemoryFlowRepository(settings={"acme": ALL_DAY})


@dataclass
class _StoredFlow:
    flow: FlowDefinition
    deleted: bool = False


@dataclass
class _StoredTimer:
    due_at: datetime
    kind: str = "delay"
    fired_at: datetime | None = None
    outcome: str | None = None
    fired_by: str | None = None


@dataclass
class _StoredReview:
    held: HeldReview
    status: str = "in_review"
    decided_by: str | None = None


@dataclass
class _Reachability:
    consent: Any = None
    consent_at: datetime | None = None
    suppressions: Any = None
    suppressions_at: datetime | None = None
    # C17: slot -> (receipt id, the change's time)
    receipts: dict[str, tuple[str | None, datetime]] = field(default_factory=dict)


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    return value


def _json(value: Any) -> Any:
    """As the value comes back from a jsonb column."""
    return json.loads(value if isinstance(value, str) else json.dumps(value))


@dataclass
class InMemoryFlowRepository:
    """`ports.FlowRepository` in dictionaries. `now` is the database's clock."""

    now: Callable[[], datetime] = utcnow
    flows: dict[tuple[str, str], _StoredFlow] = field(default_factory=dict)
    rejections: dict[tuple[str, str, int], list[str]] = field(default_factory=dict)
    runs: dict[uuid.UUID, Run] = field(default_factory=dict)
    run_status: dict[uuid.UUID, str] = field(default_factory=dict)
    executions: dict[StepKey, StepExecution] = field(default_factory=dict)
    timers: dict[StepKey, _StoredTimer] = field(default_factory=dict)
    reviews: dict[str, _StoredReview] = field(default_factory=dict)
    profiles: dict[ProfileKey, tuple[dict[str, Any], datetime]] = field(default_factory=dict)
    reachability: dict[ProfileKey, _Reachability] = field(default_factory=dict)
    erased: dict[tuple[str, str], datetime] = field(default_factory=dict)
    resubscriptions: dict[tuple[str, str, str], datetime] = field(default_factory=dict)
    settings: dict[str, SendingSettings] = field(default_factory=dict)
    sent: dict[tuple[str, str, str], datetime] = field(default_factory=dict)
    locked: list[list[tuple[str, str, str]]] = field(default_factory=list)

    # --- definitions ---------------------------------------------------------------------

    async def save_flow(self, flow: FlowDefinition) -> bool:
        key = (flow.account_id, flow.flow_id)
        stored = self.flows.get(key)
        if stored is not None and not stored.deleted and stored.flow.version >= flow.version:
            return False
        self.flows[key] = _StoredFlow(FlowDefinition.model_validate(_json(flow.model_dump())))
        return True

    async def reject_flow(self, flow: FlowDefinition, errors: list[str]) -> None:
        self.rejections[(flow.account_id, flow.flow_id, flow.version)] = list(errors)

    async def delete_flow(self, account_id: str, flow_id: str) -> FlowDeletion:
        if (stored := self.flows.get((account_id, flow_id))) is not None:
            stored.deleted = True
        mine = {
            rid
            for rid, r in self.runs.items()
            if (r.account_id, r.flow_id) == (account_id, flow_id)
        }
        for (run_id, _), timer in self.timers.items():
            if run_id in mine and timer.fired_at is None:
                timer.fired_at, timer.outcome = self.now(), "cancelled"
        exited = []
        for run_id in mine:
            if self.run_status[run_id] == "active":
                self.run_status[run_id] = "exited"
                exited.append(RunRef(run_id, self.runs[run_id].profile_id))
        cancelled = []
        for review in self.reviews.values():
            h = review.held
            if (h.account_id, h.flow_id) == (account_id, flow_id) and review.status == "in_review":
                review.status, review.decided_by = "cancelled", "flow deleted"
                cancelled.append(ReviewRef(h.alert_id, h.run_id, h.step_id, h.profile_id))
                await self.set_execution(h.run_id, h.step_id, "skipped", FLOW_DELETED)
        return FlowDeletion(exited, cancelled)

    async def live_flows(self, accounts: Iterable[str]) -> dict[str, list[FlowDefinition]]:
        wanted = set(accounts)
        found: dict[str, list[FlowDefinition]] = {}
        for (account, _), stored in self.flows.items():
            if account in wanted and not stored.deleted:
                found.setdefault(account, []).append(stored.flow)
        return found

    async def flows_by_key(
        self, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], FlowDefinition]:
        return {
            k: self.flows[k].flow
            for k in set(keys)
            if k in self.flows and not self.flows[k].deleted
        }

    # --- runs and steps --------------------------------------------------------------------

    async def insert_runs(
        self, runs: Sequence[Run], ended: Mapping[uuid.UUID, str] | None = None
    ) -> set[uuid.UUID]:
        new = set()
        events = {(r.account_id, r.flow_id, r.event_id) for r in self.runs.values()}
        for r in runs:
            if r.run_id in self.runs or (r.account_id, r.flow_id, r.event_id) in events:
                continue
            trace = _json(r.trace) if r.trace is not None else None
            self.runs[r.run_id] = replace(r, context=_json(r.context), trace=trace)
            self.run_status[r.run_id] = (ended or {}).get(r.run_id, "active")
            events.add((r.account_id, r.flow_id, r.event_id))
            new.add(r.run_id)
        return new

    async def record_executions(self, rows: Sequence[StepExecution]) -> set[StepKey]:
        new = set()
        for r in rows:
            if r.key not in self.executions:
                self.executions[r.key] = r
                new.add(r.key)
        return new

    async def add_timers(self, rows: Sequence[Timer]) -> set[StepKey]:
        new = set()
        for r in rows:
            old = self.timers.get(r.key)
            if old is None or old.outcome == "fired":  # a fired one is armed again
                self.timers[r.key] = _StoredTimer(r.due_at, r.kind)
                new.add(r.key)
        return new

    async def add_reviews(self, rows: Sequence[HeldReview]) -> None:
        for r in rows:
            if r.alert_id not in self.reviews:
                held = replace(r, step=_json(r.step), request=_json(r.request))
                self.reviews[r.alert_id] = _StoredReview(held)

    async def finish_runs(self, rows: Sequence[RunEnd]) -> None:
        for r in rows:
            if self.run_status.get(r.run_id) == "active":
                self.run_status[r.run_id] = r.status

    async def claim_due_timers(self, limit: int, replica: str) -> list[DueTimer]:
        now = self.now()
        due = sorted(
            (t.due_at, key)
            for key, t in self.timers.items()
            if t.fired_at is None and t.due_at <= now and key[0] in self.runs
        )[:limit]
        claimed = []
        for _, (run_id, step_id) in due:
            timer = self.timers[(run_id, step_id)]
            timer.fired_at, timer.outcome, timer.fired_by = now, "fired", replica
            run = self.runs[run_id]
            claimed.append(
                DueTimer(
                    run_id,
                    step_id,
                    run.account_id,
                    run.flow_id,
                    run.profile_id,
                    run.trigger_type,
                    _json(run.context),
                    run.trace,
                    timer.kind,
                )
            )
        return claimed

    async def fail_next_due_timer(self, replica: str, reason: str) -> bool:
        now = self.now()
        due = sorted(
            (t.due_at, key)
            for key, t in self.timers.items()
            if t.fired_at is None and t.due_at <= now
        )
        if not due:
            return False
        timer = self.timers[due[0][1]]
        timer.fired_at, timer.outcome, timer.fired_by = now, f"failed: {reason}"[:2000], replica
        return True

    async def decide_review(self, alert_id: str, status: str, by: str) -> HeldReview | None:
        review = self.reviews.get(alert_id)
        if review is None or review.status != "in_review" or review.held.run_id not in self.runs:
            return None
        review.status, review.decided_by = status, by
        run = self.runs[review.held.run_id]
        return replace(review.held, profile_id=run.profile_id, trace=run.trace)

    async def set_execution(
        self, run_id: uuid.UUID, step_id: str, outcome: str, reason: str | None
    ) -> None:
        if (old := self.executions.get((run_id, step_id))) is not None:
            self.executions[(run_id, step_id)] = replace(old, outcome=outcome, reason=reason)

    # --- the read model ------------------------------------------------------------------

    async def upsert_profiles(self, rows: Sequence[Observed]) -> None:
        for r in rows:
            key, new = (r.account_id, r.profile_id), _json(r.value)
            stored = self.profiles.get(key)
            if stored is None:
                self.profiles[key] = (new, r.at)
                continue
            old, seen = stored
            fields = _strip_nulls({k: v for k, v in new.items() if k != "properties"})
            kept = _strip_nulls({k: v for k, v in old.items() if k != "properties"})
            props, known = new.get("properties") or {}, old.get("properties") or {}
            if seen > r.at:  # older data fills only what is not known yet
                merged = {**fields, **kept, "properties": {**props, **known}}
            else:
                merged = {**old, **fields, "properties": {**known, **props}}
            self.profiles[key] = (merged, max(seen, r.at))

    async def walk_state(self, keys: Iterable[ProfileKey]) -> dict[ProfileKey, ProfileState]:
        found = {}
        for key in set(keys):
            reach = self.reachability.get(key, _Reachability())
            profile = self.profiles.get(key)
            sent = {c: at for (a, p, c), at in self.sent.items() if (a, p) == key}
            found[key] = ProfileState(
                reach.consent,
                reach.suppressions or [],
                profile[0] if profile else None,
                last_sent=sent,
                receipts={slot: rid for slot, (rid, _) in reach.receipts.items()},
            )
        return found

    async def save_consent(self, rows: Sequence[Observed]) -> None:
        for r in rows:
            reach = self.reachability.setdefault((r.account_id, r.profile_id), _Reachability())
            if reach.consent_at is None or reach.consent_at <= r.at:
                reach.consent, reach.consent_at = _json(r.value), r.at

    async def save_receipts(self, rows: Sequence[Observed]) -> None:
        for r in rows:
            reach = self.reachability.setdefault((r.account_id, r.profile_id), _Reachability())
            for slot, receipt_id in _json(r.value).items():
                old = reach.receipts.get(slot)
                if old is None or old[1] <= r.at:
                    reach.receipts[slot] = (receipt_id, r.at)

    async def save_suppressions(self, rows: Sequence[Observed]) -> None:
        for r in rows:
            reach = self.reachability.setdefault((r.account_id, r.profile_id), _Reachability())
            if reach.suppressions_at is None or reach.suppressions_at <= r.at:
                reach.suppressions, reach.suppressions_at = _json(r.value), r.at

    # --- F8, F9 ----------------------------------------------------------------------------

    async def sending_settings(self, accounts: Iterable[str]) -> dict[str, SendingSettings]:
        return {a: self.settings[a] for a in set(accounts) if a in self.settings}

    async def save_sending_settings(self, account_id: str, settings: SendingSettings) -> None:
        self.settings[account_id] = settings

    async def lock_sending(self, keys: Iterable[tuple[str, str, str]]) -> None:
        """One batch at a time runs here: what a lock serialises in PostgreSQL is
        serial already. Remembered, so tests can see what was locked."""
        self.locked.append(sorted(set(keys)))

    async def note_sent(self, rows: Sequence[Sent]) -> None:
        for r in rows:
            key = (r.account_id, r.profile_id, r.channel)
            old = self.sent.get(key)
            self.sent[key] = r.at if old is None else max(old, r.at)

    # --- P2: erased subjects --------------------------------------------------------------

    async def hold_erased(self, account_id: str, subjects: Sequence[str], at: datetime) -> None:
        for s in subjects:
            old = self.erased.get((account_id, s))
            self.erased[(account_id, s)] = at if old is None else max(old, at)

    async def erasure_holds(self, queries: Sequence[SubjectQuery]) -> dict[ProfileKey, ErasureHold]:
        found: dict[ProfileKey, ErasureHold] = {}
        for q in queries:
            times = [t for s in q.subjects if (t := self.erased.get((q.account_id, s)))]
            if not times:
                continue
            again = {
                f: at
                for (a, p, f), at in self.resubscriptions.items()
                if (a, p) == (q.account_id, q.profile_id)
            }
            key = (q.account_id, q.profile_id)
            newest = max(times)
            if key in found:
                newest = max(newest, found[key].erased_at)
            found[key] = ErasureHold(newest, again)
        return found

    async def note_resubscribed(self, rows: Sequence[Resubscribed]) -> None:
        for r in rows:
            key = (r.account_id, r.profile_id, r.family)
            old = self.resubscriptions.get(key)
            self.resubscriptions[key] = r.at if old is None else max(old, r.at)


class OneRepository:
    """Every concern of `ports.FlowWork` (runs, reviews, profiles, sending, erasures)
    served by the one repository in `flows`, as `adapters.unit_of_work` binds it."""

    flows: Any

    @property
    def runs(self) -> Any:
        return self.flows

    @property
    def reviews(self) -> Any:
        return self.flows

    @property
    def profiles(self) -> Any:
        return self.flows

    @property
    def sending(self) -> Any:
        return self.flows

    @property
    def erasures(self) -> Any:
        return self.flows


@dataclass
class FakeWork(OneRepository):
    """`ports.FlowWork` over the in-memory repository (`flows`, which serves every
    concern of the port, as the PostgreSQL one does): what a batch published, and what
    it dead-lettered, in order. Nothing is rolled back: tests look at one batch. It has
    no privacy store: privacy requests are the shared use case's, tested with its own
    fakes."""

    flows: InMemoryFlowRepository = field(default_factory=lambda: any_hour_repository())
    secret: str | None = SECRET
    published: list[tuple[str, str | None, Message]] = field(default_factory=list)
    dead_letters: list[tuple[str, Any, str]] = field(default_factory=list)
    # The headers asked for with each message published (None: the batch's own).
    headers: list[tuple[str, Message, Mapping[str, str] | None]] = field(default_factory=list)

    def publish(
        self,
        topic: str,
        key: str | None,
        message: Message,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.published.append((topic, key, message))
        self.headers.append((topic, message, headers))

    def dead_letter(self, consumer: str, record: Any, error: str) -> None:
        self.dead_letters.append((consumer, record, error))

    def on(self, topic: str) -> list[Message]:
        """What was published on `topic`, in order."""
        return [m for t, _, m in self.published if t == topic]

    def take(self) -> list[tuple[str, str | None, Message]]:
        """What was published since the last `take` (one batch's outputs)."""
        out, self.published = self.published, []
        self.headers = []
        return out


def fake_executor(work: FakeWork | None = None) -> Executor:
    """`bootstrap.Executor` bound to fakes: every transaction gets `work`."""
    bound = work or FakeWork()
    return Executor(work=lambda _uow: bound, secret=bound.secret)  # type: ignore[arg-type,return-value]
