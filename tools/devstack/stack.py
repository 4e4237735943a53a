"""The whole embedded stack, and the four services as child processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from shared.db.migrations import SERVICES, migrate_all
from shared.messaging.admin import ensure_topics
from tools.devstack.broker import TansuBroker
from tools.devstack.ports import free_port
from tools.devstack.postgres import EmbeddedPostgres
from tools.devstack.processes import stop_process
from tools.devstack.smtp import SmtpCapture

# The Message-ID domain of mail sent by the dev stack (a reserved test domain).
MAIL_DOMAIN = "mail.consentflow.test"


@dataclass
class ServiceProcess:
    """One service run as `python -m services.<name>` (or as `python -m <module>`)."""

    name: str
    env: dict[str, str]
    log_path: Path
    http_port: int
    proc: subprocess.Popen[bytes] | None = None
    module: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # The child writes to its own copy of the log's descriptor; ours closes at once.
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module or f"services.{self.name}"],
                env={**os.environ, **self.env, "HTTP_PORT": str(self.http_port)},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout_s}s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: the crash case (fault tests)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout_s: float = 15.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_process(proc, timeout_s)


@dataclass
class EmbeddedStack:
    """Broker, PostgreSQL and SMTP capture on loopback, under `root` (logs, data, mail)."""

    root: Path
    partitions: int = 4
    # Each stack makes its own secrets (X6): nothing guessable ever signs a link.
    link_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    accounts: tuple[str, ...] = ("acme", "globex")
    api_keys: str = field(init=False)
    # Generated per stack: a fixed value in the source would be a well-known key.
    privacy_hash_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    broker: TansuBroker = field(init=False)
    postgres: EmbeddedPostgres = field(init=False)
    smtp: SmtpCapture = field(init=False)
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    # Settings every service of this stack runs with, beneath a start's own extras.
    service_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self._keys = {a: f"{a}-{secrets.token_urlsafe(18)}" for a in self.accounts}
        self.api_keys = ",".join(f"{a}:{k}" for a, k in self._keys.items())
        self.broker = TansuBroker(free_port(), self.root / "logs" / "broker.log")
        self.postgres = EmbeddedPostgres(self.root / "pgdata")
        self.smtp = SmtpCapture(free_port(), self.root / "mail")

    def start(self) -> None:
        """Start the three servers, create the topics and apply every migration."""
        # A new stack starts empty: the broker and database are fresh, so old mail and
        # logs would only mislead.
        for old in (self.root / "mail", self.root / "logs"):
            if old.exists():
                shutil.rmtree(old)
        self.smtp.mail_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.broker.start()
            self.postgres.start()
            self.smtp.start()
            asyncio.run(self._prepare())
        except BaseException:
            self.stop()
            raise

    async def _prepare(self) -> None:
        await ensure_topics(self.broker.bootstrap, self.partitions)
        await migrate_all(self.dsn)

    def key_of(self, account: str) -> str:
        """The API key this stack made for `account` (one of `accounts`)."""
        return self._keys[account]

    @property
    def dsn(self) -> str:
        return self.postgres.dsn

    def env(self) -> dict[str, str]:
        """The environment a service needs to run against this stack."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap,
            "KAFKA_ENABLE_IDEMPOTENCE": "false",
            "KAFKA_SESSION_TIMEOUT_MS": "2000",
            "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            # The embedded broker holds an empty fetch for the whole wait even when data
            # arrives meanwhile: a long wait is latency on every hop.
            "KAFKA_FETCH_MAX_WAIT_MS": "50",
            # The inputs off the hot path (read models, privacy, definitions) are idle most
            # of the time: a held fetch each 50 ms from 13 such consumers cost the dev stack
            # a third of a core at idle (docs/performance.md).
            "KAFKA_SIDE_FETCH_MAX_WAIT_MS": "500",
            "DATABASE_URL": self.dsn,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(self.smtp.port),
            "SMTP_STARTTLS": "false",
            "LINK_SECRET": self.link_secret,
            "MESSAGE_ID_DOMAIN": MAIL_DOMAIN,
            "API_KEYS": self.api_keys,
            "PRIVACY_HASH_SECRET": self.privacy_hash_secret,
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
            **self.service_env,
        }

    def start_services(self, names: tuple[str, ...] = SERVICES, **extra_env: str) -> None:
        """Start services as separate processes and wait until each is ready."""
        for name in names:
            port = free_port()
            env = {**self.env(), "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", **extra_env}
            svc = ServiceProcess(name, env, self.root / "logs" / f"{name}.log", port)
            self.services[name] = svc
            svc.start()
        for name in names:
            self.services[name].wait_ready()

    def stop_services(self) -> None:
        for svc in self.services.values():
            svc.stop()

    def stop(self) -> None:
        """Stop everything this stack started, services first."""
        self.stop_services()
        with contextlib.suppress(Exception):
            self.smtp.stop()
        with contextlib.suppress(Exception):
            self.postgres.stop()
        with contextlib.suppress(Exception):
            self.broker.stop()
