"""`python -m bench`: measure consentflow on the embedded stack, in one run.

(a) raw ceiling: aiokafka consume → JSON parse → produce on the same broker/partitions;
(b) the main job: profile-events through the flow executor (intake: decisions and
    PostgreSQL writes committed) and on through the dispatcher to alert-outcomes;
(c) consent commands through the consent service to consent-changes;
(d) raw aiosmtplib send loop to the same SMTP server (ceiling for alert mail);
plus event → outcome latency at fixed offered loads, peak RSS per service, each main
consumer's cost per message by stage (decode, decide, persist, publish; `bench.stages`),
and the cores the whole stack uses with no load at all (its consumers polling) and under
each offered load. The SMTP server is the capture server, or with `--smtp-sink` Postfix's
smtp-sink once the recipients are confirmed (`bench.smtp_servers`).

Each phase also says where the time goes: CPU seconds per 1,000 messages of every process
(from its own CPU times), PostgreSQL statements and rows per batch (`pg_stat_statements`),
and a py-spy flame graph of the service under load. A service's measured drain runs with
the services downstream of it stopped (they drain their backlog afterwards, measured on
their own), so that CPU and statements belong to one service.
Results go to bench/results/latest.json, latest.png and flame-<service>.svg.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import shutil
import threading
import time
import urllib.request
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any, ClassVar

import asyncpg
import psutil
from aiokafka import AIOKafkaProducer

from bench import costs, durable, intake, product, smtp_servers
from bench.raw import kafka_ceiling, kafka_latency, preload, smtp_ceiling
from bench.stages import table as stage_table
from shared.contracts import topics
from shared.db.migrations import SERVICES
from tools.devstack import EmbeddedStack, free_port
from tools.devstack.processes import stop_process

PARTITIONS = 4
IDLE_SETTLE_S = 3.0  # after the services are ready, before the idle stack is measured
IDLE_S = 10.0  # how long the idle stack is measured


class RssSampler(threading.Thread):
    """Samples each service's resident memory every 100 ms; keeps the peak."""

    def __init__(self, stack: EmbeddedStack) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.peak: dict[str, int] = {}
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.wait(0.1):
            for name, svc in list(self.stack.services.items()):
                try:
                    rss = psutil.Process(svc.proc.pid).memory_info().rss if svc.proc else 0
                except (psutil.Error, AttributeError):
                    continue
                self.peak[name] = max(self.peak.get(name, 0), rss)


def _links(mail_dir: Path, to: str) -> list[str]:
    pattern = re.compile(r"(http://127\.0\.0\.1:\d+/links/recipients/confirm[^\s\"<>]+)")
    out = []
    for path in sorted(mail_dir.glob("*.eml")):
        mail = message_from_bytes(path.read_bytes(), policy=policy.default)
        if to in str(mail["To"]):
            part = mail.get_body(preferencelist=("plain",))
            out += pattern.findall(part.get_content() if part else "")
    return out


async def _confirm_recipients(mail_dir: Path, producer: AIOKafkaProducer) -> None:
    await producer.send_and_wait(
        topics.FLOW_DEFINITIONS,
        json.dumps(product.flow()).encode(),
        key=f"{product.ACCOUNT}:detractors".encode(),
    )
    for rcpt in product.RECIPIENTS:
        await product.wait_for(lambda r=rcpt: bool(_links(mail_dir, r)), 60, f"confirmation {rcpt}")
        url = _links(mail_dir, rcpt)[0]
        # The page's button: a POST confirms (C12).
        await asyncio.to_thread(
            lambda u=url: urllib.request.urlopen(u, data=b"", timeout=10).read()
        )


def _outcomes_in(follower: product.Follower, alert_ids: Any) -> int:
    return follower.count(topics.ALERT_OUTCOMES, lambda v: v["alert_id"] in alert_ids)


CLAIM = "INSERT INTO processed_messages"  # once per batch of a consumer with an inbox
LIVE_FLOWS = "FROM flows WHERE account_id = ANY"  # once per batch of profile events
# Once per batch of consent commands: they have no inbox claim, the history row proves
# an applied command.
HISTORY = 'COPY "consent_history"'
# The consumer groups whose drains (b) and (c) time.
EVENTS = "consentflow.flow_executor.profile-events"
COMMANDS = "consentflow.consent.consent-commands"
SUPPRESSIONS = "consentflow.suppression.consent-changes"


class Phase:
    """CPU, statements and a flame graph over one phase of the bench."""

    flame_rate = 250  # py-spy samples per second (`--flame-rate`)
    flame_format = "flamegraph"  # or "raw" (`--stacks`)
    # Each service's CPU seconds per second while idle (measured during (a), when the
    # services only poll): subtracted over a phase's duration for the net cost.
    idle: ClassVar[dict[str, float]] = {}

    def __init__(
        self,
        stack: EmbeddedStack,
        out: Path,
        flames: dict[str, int],
        extra: dict[str, int] | None = None,
        service: str = "",
    ) -> None:
        self.stack = stack
        self.service = service or next(iter(flames), "")
        self.extra = extra or {}
        self.graphs = costs.FlameGraphs(out, self.flame_rate, self.flame_format)
        self.flames = flames
        self.before: dict[str, float] = {}

    async def __aenter__(self) -> Phase:
        await costs.reset_statements(self.stack.dsn)
        for name, pid in self.flames.items():
            self.graphs.record(name, pid)
        self.before = costs.cpu_snapshot(self.stack, self.extra)
        self.started = time.perf_counter()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.graphs.stop()

    async def result(self, messages: int, marker: str = CLAIM) -> dict[str, Any]:
        after = costs.cpu_snapshot(self.stack, self.extra)
        seconds = time.perf_counter() - self.started
        self.graphs.stop()
        stmts = await costs.statements(self.stack.dsn, self.service) if self.service else []
        idle = {
            name: seconds * self.idle.get(name.split("-")[0], 0.0)
            for name in after
            if name.split("-")[0] in self.stack.services
        }
        return {
            "messages": messages,
            "seconds": round(seconds, 2),
            "cpu_s_per_1000": costs.cpu_per_1000(self.before, after, messages),
            "cpu_s_per_1000_net_of_idle": costs.cpu_per_1000(
                {k: v + idle.get(k, 0.0) for k, v in self.before.items()},
                {k: v for k, v in after.items() if k in idle},
                messages,
            ),
            "postgres": costs.per_batch(stmts, marker, messages),
        }


def _print_costs(label: str, found: dict[str, Any]) -> None:
    cpu = ", ".join(f"{k} {v:.3f}" for k, v in found["cpu_s_per_1000"].items() if v >= 0.0005)
    print(f"    {label} CPU s/1000 msgs: {cpu}", flush=True)
    net = ", ".join(f"{k} {v:.3f}" for k, v in found["cpu_s_per_1000_net_of_idle"].items())
    print(f"    {label} services' CPU s/1000 msgs net of idle polling: {net}", flush=True)
    pg = found["postgres"]
    if pg.get("batches"):
        print(
            f"    {label} PostgreSQL: {pg['batches']} batches, {pg['statements_per_batch']}"
            f" statements and {pg['rows_per_batch']} rows per batch,"
            f" {pg['statements_per_1000']} statements per 1000 msgs",
            flush=True,
        )


INTAKE_TARGET = 0.50
"""Issue target: flow-executor intake, one replica, as a share of (a)."""
CONSENT_TARGET = 0.35
"""Issue target: consent commands → consent-changes, as a share of (a)."""


def _print_budget(
    label: str, results: dict[str, Any], phase: str, target: float, rate: float, service: str
) -> None:
    """What the target leaves `service` per message, from the phase's measured costs
    (`costs.budget`): whether a faster service could meet it on these cores at all."""
    found = costs.budget(
        target,
        rate,
        results[f"{phase}_costs"]["cpu_s_per_1000"],
        service,
        psutil.cpu_count() or 1,
    )
    results[f"{phase}_budget"] = {
        **dataclasses.asdict(found),
        "allowed_us": found.allowed_us,
        "busy": found.busy,
    }
    print(found.line(label, service), flush=True)


async def _restart(stack: EmbeddedStack, *names: str) -> None:
    await product.start_ready([stack.services[name] for name in names])


def _pid(stack: EmbeddedStack, name: str) -> int:
    proc = stack.services[name].proc
    assert proc is not None
    return proc.pid


def _bytes_per_row(widths: dict[str, float]) -> str:
    """`row_widths` as the bench prints it, for (f) and (c) alike."""
    return ", ".join(f"{table} {width:.0f}" for table, width in widths.items())


async def _floor(
    args: argparse.Namespace,
    stack: EmbeddedStack,
    out: Path,
    me: dict[str, int],
    bootstrap: str,
    results: dict[str, Any],
    rate_a: float,
) -> None:
    """(f) the raw loop with consent's rows (`bench.durable`): its rate, each process's
    CPU per command, and how many cores its processes together would need at the consent
    target; if more than the machine has, no consent service reaches the target here."""
    k = args.consent
    commands = [product.consent_command(i, "floor") for i in range(k)]
    await preload(bootstrap, "bench-floor-in", commands)
    conn = await durable.connect(stack.dsn)
    try:
        async with Phase(stack, out, {}, me) as phase:
            rate_f = await durable.durable_ceiling(
                bootstrap, conn, "bench-floor-in", "bench-floor-out", k, args.batch
            )
            found = await phase.result(k)
    finally:
        await conn.close()
    widths = await durable.row_widths(stack.dsn, durable.SCHEMA)
    results["f_costs"] = found
    results["f_raw_consent_rows_msgs_per_s"] = rate_f
    results["f_row_bytes"] = widths
    print(
        f"(f) raw loop with consent's rows (lock-read, four rows by COPY, commit, produce):"
        f" {rate_f:,.0f} msgs/s = {rate_f / rate_a:.0%} of (a)",
        flush=True,
    )
    _print_costs("(f)", found)
    need = durable.cores_needed(CONSENT_TARGET * rate_a, found["cpu_s_per_1000"], Phase.idle)
    results["f_cores_at_consent_target"] = need
    print(
        f"    (f) at the consent target ({CONSENT_TARGET * rate_a:,.0f}/s) its processes"
        f" would need {need['cores']:.2f} cores ("
        + ", ".join(f"{name} {us:.1f}" for name, us in need["us"].items())
        + " µs per command); row bytes: "
        + _bytes_per_row(widths),
        flush=True,
    )


async def _consent(
    args: argparse.Namespace,
    stack: EmbeddedStack,
    out: Path,
    me: dict[str, int],
    bootstrap: str,
    follower: product.Follower,
    results: dict[str, Any],
    rate_a: float,
) -> None:
    """(c) consent commands from a backlog to consent-changes with the consumers of
    consent-changes stopped; then those consumers drain what it produced."""
    k = args.consent
    base = follower.count(topics.CONSENT_CHANGES)
    downstream = ("flow_executor", "suppression")
    for name in downstream:
        stack.services[name].stop()

    async def load_consent() -> None:
        await preload(
            bootstrap,
            topics.CONSENT_COMMANDS,
            [product.consent_command(i) for i in range(k)],
        )

    before = await product.committed(bootstrap, COMMANDS, topics.CONSENT_COMMANDS, PARTITIONS)
    await product.restart_with_backlog(stack, "consent", load_consent)
    try:
        async with Phase(stack, out, {"consent": _pid(stack, "consent")}, me) as phase:
            done = (
                await product.committed(bootstrap, COMMANDS, topics.CONSENT_COMMANDS, PARTITIONS)
                - before
            )
            # Commands applied (their group's commits) and changes published (the relay's
            # output on the topic), timed side by side.
            applied, _ = await asyncio.gather(
                product.drain_rate(
                    bootstrap, COMMANDS, topics.CONSENT_COMMANDS, PARTITIONS, before + k, 300
                ),
                product.wait_for(
                    lambda: follower.count(topics.CONSENT_CHANGES) - base >= k,
                    300,
                    "consent changes",
                ),
            )
            results["c_costs"] = await phase.result(k - done, HISTORY)
        times = sorted(t for t, _ in follower.arrivals[topics.CONSENT_CHANGES][base:])
        rate_c = product.steady_rate([(t, n) for n, t in enumerate(times, 1)], 0, len(times))
        results["c_consent_cmds_per_s"] = rate_c
        results["c_consent_cmds_applied_per_s"] = applied
        print(
            f"(c) consent commands → consent-changes: {rate_c:,.0f} msgs/s "
            f"= {rate_c / rate_a:.0%} of (a) (applied: {applied:,.0f}/s = {applied / rate_a:.0%})",
            flush=True,
        )
        _print_costs("(c)", results["c_costs"])
        _print_budget("(c)", results, "c", CONSENT_TARGET * rate_a, rate_c, "consent")
        widths = await durable.row_widths(stack.dsn, "consent")
        results["c_row_bytes"] = widths
        print(
            "    (c) row bytes (as (f)'s; its outbox rows relayed and gone): "
            + _bytes_per_row(widths),
            flush=True,
        )
    except TimeoutError as exc:
        results["c_consent_cmds_per_s"] = None
        print(f"(c) consent: {exc}", flush=True)

    # the consumers of consent-changes drain what (c) produced
    total = follower.count(topics.CONSENT_CHANGES)
    await _restart(stack, *downstream)
    async with Phase(stack, out, {"suppression": _pid(stack, "suppression")}, me) as phase:
        done = await product.committed(bootstrap, SUPPRESSIONS, topics.CONSENT_CHANGES, PARTITIONS)
        for name in downstream:
            await product.wait_committed(
                bootstrap,
                f"consentflow.{name}.consent-changes",
                topics.CONSENT_CHANGES,
                PARTITIONS,
                total,
                300,
            )
        results["c_downstream_costs"] = await phase.result(max(total - done, 1))
    if total - done < k // 10:
        # Drained while the bench waited for the restarted consumers to be ready.
        print("    (c→) drained before the phase began: not measured", flush=True)
    else:
        _print_costs("(c→)", results["c_downstream_costs"])


async def _dispatcher_steps(
    stack: EmbeddedStack, requested: dict[str, float], arrived: dict[str, float]
) -> dict[str, list[float]]:
    """`product.mail_steps` of the alerts seen on `alert-requests` (`requested`) and
    their outcomes (`arrived`), both taken on the bench's clock, which the database's
    timestamps are set against here."""
    to_epoch = time.time() - time.perf_counter()
    conn = await asyncpg.connect(stack.dsn)
    try:
        return await product.mail_steps(
            conn,
            "alert_dispatcher",
            {a: t + to_epoch for a, t in requested.items()},
            {a: t + to_epoch for a, t in arrived.items()},
        )
    finally:
        await conn.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    stack = EmbeddedStack(Path(args.var) / "bench", partitions=PARTITIONS)
    out = Path(args.out)
    await asyncio.to_thread(stack.start)
    # The SMTP server runs as a process of its own, as a real relay would: in this
    # process it would share the interpreter lock with the load generator and the topic
    # reader (`bench.smtp_servers`: the capture server, or Postfix's smtp-sink).
    smtp_port = free_port()
    smtp_dir = stack.root / "mail-bench"
    shutil.rmtree(smtp_dir, ignore_errors=True)  # links in old mail point at old ports
    smtp = await asyncio.to_thread(smtp_servers.start_capture, smtp_port, smtp_dir)
    sampler = RssSampler(stack)
    results: dict[str, Any] = {"config": vars(args) | {"partitions": PARTITIONS}}
    me = {"bench": os.getpid(), "smtp": smtp.pid}
    Phase.flame_rate = args.flame_rate
    Phase.flame_format = "raw" if args.stacks else "flamegraph"
    try:
        await costs.enable_statement_stats(stack, SERVICES)
        await asyncio.to_thread(
            stack.start_services,
            ALERT_SEND_LIMIT_PER_HOUR="100000000",
            SMTP_PORT=str(smtp_port),
            KAFKA_MAX_BATCH_RECORDS=str(args.batch),
            KAFKA_FETCH_MAX_WAIT_MS=str(args.fetch_wait_ms),
        )
        # Each measured service is restarted before its phase: from then on it logs in as
        # its own role, which is how its statements are told apart.
        for name, svc in stack.services.items():
            svc.env["DATABASE_URL"] = costs.role_dsn(stack.dsn, name)
            if name in args.members:
                svc.env["KAFKA_INPUT_CONSUMERS"] = str(args.members[name])
        sampler.start()
        bootstrap = stack.broker.bootstrap
        n = args.events

        # The stack with no load: every consumer polling, the broker answering them.
        await asyncio.sleep(IDLE_SETTLE_S)  # past the groups' first joins
        idle = await costs.idle_cores(stack, IDLE_S, {"smtp": smtp.pid})
        results["idle_cores"] = idle
        print(
            "(idle) cores used with no load: "
            + ", ".join(f"{k} {v:.3f}" for k, v in idle.items())
            + f"; all {sum(idle.values()):.2f}",
            flush=True,
        )

        # (a) the raw ceiling (its loop runs in this process: "bench" is its CPU)
        raw = [product.event(i, "raw", i % 10 == 0)[:2] for i in range(n)]
        await preload(bootstrap, "bench-raw-in", raw)
        async with Phase(stack, out, {}, me) as phase:
            rate_a = await kafka_ceiling(bootstrap, "bench-raw-in", "bench-raw-out", n)
            results["a_costs"] = await phase.result(n)
        a_cpu, a_s = results["a_costs"]["cpu_s_per_1000"], results["a_costs"]["seconds"]
        Phase.idle = {name: a_cpu[name] * n / 1000 / a_s for name in stack.services}
        results["idle_cpu_s_per_s"] = Phase.idle
        results["a_raw_kafka_msgs_per_s"] = rate_a
        print(f"(a) raw aiokafka consume→parse→produce: {rate_a:,.0f} msgs/s", flush=True)
        _print_costs("(a)", results["a_costs"])
        if args.consent:
            await _floor(args, stack, out, me, bootstrap, results, rate_a)

        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1024 * 1024
        )
        await producer.start()
        follower = product.Follower(
            bootstrap,
            [topics.ALERT_OUTCOMES, topics.CONSENT_CHANGES, topics.ALERT_REQUESTS],
            timed_only=[topics.CONSENT_CHANGES],
        )
        await follower.start()
        try:
            await _confirm_recipients(smtp_dir, producer)
            if args.smtp_sink:
                smtp = await asyncio.to_thread(
                    smtp_servers.swap_to_sink, smtp, Path(args.smtp_sink), smtp_port
                )
                me["smtp"] = smtp.pid
            results["smtp_server"] = "smtp-sink" if args.smtp_sink else "capture"

            # (d) the raw SMTP ceiling, on the server the alert mails go to
            rate_d = await smtp_ceiling(smtp_port, args.mails) if args.mail else float("nan")
            results["d_raw_smtp_mails_per_s"] = rate_d
            print(f"(d) raw aiosmtplib send loop: {rate_d:,.0f} mails/s", flush=True)
            rate_d2 = (
                await smtp_ceiling(smtp_port, args.mails, prepared=True)
                if args.mail
                else float("nan")
            )
            results["d_prepared_smtp_mails_per_s"] = rate_d2
            print(
                f"(d') the same with the mails built beforehand: {rate_d2:,.0f} mails/s",
                flush=True,
            )

            # (b) flow-executor intake from a backlog, the dispatcher stopped meanwhile
            # (it drains the alert requests afterwards, measured on its own).
            stack.services["alert_dispatcher"].stop()
            events = [product.event(i, "intake", i % 10 == 0) for i in range(n)]
            alerts_expected = sum(1 for i in range(n) if i % 10 == 0)

            async def load_events() -> None:
                await preload(bootstrap, topics.PROFILE_EVENTS, [e[:2] for e in events])

            await product.restart_with_backlog(
                stack, "flow_executor", load_events, settle_first=True
            )
            async with Phase(
                stack, out, {"flow_executor": _pid(stack, "flow_executor")}, me
            ) as phase:
                done = await product.committed(bootstrap, EVENTS, topics.PROFILE_EVENTS, PARTITIONS)
                rate_b = await product.drain_rate(
                    bootstrap, EVENTS, topics.PROFILE_EVENTS, PARTITIONS, n, 300
                )
                results["b_costs"] = await phase.result(n - done, LIVE_FLOWS)
            results["b_executor_intake_msgs_per_s"] = rate_b
            print(
                f"(b) flow-executor intake: {rate_b:,.0f} events/s = {rate_b / rate_a:.0%} of (a)",
                flush=True,
            )
            _print_costs("(b)", results["b_costs"])
            _print_budget("(b)", results, "b", INTAKE_TARGET * rate_a, rate_b, "flow_executor")
            wanted_ids = {product.alert_id_of(e[2]) for e in events}
            alerts_total = alerts_expected

            # (b) again with replicas sharing the partitions: how the executor scales out
            # on the same machine (PostgreSQL work of one replica overlaps the other's
            # Python work).
            if args.replicas > 1:
                more = [product.event(i, "scaled", i % 10 == 0) for i in range(n)]

                async def load_more() -> None:
                    await preload(bootstrap, topics.PROFILE_EVENTS, [e[:2] for e in more])

                extra = await product.restart_with_backlog(
                    stack, "flow_executor", load_more, replicas=args.replicas, settle_first=True
                )
                replicas = {f"flow_executor-{k}": p.proc.pid for k, p in enumerate(extra, 1)}
                try:
                    async with Phase(
                        stack, out, {}, me | replicas, service="flow_executor"
                    ) as phase:
                        done = await product.committed(
                            bootstrap, EVENTS, topics.PROFILE_EVENTS, PARTITIONS
                        )
                        rate_r = await product.drain_rate(
                            bootstrap, EVENTS, topics.PROFILE_EVENTS, PARTITIONS, 2 * n, 300
                        )
                        results["b_replicas_costs"] = await phase.result(2 * n - done, LIVE_FLOWS)
                finally:
                    for proc in extra:
                        proc.stop()
                wanted_ids |= {product.alert_id_of(e[2]) for e in more}
                alerts_total += alerts_expected
                results["b_executor_intake_replicas"] = args.replicas
                results["b_executor_intake_replicas_msgs_per_s"] = rate_r
                print(
                    f"    with {args.replicas} replicas: {rate_r:,.0f} events/s"
                    f" = {rate_r / rate_a:.0%} of (a)",
                    flush=True,
                )
                _print_costs("(b×2)", results["b_replicas_costs"])

            if args.mail:
                # the alert mails of (b): the dispatcher drains its backlog of requests
                await _restart(stack, "alert_dispatcher")
                async with Phase(
                    stack, out, {"alert_dispatcher": _pid(stack, "alert_dispatcher")}, me
                ) as phase:
                    await product.wait_for(
                        lambda: _outcomes_in(follower, wanted_ids) >= alerts_total,
                        300,
                        "alert outcomes",
                    )
                    mails_alerts = _outcomes_in(follower, wanted_ids)
                    results["b_mail_costs"] = await phase.result(mails_alerts)
                arrivals = [
                    t
                    for t, v in follower.arrivals[topics.ALERT_OUTCOMES]
                    if v["alert_id"] in wanted_ids
                ]
                mail_span = max(arrivals) - min(arrivals)
                mails = mails_alerts * len(product.RECIPIENTS)
                rate_mail = mails / mail_span if mail_span > 0 else float("inf")
                results["b_alert_mails_per_s"] = rate_mail
                print(
                    f"    alert mails: {rate_mail:,.0f} mails/s = {rate_mail / rate_d:.0%} of (d),"
                    f" {rate_mail / rate_d2:.0%} of (d')"
                    f" ({mails_alerts} alerts, {mails} mails; CPU per 1000 alerts below)",
                    flush=True,
                )
                _print_costs("(mail)", results["b_mail_costs"])

            # (c) consent commands from a backlog to consent-changes, its consumers stopped
            k = args.consent
            if k:
                await _consent(args, stack, out, me, bootstrap, follower, results, rate_a)

            # latency at fixed offered loads, 10 % of events raising an alert
            curve = []
            for step, rate in enumerate(args.loads if args.mail else ()):
                # (e) the broker's own floor at this load, in the same run: the raw loop
                # relaying paced events over the two hops event → request crosses.
                floor = await kafka_latency(
                    bootstrap, producer, rate, args.seconds, args.fetch_wait_ms, PARTITIONS
                )
                # Events of their own per load: a load offered twice would otherwise
                # send the same event ids, which enter no flow again (F2).
                tag = f"lat{step}-{rate}"
                batch = [
                    product.event(i, tag, i % 10 == 0) for i in range(int(rate * args.seconds))
                ]
                want = {
                    product.alert_id_of(e[2]): e[2] for e in batch if e[1].find(b'"score": 0') > 0
                }
                # The cores each process keeps busy while the load runs (first event to
                # last outcome): what every step's wait queues behind on shared cores.
                cpu_before, machine_before = costs.cpu_snapshot(stack, me), costs.machine_busy()
                t0 = time.perf_counter()
                sent = await product.paced(producer, topics.PROFILE_EVENTS, batch, rate)
                publish_s = time.perf_counter() - t0
                await product.wait_for(
                    lambda w=want: _outcomes_in(follower, w) >= len(w),
                    300,
                    f"outcomes at {rate}/s",
                )
                busy_s = time.perf_counter() - t0
                cores = costs.cores_used(cpu_before, costs.cpu_snapshot(stack, me), busy_s, 2)
                machine = round((costs.machine_busy() - machine_before) / busy_s, 2)
                arrived = {
                    v["alert_id"]: t
                    for t, v in follower.arrivals[topics.ALERT_OUTCOMES]
                    if v["alert_id"] in want
                }
                lat = [t - sent[want[a]] for a, t in arrived.items()]
                pct = {k2: v2 * 1000 for k2, v2 in product.percentiles(lat).items()}
                # Where the time goes: the executor's part (event -> alert request on the
                # topic) and the dispatcher's (request -> outcome, mail sent between).
                requested = {
                    v["alert_id"]: t
                    for t, v in follower.arrivals[topics.ALERT_REQUESTS]
                    if v["alert_id"] in want
                }
                to_request = product.percentiles([t - sent[want[a]] for a, t in requested.items()])
                request_steps = product.request_steps(
                    follower.arrivals[topics.ALERT_REQUESTS], want, sent
                )
                to_outcome = product.percentiles(
                    [arrived[a] - t for a, t in requested.items() if a in arrived]
                )
                hops = {
                    f"{hop}_{q}_ms": 1000 * found[q]
                    for hop, found in (("executor", to_request), ("dispatcher", to_outcome))
                    for q in ("p50", "p99")
                }
                steps = await _dispatcher_steps(stack, requested, arrived)
                curve.append(
                    {
                        "offered_per_s": rate,
                        "published_per_s": len(batch) / publish_s,
                        # Events fully handled per second: every alert's outcome is out.
                        "achieved_per_s": len(batch) / (max(arrived.values()) - t0),
                        "alerts": len(want),
                        **{f"{k2}_ms": v2 for k2, v2 in pct.items()},
                        **hops,
                        "executor_steps_p50_p99_ms": request_steps,
                        "dispatcher_steps_p50_p99_ms": steps,
                        "cores_busy": cores,
                        "machine_cores_busy": machine,
                        **{
                            f"raw_{hop}_{q}_ms": found[q]
                            for hop, found in floor.items()
                            for q in ("p50", "p99")
                        },
                    }
                )
                print(
                    f"    {rate:>6}/s offered: p50 {pct['p50']:.0f} ms, p95 {pct['p95']:.0f} ms,"
                    f" p99 {pct['p99']:.0f} ms ({len(want)} alerts; event→request p50"
                    f" {hops['executor_p50_ms']:.0f} p99 {hops['executor_p99_ms']:.0f} ms,"
                    f" request→outcome p50 {hops['dispatcher_p50_ms']:.0f}"
                    f" p99 {hops['dispatcher_p99_ms']:.0f} ms; (e) the raw loop's two hops"
                    f" p50 {floor['two_hops']['p50']:.0f} p99 {floor['two_hops']['p99']:.0f} ms,"
                    f" one hop p99 {floor['one_hop']['p99']:.0f} ms)",
                    flush=True,
                )
                print(
                    "        event→request by step, p50/p99 ms: "
                    + ", ".join(f"→{k} {v[0]:.0f}/{v[1]:.0f}" for k, v in request_steps.items()),
                    flush=True,
                )
                print(
                    "        request→outcome by step, p50/p99 ms: "
                    + ", ".join(f"→{k} {v[0]:.0f}/{v[1]:.0f}" for k, v in steps.items()),
                    flush=True,
                )
                print(
                    f"        cores busy: machine {machine:.2f} of {psutil.cpu_count()}; "
                    + ", ".join(f"{k} {v:.2f}" for k, v in cores.items() if v >= 0.005),
                    flush=True,
                )
            results["latency"] = curve
        finally:
            await follower.stop()
            await producer.stop()
        results["stages"] = await _stages(stack.dsn, args)
        results["peak_rss_mb"] = {k2: v2 / 2**20 for k2, v2 in sampler.peak.items()}
        print(
            "peak RSS: "
            + ", ".join(f"{k2} {v2:.0f} MB" for k2, v2 in results["peak_rss_mb"].items()),
            flush=True,
        )
        return results
    finally:
        sampler.stop_flag.set()
        stop_process(smtp)
        stack.stop()


async def _stages(dsn: str, args: argparse.Namespace) -> dict[str, Any]:
    """Each main consumer's cost per message by stage (decode, decide, persist, publish),
    fed its input directly in this process (`bench.intake`, `bench.stages`)."""
    found: dict[str, Any] = {}
    conn = await asyncpg.connect(dsn)
    try:  # a role of its own: its statements are counted apart from the services'
        await conn.execute(f'CREATE ROLE "{costs.role("intake")}" LOGIN SUPERUSER')
    finally:
        await conn.close()
    for service, n in (("flow_executor", args.events), ("consent", args.consent)):
        if not n:
            continue
        m = await intake.measure(
            service, costs.role_dsn(dsn, "intake"), min(n, 10000), args.batch, 2
        )
        found[service] = {"us": m["stages_us"], "database": m["stages_database"]}
        print(stage_table(service, m["stages_us"], m["stages_database"]), flush=True)
    return found


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = results.get("latency", [])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    loads = [c["offered_per_s"] for c in curve]
    ax1.plot(loads, [c["achieved_per_s"] for c in curve], "o-", label="handled (all outcomes out)")
    ax1.plot(loads, loads, "--", color="grey", label="offered")
    ax1.set(
        xlabel="offered events/s (10 % raise an alert)",
        ylabel="events/s",
        title="Throughput vs offered load",
    )
    ax1.legend()
    for q in ("p50", "p95", "p99"):
        ax2.plot(loads, [c[f"{q}_ms"] for c in curve], "o-", label=q)
    ax2.set(xlabel="offered events/s", ylabel="ms", title="Event → alert outcome latency")
    ax2.axhline(250, color="red", linestyle=":", label="p99 target")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _members(parser: argparse.ArgumentParser, given: list[str]) -> dict[str, int]:
    """`--members SERVICE=N` options as {service: N}; a wrong one ends the run with one line."""
    out: dict[str, int] = {}
    for item in given:
        name, _, n = item.partition("=")
        if name not in SERVICES or not n.isdigit() or int(n) < 1:
            parser.error(f"--members {item}: give SERVICE=N, N ≥ 1, SERVICE one of {SERVICES}")
        out[name] = int(n)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--var", default="var")
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--consent", type=int, default=10000, help="0: skip (c)")
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--loads", type=int, nargs="*", default=[500, 1000, 2000, 4000], help="none: skip"
    )
    parser.add_argument(
        "--replicas", type=int, default=2, help="flow-executor replicas for the scale-out run"
    )
    parser.add_argument(
        "--no-mail",
        dest="mail",
        action="store_false",
        help="skip (d), the alert mails and the latency curve (the dispatcher stays stopped)",
    )
    parser.add_argument(
        "--flame-rate",
        type=int,
        default=250,
        help="py-spy samples per second; 0: no flame graphs (py-spy takes about 0.05 of a"
        " core at 250, from the cores the measured service shares)",
    )
    parser.add_argument(
        "--stacks",
        action="store_true",
        help="write collapsed stacks (flame-<service>.txt) instead of SVG flame graphs",
    )
    parser.add_argument("--batch", type=int, default=1000, help="KAFKA_MAX_BATCH_RECORDS")
    parser.add_argument(
        "--fetch-wait-ms",
        type=int,
        default=50,
        help="KAFKA_FETCH_MAX_WAIT_MS of the services (the dev stack's: 50). The embedded"
        " broker holds an empty fetch that long even when data arrives meanwhile; Apache"
        " Kafka answers as soon as data is there",
    )
    parser.add_argument(
        "--smtp-sink",
        metavar="BINARY",
        help="after the recipients are confirmed, send the mail to Postfix's smtp-sink (this"
        " binary) instead of the capture server: a relay that costs these cores almost"
        " nothing, as one on its own machine would (bench.smtp_servers)",
    )
    parser.add_argument(
        "--members",
        action="append",
        default=[],
        metavar="SERVICE=N",
        help="KAFKA_INPUT_CONSUMERS of one service: members of its main input's group in"
        " each replica (unset, the service's own: 2 for flow_executor, 1 for the others),"
        " e.g. flow_executor=1; may be repeated",
    )
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()
    args.members = _members(parser, args.members)
    results = asyncio.run(run(args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2, default=str))
    if results.get("latency"):
        plot(results, out / "latest.png")
    print(f"wrote {out / 'latest.json'} and {out / 'latest.png'}")


if __name__ == "__main__":
    main()
