"""Where the time goes: CPU seconds per process, PostgreSQL statements and rows, and
py-spy flame graphs, each taken over one phase of the bench.

CPU comes from each process's own CPU times (user + system), which on a shared machine
is far steadier than messages per second. PostgreSQL's share is the postmaster and all
its backends. Statements and rows come from `pg_stat_statements`, which the bench loads
into its own throwaway server (a restart before the services start).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from tools.devstack import EmbeddedStack


def cpu_seconds(pid: int, with_children: bool = False) -> float:
    """User + system CPU seconds of process `pid` (and of its children, recursively),
    0 for a process that is gone: every reader of a process's CPU in the bench."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)] if with_children else [proc]
    except psutil.Error:
        return 0.0
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def _postmaster_pid(stack: EmbeddedStack) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return stack.postgres.postmaster_pid
    return None


def cpu_snapshot(stack: EmbeddedStack, extra: dict[str, int] | None = None) -> dict[str, float]:
    """CPU seconds so far of each service process (replicas by their own name), the
    broker, PostgreSQL (postmaster and backends) and any `extra` processes."""
    out: dict[str, float] = {}
    for name, svc in stack.services.items():
        if svc.proc is not None:
            out[name] = cpu_seconds(svc.proc.pid)
    for name, pid in (extra or {}).items():
        out[name] = cpu_seconds(pid)
    if stack.broker.proc is not None:
        out["broker"] = cpu_seconds(stack.broker.proc.pid)
    if (pm := _postmaster_pid(stack)) is not None:
        out["postgres"] = cpu_seconds(pm, with_children=True)
    return out


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (every core, any process, the kernel
    included; idle, I/O wait and time stolen by the host not), so that a phase's load
    can be set against the cores there are."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)


async def idle_cores(
    stack: EmbeddedStack, seconds: float, extra: dict[str, int] | None = None
) -> dict[str, float]:
    """Cores each process of `cpu_snapshot` uses over `seconds` with no load: what the
    consumers' polling, heartbeats and background loops cost the machine by themselves,
    the broker's answers to them included."""
    before = cpu_snapshot(stack, extra)
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    return cores_used(before, cpu_snapshot(stack, extra), time.perf_counter() - started)


def cores_used(
    before: dict[str, float], after: dict[str, float], seconds: float, digits: int = 3
) -> dict[str, float]:
    """Cores each process of two `cpu_snapshot`s kept busy over the `seconds` between them."""
    return {name: round((after[name] - before.get(name, 0.0)) / seconds, digits) for name in after}


def cpu_per_1000(before: dict[str, float], after: dict[str, float], messages: int) -> dict:
    """CPU seconds per 1,000 messages of each process over a phase."""
    return {
        name: round(1000 * (after[name] - before.get(name, 0.0)) / messages, 4)
        for name in after
        if messages
    }


def role(service: str) -> str:
    return f"bench_{service}"


def role_dsn(dsn: str, service: str) -> str:
    """`dsn` logging in as the service's own role, so that its statements are counted
    apart from the other services' (`pg_stat_statements` keeps them per user)."""
    out = dsn.replace("://postgres:", f"://{role(service)}:", 1)
    assert out != dsn, dsn
    return out


async def enable_statement_stats(stack: EmbeddedStack, services: Iterable[str]) -> None:
    """Load `pg_stat_statements` (needs a restart; do it before the services start) and
    create a role per service (superuser: a throwaway server on a unix socket)."""
    conn = await asyncpg.connect(stack.dsn)
    try:
        await conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        await conn.execute("ALTER SYSTEM SET pg_stat_statements.track = 'all'")
    finally:
        await conn.close()
    stack.postgres.restart()
    conn = await asyncpg.connect(stack.dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        for service in services:
            await conn.execute(f'CREATE ROLE "{role(service)}" LOGIN SUPERUSER')
    finally:
        await conn.close()


async def reset_statements(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_stat_statements_reset()")
    finally:
        await conn.close()


async def statements(dsn: str, service: str) -> list[dict[str, Any]]:
    """Every statement `service` ran since the last reset: calls, rows and server time."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT query, sum(calls) AS calls, sum(rows) AS rows,"
            " sum(total_exec_time) AS ms FROM pg_stat_statements"
            " WHERE userid = (SELECT oid FROM pg_roles WHERE rolname = $1)"
            " GROUP BY query ORDER BY sum(calls) DESC",
            role(service),
        )
    finally:
        await conn.close()
    return [
        {
            "query": " ".join(r["query"].split())[:160],
            "calls": int(r["calls"]),
            "rows": int(r["rows"]),
            "ms": round(float(r["ms"]), 1),
        }
        for r in rows
    ]


def per_batch(stmts: list[dict[str, Any]], batch_marker: str, messages: int) -> dict[str, Any]:
    """Statements and rows per batch, a batch counted by the statement that runs once in
    each (the inbox claim), and per 1,000 messages; the statements that took the most
    server time, with their calls and rows per batch."""
    batches = sum(s["calls"] for s in stmts if batch_marker in s["query"])
    if not batches or not messages:
        return {"batches": batches}
    calls = sum(s["calls"] for s in stmts)
    rows = sum(s["rows"] for s in stmts)
    return {
        "batches": batches,
        "statements_per_1000": round(1000 * calls / messages, 1),
        "rows_per_1000": round(1000 * rows / messages, 1),
        "statements_per_batch": round(calls / batches, 2),
        "rows_per_batch": round(rows / batches, 1),
        "server_ms_per_batch": round(sum(s["ms"] for s in stmts) / batches, 2),
        "top": [
            {
                "query": s["query"],
                "calls_per_batch": round(s["calls"] / batches, 2),
                "rows_per_batch": round(s["rows"] / batches, 1),
                "ms_per_batch": round(s["ms"] / batches, 2),
            }
            for s in sorted(stmts, key=lambda s: -s["ms"])[:12]
        ],
    }


@dataclass
class FlameGraphs:
    """py-spy recording processes by pid until `stop()`, each writing an SVG (py-spy
    reads the target's memory from outside: `--nonblocking` never pauses it)."""

    out_dir: Path
    rate: int = 250
    # "flamegraph" (SVG) or "raw": collapsed stacks, one line per stack with its sample
    # count, which `python -m bench.stacks` sums per function.
    fmt: str = "flamegraph"
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @staticmethod
    def binary() -> str | None:
        """py-spy on PATH, or beside this Python (a virtualenv not activated)."""
        return shutil.which("py-spy") or shutil.which(
            "py-spy", path=str(Path(sys.executable).parent)
        )

    @classmethod
    def available(cls) -> bool:
        return cls.binary() is not None

    def record(self, name: str, pid: int) -> None:
        """Record `pid` until `stop()`; at a rate of 0, nothing is recorded."""
        spy = self.binary()
        if spy is None or self.rate <= 0:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.procs.append(
            subprocess.Popen(
                [
                    spy,
                    "record",
                    "--nonblocking",
                    "--rate",
                    str(self.rate),
                    "--pid",
                    str(pid),
                    "--format",
                    self.fmt,
                    "--output",
                    str(
                        self.out_dir
                        / f"flame-{name}.{'svg' if self.fmt == 'flamegraph' else 'txt'}"
                    ),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    def stop(self) -> None:
        procs, self.procs = self.procs, []
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # py-spy writes the SVG on SIGINT
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@dataclass(frozen=True)
class Budget:
    """What a throughput target leaves a service on this machine (`budget`)."""

    target_per_s: float
    cores: int
    others_us: dict[str, float]  # CPU µs per message of every other process
    service_us: float  # the service's own, as measured
    measured_per_s: float  # the rate the phase reached
    left_us: float  # what the machine's cores leave it per message at the target
    thread_us: float  # what one thread can spend per message at the target

    @property
    def busy(self) -> float:
        """The share of the phase the service's process was on a core: the rest of the
        time it waited (for PostgreSQL, the broker, its next batch). Above one: more
        than one replica."""
        return self.measured_per_s * self.service_us / 1e6

    @property
    def allowed_us(self) -> float:
        """CPU µs per message the service may use and still meet the target: what the
        other processes leave of the cores, and no more than one thread has."""
        return min(self.left_us, self.thread_us)

    def line(self, label: str, service: str) -> str:
        rest = sum(self.others_us.values())
        parts = ", ".join(
            f"{k} {v:.1f}"
            for k, v in sorted(self.others_us.items(), key=lambda kv: -kv[1])
            if v >= 0.05
        )
        head = (
            f"    {label} budget at the target ({self.target_per_s:,.0f}/s, {self.cores} cores):"
            f" the other processes take {rest:.1f} µs per message ({parts}),"
        )
        if self.left_us <= 0:
            return (
                f"{head} {rest * self.target_per_s / 1e6:.2f} cores at that rate: more than"
                f" the machine has, whatever {service} costs (it uses {self.service_us:.1f})"
            )
        return (
            f"{head} leaving {service} {self.allowed_us:.1f} µs per message"
            f" (one thread: {self.thread_us:.1f}); it uses {self.service_us:.1f},"
            f" on a core {self.busy:.0%} of the time at {self.measured_per_s:,.0f}/s"
        )


def budget(
    target_per_s: float,
    measured_per_s: float,
    cpu_s_per_1000: dict[str, float],
    service: str,
    cores: int,
) -> Budget:
    """The CPU per message a service may spend at `target_per_s` on `cores`, given what
    every other process of a phase (PostgreSQL, the broker, the bench's own load and
    reading, the other services) spent per message in it. A replica is one thread, so
    it can never spend more than a second's worth per `target_per_s` messages either,
    and only while it is not waiting: `busy` says how much of the phase it was on a
    core.

    Where the other processes alone would need more than the cores at the target, no
    change to the service meets it on this machine: that is what this tells apart."""
    others = {k: v * 1000 for k, v in cpu_s_per_1000.items() if k != service and v > 0}
    per_s = max(target_per_s, 1e-9)
    return Budget(
        target_per_s=target_per_s,
        cores=cores,
        others_us=others,
        service_us=cpu_s_per_1000.get(service, 0.0) * 1000,
        measured_per_s=measured_per_s,
        left_us=(cores * 1e6 - per_s * sum(others.values())) / per_s,
        thread_us=1e6 / per_s,
    )
