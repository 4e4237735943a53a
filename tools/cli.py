"""The `consentflow` command: `dev`, `demo`, `migrate`, `topics`, and the operator's
commands (`consent`, `reviews`, `recipients`, `dlq`, `privacy`; see tools/operator_cli.py)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from aiokafka.errors import KafkaError

from shared.settings import Settings


def _migrate(_: argparse.Namespace) -> int:
    from shared.db.migrations import migrate_all

    settings = Settings()
    applied = asyncio.run(migrate_all(settings.database_url))
    for schema, names in applied.items():
        print(f"{schema}: {', '.join(names) if names else 'up to date'}")
    return 0


def _topics(args: argparse.Namespace) -> int:
    from shared.kafka import ensure_topics

    settings = Settings()
    created = asyncio.run(
        ensure_topics(
            settings,
            args.partitions or settings.topic_partitions,
            args.replication_factor,
        )
    )
    print(f"created {len(created)} topics" + (f": {', '.join(created)}" if created else ""))
    return 0


def _dev(args: argparse.Namespace) -> int:
    from shared.devstack import EmbeddedStack

    stack = EmbeddedStack(Path(args.var), partitions=args.partitions or 4)
    print("starting the embedded stack …", flush=True)
    stack.start()
    try:
        stack.start_services()
        print(f"Kafka (Tansu)   {stack.broker.bootstrap}")
        print(f"PostgreSQL      {stack.dsn}")
        print(f"SMTP capture    127.0.0.1:{stack.smtp.port} → {stack.smtp.mail_dir}/*.eml")
        for name, svc in stack.services.items():
            print(f"{name:<15} {svc.base_url}  (logs: {svc.log_path})")
        print(f"API keys        {stack.api_keys}")
        print("Ctrl-C stops everything.", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        while not stop.wait(0.5):
            for name, svc in stack.services.items():
                if svc.proc is not None and svc.proc.poll() is not None:
                    print(f"{name} exited (code {svc.proc.returncode}); see {svc.log_path}")
                    stop.set()
    finally:
        print("stopping …", flush=True)
        stack.stop()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from tools.demo import run_demo

    return run_demo(Path(args.var), events=args.events)


OPERATOR_COMMANDS = {
    "consent": "a profile's consent and history",
    "reviews": "alerts held in manual review: list, approve, reject",
    "recipients": "alert recipients: list, re-send a confirmation",
    "dlq": "dead letters: list, replay after a fix",
    "privacy": "data-subject requests: export, erase, status",
    "flows": "an account's sending window and smart sending settings (F8, F9)",
}


def main(argv: list[str] | None = None) -> int:
    """`consentflow`: a broker it cannot reach is one line on stderr, not a traceback."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # that one line says it
    try:
        return _main(argv)
    except (KafkaError, OSError) as exc:
        servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092 (the default)")
        print(
            f"consentflow: cannot reach Kafka at {servers} (KAFKA_BOOTSTRAP_SERVERS): {exc}",
            file=sys.stderr,
        )
        return 2


def _main(argv: list[str] | None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in and args_in[0] in OPERATOR_COMMANDS:
        from tools.operator_cli import main as operator_main

        return operator_main(list(args_in))
    parser = argparse.ArgumentParser(prog="consentflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in OPERATOR_COMMANDS.items():
        sub.add_parser(name, help=f"{text} (`consentflow {name} --help`)", add_help=False)
    p = sub.add_parser("dev", help="run the embedded stack and the four services")
    p.add_argument("--var", default="var", help="folder for data, logs and mail (default var/)")
    p.add_argument("--partitions", type=int, default=None)
    p.set_defaults(run=_dev)
    p = sub.add_parser("demo", help="run a realistic scenario end to end on the embedded stack")
    p.add_argument("--var", default="var")
    p.add_argument("--events", type=int, default=5000, help="profile events to publish")
    p.set_defaults(run=_demo)
    p = sub.add_parser("migrate", help="apply every service's migrations (DATABASE_URL)")
    p.set_defaults(run=_migrate)
    p = sub.add_parser(
        "topics",
        help="create the topics (KAFKA_BOOTSTRAP_SERVERS, the KAFKA_* security settings"
        " and KAFKA_TOPIC_PREFIX)",
    )
    p.add_argument("--partitions", type=int, default=None)
    p.add_argument("--replication-factor", type=int, default=1)
    p.set_defaults(run=_topics)
    args = parser.parse_args(args_in)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
