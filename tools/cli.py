"""consentflow: consent, suppression, flows and internal alerts over Kafka.

Start with `consentflow demo` (a shop's day on an embedded stack) or `consentflow dev`
(the stack and the four services in the foreground; it prints the settings the other
commands read). Every command has --help."""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click
from aiokafka.errors import KafkaError

from tools.operator_cli import GROUPS

# The services' base URLs in the environment the operator commands read.
SERVICE_URL_VARS = {
    "consent": "CONSENTFLOW_CONSENT_API_URL",
    "suppression": "CONSENTFLOW_SUPPRESSION_API_URL",
    "flow_executor": "CONSENTFLOW_FLOW_EXECUTOR_API_URL",
    "alert_dispatcher": "CONSENTFLOW_ALERT_DISPATCHER_API_URL",
}

VAR_HELP = "Folder for the stack's data, logs and captured mail."
var_option = click.option(
    "--var",
    default="var",
    show_default=True,
    envvar="CONSENTFLOW_VAR",
    show_envvar=True,
    help=VAR_HELP,
)


def dev_environment(stack: Any, account: str = "acme") -> dict[str, str]:
    """What the operator commands (and `publish`, `migrate`, `topics`) need to reach
    `stack` as `account`: every service's URL, the account and its key, Kafka, the
    database."""
    return {
        **{var: stack.services[name].base_url for name, var in SERVICE_URL_VARS.items()},
        "CONSENTFLOW_ACCOUNT": account,
        "CONSENTFLOW_API_KEY": stack.key_of(account),
        "KAFKA_BOOTSTRAP_SERVERS": stack.broker.bootstrap,
        "KAFKA_ENABLE_IDEMPOTENCE": "false",  # the embedded broker lacks it
        "DATABASE_URL": stack.dsn,
    }


def export_lines(env: dict[str, str]) -> list[str]:
    """`export NAME=value` lines a POSIX shell can run as they are."""
    return [f"export {name}={shlex.quote(value)}" for name, value in env.items()]


@click.group(help=__doc__, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    pass


@cli.command(
    short_help="Run the embedded stack and the four services in the foreground.",
    help="Start a Kafka-compatible broker, PostgreSQL and an SMTP capture server on free"
    " loopback ports, create the topics, apply the migrations and start the four"
    " services. Prints every address and the `export` lines the other commands need"
    " (also written to VAR/dev.env, so `. var/dev.env` loads them). Ctrl-C stops"
    " everything.",
)
@var_option
@click.option("--partitions", type=int, default=4, show_default=True, help="Partitions per topic.")
@click.option(
    "--account",
    default="acme",
    show_default=True,
    type=click.Choice(["acme", "globex"]),
    help="The account whose key the printed settings carry.",
)
def dev(var: str, partitions: int, account: str) -> None:
    from tools.devstack import EmbeddedStack

    stack = EmbeddedStack(Path(var), partitions=partitions)
    click.echo("starting the embedded stack …")
    stack.start()
    console = None
    try:
        stack.start_services()
        console = _start_console(stack, account)
        click.echo(f"Kafka (Tansu)   {stack.broker.bootstrap}")
        click.echo(f"PostgreSQL      {stack.dsn}")
        click.echo(f"SMTP capture    127.0.0.1:{stack.smtp.port} → {stack.smtp.mail_dir}/*.eml")
        for name, svc in stack.services.items():
            click.echo(f"{name:<15} {svc.base_url}  (logs: {svc.log_path})")
        click.echo(f"console         {console.base_url}  (sign in: {account} and its key)")
        click.echo(f"API keys        {stack.api_keys}")
        env_file = stack.root / "dev.env"
        lines = export_lines({**dev_environment(stack, account), CONSOLE_URL_VAR: console.base_url})
        env_file.write_text("\n".join(lines) + "\n")
        click.echo(f"\nIn another shell, for the other commands (or `. {env_file}`):")
        click.echo("\n".join(lines))
        click.echo("\nCtrl-C stops everything.")
        _wait_for_stop(stack)
    finally:
        click.echo("stopping …")
        (stack.root / "dev.env").unlink(missing_ok=True)  # `consentflow env`: none runs
        if console is not None:
            console.stop()
        stack.stop()


CONSOLE_URL_VAR = "CONSENTFLOW_CONSOLE_URL"


def _start_console(stack: Any, account: str) -> Any:
    """The operator console beside the dev stack's services, on a free loopback port."""
    from tools.devstack.stack import ServiceProcess, free_port

    env = {
        **{var: stack.services[name].base_url for name, var in SERVICE_URL_VARS.items()},
        "CONSENTFLOW_ACCOUNT": account,
    }
    port = free_port()
    log = stack.root / "logs" / "console.log"
    console = ServiceProcess("console", env, log, port, module="console")
    console.start()
    console.wait_ready()
    return console


def _wait_for_stop(stack: Any) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.wait(0.5):
        for name, svc in stack.services.items():
            if svc.proc is not None and svc.proc.poll() is not None:
                click.echo(f"{name} exited (code {svc.proc.returncode}); see {svc.log_path}")
                stop.set()


@cli.command(
    short_help="Play a shop's day end to end on the embedded stack.",
    help="Start the embedded stack and the four services, publish a realistic scenario"
    " (flows, recipients, consent and suppression commands, thousands of events), show"
    " progress and print what happened. Mails and logs are kept under VAR/demo/.",
)
@var_option
@click.option(
    "--events", type=int, default=5000, show_default=True, help="Profile events to publish."
)
def demo(var: str, events: int) -> None:
    from tools.demo import run_demo

    code = run_demo(Path(var), events=events)
    if code:
        raise click.exceptions.Exit(code)


@cli.command(
    short_help="Apply every service's migrations to DATABASE_URL.",
    help="Apply every service's migrations to the PostgreSQL database at DATABASE_URL"
    " (each service has its own schema); prints what was applied.",
)
def migrate() -> None:
    from shared.db.migrations import migrate_all
    from shared.settings import Settings

    try:
        applied = asyncio.run(migrate_all(Settings().database_url))
    except OSError as exc:
        raise click.ClickException(f"cannot reach PostgreSQL (DATABASE_URL): {exc}") from None
    for schema, names in applied.items():
        click.echo(f"{schema}: {', '.join(names) if names else 'up to date'}")


@cli.command(
    short_help="Create the topics on KAFKA_BOOTSTRAP_SERVERS.",
    help="Create every topic (inputs, outputs, dead-letter topics) on the broker at"
    " KAFKA_BOOTSTRAP_SERVERS, with the KAFKA_* security settings and KAFKA_TOPIC_PREFIX."
    " Topics that exist are left as they are.",
)
@click.option(
    "--partitions",
    type=int,
    default=None,
    help="Partitions per topic (default: TOPIC_PARTITIONS, 4).",
)
@click.option(
    "--replication-factor", type=int, default=1, show_default=True, help="Replicas per topic."
)
def topics(partitions: int | None, replication_factor: int) -> None:
    from shared.messaging.admin import ensure_topics
    from shared.settings import Settings

    settings = Settings()
    created = asyncio.run(
        ensure_topics(settings, partitions or settings.topic_partitions, replication_factor)
    )
    click.echo(f"created {len(created)} topics" + (f": {', '.join(created)}" if created else ""))


PUBLISH_HELP = (
    "Check FILE (JSON; - for standard input) against TOPIC's contract and publish it"
    " under the key the topic's contract names, on KAFKA_BOOTSTRAP_SERVERS. A payload"
    " that is not valid is refused with the reason (exit 1) and not published."
)


@cli.command(
    short_help="Publish a JSON payload (see examples/) to an input topic.", help=PUBLISH_HELP
)
@click.argument("topic")
@click.argument("file", type=click.File("rb"))
def publish(topic: str, file: Any) -> None:
    from shared.settings import Settings
    from tools.publish import NotAPayload, parse
    from tools.publish import publish as send

    raw = file.read()
    try:
        key, _ = parse(topic, raw)
    except NotAPayload as exc:
        raise click.ClickException(str(exc)) from None
    partition, offset = asyncio.run(send(Settings(), topic, key, raw))
    click.echo(f"published to {topic} (key {key}, partition {partition}, offset {offset})")


# The command's first name, kept for scripts written with it; not listed in --help.
cli.add_command(
    click.Command(
        "produce",
        callback=publish.callback,
        params=publish.params,
        help=f"The former name of `consentflow publish`. {PUBLISH_HELP}",
        short_help="Same as publish.",
        hidden=True,
    )
)


@cli.command(
    short_help="Serve the operator console (a web application).",
    help="Serve the operator console (W4): sign in with an account's API key to see flows,"
    " alert recipients and activity, the review queue and profiles' consent, and act on"
    " them through the services' HTTP APIs. Reads the services' addresses from"
    " CONSENTFLOW_<SERVICE>_API_URL (or CONSENTFLOW_API_URL), as the operator commands do;"
    " CONSOLE_SECRET (32 bytes or more) signs its sessions (generated when unset: sessions"
    " then end with the process). --check checks the settings and that the four services"
    " answer, then exits.",
)
@click.option("--host", default=None, help="Address to listen on [env HTTP_HOST; 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to listen on [env HTTP_PORT; 8090].")
@click.option("--check", is_flag=True, help="Check the settings and the services, then exit.")
def console(host: str | None, port: int | None, check: bool) -> None:
    from console.app import serve
    from console.settings import ConsoleRefused, ConsoleSettings

    overrides = {k: str(v) for k, v in (("HTTP_HOST", host), ("HTTP_PORT", port)) if v}
    try:
        settings = ConsoleSettings.from_env({**os.environ, **overrides})
    except ConsoleRefused as exc:
        raise click.UsageError(str(exc)) from None
    if check:
        down = [f"{n} at {u}" for n, u in settings.urls.items() if not _answers(u)]
        if down:
            raise click.ClickException(f"not answering: {', '.join(down)}")
        click.echo(
            "the four services answer; `consentflow console` would serve the console on"
            f" http://{settings.host}:{settings.port}/"
        )
        return
    code = serve(settings)
    if code:
        raise click.exceptions.Exit(code)


@cli.command(
    short_help="Print the settings of the running `consentflow dev`.",
    help="Print the `export` lines of the `consentflow dev` running on VAR (what it wrote to"
    ' VAR/dev.env), so that `eval "$(consentflow env)"` loads them into a shell. Exits 1,'
    " saying so, when no `consentflow dev` runs there.",
)
@click.option(
    "--var",
    default="var",
    show_default=True,
    envvar="CONSENTFLOW_VAR",
    show_envvar=True,
    help="The folder `consentflow dev` runs on.",
)
def env(var: str) -> None:
    path = Path(var) / "dev.env"
    if not path.is_file():
        raise click.ClickException(
            f"no `consentflow dev` runs on {var}/ ({path} does not exist): start one with"
            f" `consentflow dev --var {var}` in another shell"
        )
    text = path.read_text()
    url = dict(_parse_exports(text)).get(SERVICE_URL_VARS["consent"], "")
    if not _answers(url):
        raise click.ClickException(
            f"the `consentflow dev` that wrote {path} is not running (the consent service at"
            f" {url or '?'} does not answer): start it again with `consentflow dev --var {var}`"
        )
    click.echo(text, nl=False)


def _parse_exports(text: str) -> list[tuple[str, str]]:
    pairs = []
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, _, value = words[1].partition("=")
            pairs.append((name, value))
    return pairs


def _answers(base_url: str) -> bool:
    import urllib.request

    if not base_url.startswith("http://"):
        return False
    try:
        with urllib.request.urlopen(f"{base_url}/healthz", timeout=3) as r:
            return r.status == 200
    except OSError:
        return False


@cli.command(
    short_help="Print the records of a topic as JSON lines as they arrive.",
    help="Print each new record of TOPIC (an output topic such as alert-outcomes,"
    " message-requests, consent-changes; any consentflow topic works) as one JSON line:"
    " partition, offset, key, timestamp and value. Runs until Ctrl-C, --count records or"
    " --timeout; reads KAFKA_BOOTSTRAP_SERVERS and the other KAFKA_* settings.",
)
@click.argument("topic")
@click.option("--count", "-n", type=click.IntRange(min=1), help="Stop after this many records.")
@click.option(
    "--from-beginning", is_flag=True, help="Start at the oldest record kept, not at new ones."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop after this many seconds; with --count, fewer records than asked is exit 1.",
)
def tail(topic: str, count: int | None, from_beginning: bool, timeout: float | None) -> None:
    from shared.contracts import topics as known
    from shared.settings import Settings
    from tools.tail import NoSuchTopic
    from tools.tail import tail as run

    if topic not in known.ALL_TOPICS:
        raise click.ClickException(
            f"{topic!r} is not a consentflow topic; outputs: {', '.join(known.OUTPUT_TOPICS)}"
        )

    def emit(line: str) -> None:
        click.echo(line)
        sys.stdout.flush()

    try:
        got = asyncio.run(
            run(
                Settings(),
                topic,
                emit,
                count=count,
                from_beginning=from_beginning,
                timeout_s=timeout,
                ready=lambda text: click.echo(text, err=True),
            )
        )
    except NoSuchTopic as exc:
        raise click.ClickException(
            f"the broker has no topic {exc} (create the topics with `consentflow topics`)"
        ) from None
    if count is not None and timeout is not None and got < count:
        raise click.ClickException(f"{got} of {count} records of {topic} within {timeout:g} s")


_SHORT = {
    "consent": "A profile's consent, history, receipts, verify and explain.",
    "reviews": "Alerts held in manual review: list, approve, reject.",
    "recipients": "Alert recipients: list, re-send a confirmation.",
    "dlq": "Dead letters: list them, replay them after a fix.",
    "privacy": "Data-subject requests: export, erase, status.",
    "flows": "An account's sending window and quiet hours.",
}
for _name, _group in GROUPS.items():
    _group.short_help = _SHORT[_name]
    cli.add_command(_group, _name)


def main(argv: list[str] | None = None) -> int:
    """`consentflow`; returns the exit code: 0 done, 1 a failure (one line saying what
    went wrong), 2 a usage error or a broker it cannot reach (one line naming the
    setting, never a traceback)."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the one line says it
    try:
        cli.main(args=argv, prog_name="consentflow", standalone_mode=False)
    except (KafkaError, OSError) as exc:
        servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092 (the default)")
        click.echo(
            f"consentflow: cannot reach Kafka at {servers} (KAFKA_BOOTSTRAP_SERVERS): {exc}",
            err=True,
        )
        return 2
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
