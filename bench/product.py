"""Measuring consentflow itself on the embedded stack: flow-executor intake, alert mails,
consent commands, and event → outcome latency at fixed offered loads."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tools.devstack import EmbeddedStack, free_port
from tools.devstack.stack import ServiceProcess

ACCOUNT = "bench"
RUN_NAMESPACE = uuid.UUID("6f1c2b1e-7d1a-4c47-9f0e-0c7f3b1f5a10")  # as the flow executor
RECIPIENTS = ["oncall@acme.test", "lead@acme.test"]


def flow() -> dict[str, Any]:
    """One metric flow: score <= 1 (10 % of bench events) raises an alert."""
    return {
        "account_id": ACCOUNT,
        "flow_id": "detractors",
        "version": 1,
        "name": "Detractors",
        "trigger": {
            "type": "metric",
            "metric": "Left NPS Score",
            "filter": {"property": "score", "op": "lte", "value": 0},
        },
        "steps": [
            {
                "id": "alert",
                "type": "internal_alert",
                "mode": "live",
                "recipients": RECIPIENTS,
                "from_email": "alerts@acme.test",
                "subject": "Detractor {{ person.email }}",
                "body": "{{ person.first_name }} scored {{ event.score }}",
                "next": None,
            }
        ],
    }


def event(
    n: int, tag: str, triggering: bool, metric: str = "Left NPS Score"
) -> tuple[bytes, bytes, str]:
    """A profile event of `metric` (the bench flow listens to "Left NPS Score");
    `triggering` ones pass the flow's filter and raise an alert."""
    pid = f"p-{n % 5000}"
    event_id = f"{tag}-{n}"
    value = {
        "event_id": event_id,
        "account_id": ACCOUNT,
        "metric": metric,
        "profile": {"id": pid, "email": f"{pid}@example.com", "first_name": "Ada"},
        "properties": {"score": 0 if triggering else 7},
        "time": "2026-11-23T10:00:00Z",
    }
    return pid.encode(), json.dumps(value).encode(), event_id


def consent_command(n: int, tag: str = "c") -> tuple[bytes, bytes]:
    """An SMS form subscribe of a new profile (each `n` and `tag` is a new person): every
    one changes consent, so every one is published as a consent change."""
    pid = f"{tag}-{n}"
    value = {
        "command_id": f"bench-{tag}-{n}",
        "account_id": ACCOUNT,
        "profile": {"id": pid, "phone_number": f"+1555{n:07d}"},
        "action": "subscribe",
        "channel": "sms",
        "method": "form",
        "consented_at": "2026-11-23T10:00:00Z",
    }
    return pid.encode(), json.dumps(value).encode()


def alert_id_of(event_id: str) -> str:
    run = uuid.uuid5(RUN_NAMESPACE, f"{ACCOUNT}:detractors:{event_id}")
    return f"{run}:alert"


class Follower:
    """Reads topics from the beginning in the background and records arrival times, with
    each record's JSON value, or only the time for the topics in `timed_only`: values
    the bench never reads are not parsed (in (c), parsing every consent change cost the
    bench more CPU per message than the broker)."""

    def __init__(
        self, bootstrap: str, topic_names: list[str], *, timed_only: Collection[str] = ()
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = topic_names
        self.timed_only = frozenset(timed_only)
        self.arrivals: dict[str, list[tuple[float, Any]]] = {t: [] for t in topic_names}
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20
        )
        await consumer.start()
        try:
            parts = [
                TopicPartition(t, p)
                for t in self.topics
                for p in consumer.partitions_for_topic(t) or ()
            ]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=100, max_records=10000)
                now = time.perf_counter()
                for tp, records in batch.items():
                    if tp.topic in self.timed_only:
                        self.arrivals[tp.topic] += [(now, None)] * len(records)
                    else:
                        self.arrivals[tp.topic] += [(now, json.loads(r.value)) for r in records]
        finally:
            await consumer.stop()

    def count(self, topic: str, pred: Callable[[Any], bool] | None = None) -> int:
        """How many records of `topic` arrived (that `pred` holds for)."""
        if pred is None:
            return len(self.arrivals[topic])
        return sum(1 for _, v in self.arrivals[topic] if pred(v))

    async def stop(self) -> None:
        self._stop.set()
        if self._task:
            await self._task


async def wait_for(probe: Callable[[], bool], timeout_s: float, what: str) -> float:
    deadline = time.monotonic() + timeout_s
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench: timed out waiting for {what}")
        await asyncio.sleep(0.02)
    return time.perf_counter()


def steady_rate(samples: list[tuple[float, int]], base: int, target: int) -> float:
    """Messages per second between the moments a tenth and nine tenths of the work from
    `base` to `target` were done, from `(time, done so far)` samples in time order.

    Timed from the first commit or output instead, a consumer of several members (or
    replicas) looks faster than it is: their first batches were under way before the
    clock started and count in full. The middle of the drain is their steady state."""
    low = base + (target - base) // 10
    high = base + (target - base) * 9 // 10
    start = next(s for s in samples if s[1] >= low)
    end = next(s for s in samples if s[1] >= high)
    if end[0] <= start[0]:
        # The tenth and the nine tenths were done by the same batch: there is no steady
        # middle to time. Say so rather than print an infinite rate.
        print(
            f"bench: {target - base:,} messages drained in too few batches to time their"
            " steady middle; give --events or --consent 20000 or more",
            file=sys.stderr,
            flush=True,
        )
        return float("nan")
    return (end[1] - start[1]) / (end[0] - start[0])


def _partitions(topic: str, count: int) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in range(count)]


async def _committed(admin: AIOKafkaAdminClient, group: str, parts: list[TopicPartition]) -> int:
    """The offsets `group` has committed on `parts`, in all."""
    offsets = await admin.list_consumer_group_offsets(group, partitions=parts)
    return sum(max(o.offset, 0) for o in offsets.values())


async def committed(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    """How many offsets `group` has committed on `topic` in all: what a phase that
    starts now finds done already (a service may apply its first batches while the
    bench waits for it to be ready), so that its costs are divided by what it did."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await _committed(admin, group, _partitions(topic, partitions))
    finally:
        await admin.close()


async def drain_rate(
    bootstrap: str, group: str, topic: str, partitions: int, target: int, timeout_s: float
) -> float:
    """Messages per second at which `group` commits its way to `target` on `topic`, in
    the steady middle of the drain (`steady_rate`: process start and group join are not
    counted, nor the first batches of several members)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    parts = _partitions(topic, partitions)
    try:
        samples: list[tuple[float, int]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            done = await _committed(admin, group, parts)
            samples.append((time.perf_counter(), done))
            if done >= target:
                return steady_rate(samples, samples[0][1], target)
            await asyncio.sleep(0.02)
        raise TimeoutError(f"bench: {group} did not reach {target} on {topic}")
    finally:
        await admin.close()


async def wait_committed(
    bootstrap: str, group: str, topic: str, partitions: int, target: int, timeout_s: float
) -> None:
    """Wait until `group` has committed `target` offsets on `topic` in all."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    parts = _partitions(topic, partitions)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if await _committed(admin, group, parts) >= target:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"bench: {group} did not reach {target} on {topic}")
    finally:
        await admin.close()


async def paced(
    producer: AIOKafkaProducer, topic: str, messages: list[tuple[bytes, bytes, str]], rate: float
) -> dict[str, float]:
    """Publish at `rate` messages/s; returns the send time per event id."""
    sent: dict[str, float] = {}
    started = time.perf_counter()
    for n, (key, value, event_id) in enumerate(messages):
        due = started + n / rate
        if (delay := due - time.perf_counter()) > 0.002:
            await asyncio.sleep(delay)
        sent[event_id] = time.perf_counter()
        await producer.send(topic, value, key=key)
    await producer.flush()
    return sent


async def mail_steps(
    conn: asyncpg.Connection, schema: str, fed: dict[str, float], seen: dict[str, float]
) -> dict[str, list[float]]:
    """Where each alert's time goes, p50 and p99 in ms, by the times the dispatcher's
    database recorded: fed (given to its consumer, or seen on `alert-requests`) → its
    mails queued (the consumer's transaction) → the last of them written as sent → the
    alert completed (the hook's transaction began) → its outcome seen (`seen`)."""
    rows = await conn.fetch(
        f"SELECT a.alert_id, extract(epoch FROM min(m.created_at)) AS queued,"
        f" extract(epoch FROM max(m.sent_at)) AS sent,"
        f" extract(epoch FROM a.completed_at) AS completed"
        f" FROM {schema}.alerts a JOIN {schema}.alert_deliveries d USING (alert_id)"
        f" JOIN {schema}.mail_queue m ON m.id = d.mail_id"
        f" WHERE a.alert_id = ANY($1::text[]) GROUP BY a.alert_id, a.completed_at",
        list(fed),
    )
    parts: dict[str, list[float]] = {"queued": [], "sent": [], "completed": [], "seen": []}
    for r in rows:
        a = r["alert_id"]
        if a not in seen or None in (r["queued"], r["sent"], r["completed"]):
            continue
        marks = [fed[a], float(r["queued"]), float(r["sent"]), float(r["completed"]), seen[a]]
        for name, (t0, t1) in zip(parts, itertools.pairwise(marks), strict=True):
            parts[name].append(t1 - t0)
    return p50_p99_ms(parts)


def request_steps(
    arrivals: list[tuple[float, dict[str, Any]]],
    want: dict[str, str],
    sent: dict[str, float],
) -> dict[str, list[float]]:
    """Where event → alert request goes, p50 and p99 in ms: the event sent → the
    executor decided (the request's `requested_at`, stamped while its batch is applied:
    the first hop, the fetch and the batch before it) → the request seen on
    `alert-requests` (the rest of the batch, its commit, the outbox relay, the second
    hop). `arrivals`: (`time.perf_counter()`, request) as `Follower` records them;
    `want`: event id by alert id; `sent`: `perf_counter` by event id. The wall clock
    of `requested_at` is put on `perf_counter`'s by their offset now (one machine)."""
    offset = time.time() - time.perf_counter()
    parts: dict[str, list[float]] = {"decided": [], "on_topic": []}
    for seen, v in arrivals:
        event_id = want.get(v.get("alert_id", ""))
        if event_id is None or event_id not in sent or not v.get("requested_at"):
            continue
        decided = datetime.fromisoformat(v["requested_at"]).timestamp() - offset
        parts["decided"].append(decided - sent[event_id])
        parts["on_topic"].append(seen - decided)
    return p50_p99_ms(parts)


def p50_p99_ms(parts: dict[str, list[float]]) -> dict[str, list[float]]:
    """[p50, p99] in ms of each step's durations (seconds), steps without any left out."""
    out = {}
    for name, values in parts.items():
        if values:
            pct = percentiles(values)
            out[name] = [round(pct["p50"] * 1000, 1), round(pct["p99"] * 1000, 1)]
    return out


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99)}


READY_S = 180.0
"""How long the bench waits for a started service to be ready. On the embedded broker a
process started a few seconds after the last one stopped sometimes finds its groups
rebalancing for about a minute (each SyncGroup answered `REBALANCE_IN_PROGRESS`, led by
a member id of the process before), where a start takes 2–3 s otherwise; the devstack's
60 s ended runs there. The wait is outside every timed phase."""
SLOW_START_S = 15.0


async def start_ready(procs: Sequence[ServiceProcess], timeout_s: float = READY_S) -> None:
    """Start `procs` and wait until each is ready, saying so when one took long."""
    started = time.monotonic()
    for proc in procs:
        proc.start()
    for proc in procs:
        await asyncio.to_thread(proc.wait_ready, timeout_s)
    took = time.monotonic() - started
    if took > SLOW_START_S:
        names = ", ".join(p.name for p in procs)
        print(f"    ({names} took {took:.0f} s to be ready: group joins)", flush=True)


async def restart_with_backlog(
    stack: EmbeddedStack,
    service: str,
    load: Callable,
    replicas: int = 1,
    *,
    settle_first: bool = False,
) -> list[ServiceProcess]:
    """Stop `service`, let `load()` fill its input topic, and start it again with
    `replicas` processes in its consumer group, so that the measurement is of draining a
    backlog (as the raw loop does). Returns the extra replicas, for the caller to stop.

    `settle_first`: start the processes and wait until every member of their groups
    holds its partitions (each is ready), then `load()`: the drain is then measured with
    the group settled, as the service runs. Measured on the embedded broker: in half of
    the starts one of the executor's two members got its partitions about a second
    after the other (999, 1,001 ms); with the backlog loaded first, the first member
    had drained its own partitions alone by then, and the drain timed one member at a
    time."""
    svc = stack.services[service]
    svc.stop()
    if not settle_first:
        await load()
    extra = [
        ServiceProcess(
            service,
            svc.env,
            svc.log_path.with_name(f"{service}-{n}.log"),
            free_port(),
        )
        for n in range(1, replicas)
    ]
    try:
        await start_ready([svc, *extra])
    except BaseException:
        # The stack stops its own processes; the extra replicas are only known here.
        for proc in extra:
            proc.stop()
        raise
    if settle_first:
        await load()
    return extra


def stack_pids(stack: EmbeddedStack) -> dict[str, int]:
    return {n: s.proc.pid for n, s in stack.services.items() if s.proc is not None}
