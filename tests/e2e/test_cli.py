"""The operator's commands (SPEC "Running") against the four services on the embedded
stack, run as an operator runs them: the `consentflow` program, configured from the
environment."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from shared.contracts import topics
from tests.conftest import Kafka, eventually, mail_to
from tests.e2e.support import services_for
from tests.e2e.test_alert_slice import saved_by_executor
from tools.cli import cli as top_cli
from tools.cli import dev_environment, export_lines
from tools.operator_cli import GROUPS
from tools.operator_cli import cli as operator_cli

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

ACCOUNT = f"acct-cli-{uuid.uuid4().hex[:8]}"
KEY = f"key-{uuid.uuid4().hex}"


services = services_for(ACCOUNT, KEY)


def environment(stack) -> dict[str, str]:
    return {
        **{f"CONSENTFLOW_{n.upper()}_API_URL": s.base_url for n, s in stack.services.items()},
        "CONSENTFLOW_API_KEY": KEY,
        "CONSENTFLOW_ACCOUNT": ACCOUNT,
        "KAFKA_BOOTSTRAP_SERVERS": stack.broker.bootstrap,
        "KAFKA_ENABLE_IDEMPOTENCE": "false",  # the embedded broker lacks it
    }


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def cli(stack, *args: str, ok: bool = True, group=operator_cli) -> Ran:
    """Run `consentflow ARGS` in this process (a new interpreter per command costs
    seconds on a loaded machine); `test_running_the_program_itself` runs the real one."""
    # On a thread of its own: `dlq` runs its own event loop, and the test's is running.
    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(CliRunner().invoke, group, list(args), env=environment(stack)).result()
    ran = Ran(result.exit_code, result.stdout, result.stderr)
    if ok:
        assert ran.returncode == 0, (ran.stderr, ran.stdout, result.exception)
    return ran


def as_json(stack, *args: str) -> Any:
    return json.loads(cli(stack, *args, "--json").stdout)


def http(stack, service: str, path: str) -> Any:
    """The account's API answer, or None on 404 (for polling without a process each time)."""
    req = urllib.request.Request(
        f"{stack.services[service].base_url}/accounts/{ACCOUNT}{path}",
        headers={"Authorization": f"Bearer {KEY}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


async def _async(value):
    return value


def test_running_the_program_itself(services) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tools.cli", "reviews", "list", "--json"],
        env={**os.environ, **environment(services)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["account_id"] == ACCOUNT
    top = subprocess.run(
        [sys.executable, "-m", "tools.cli", "--help"], capture_output=True, text=True, check=True
    )
    listed = re.findall(r"^  (\S+)\s", top.stdout.split("Commands:")[1], re.M)
    expected = {"dev", "demo", "env", "migrate", "topics", "tail", "publish", "console", *GROUPS}
    assert set(listed) == expected, top.stdout
    assert ".py" not in top.stdout and "tools/" not in top.stdout


def test_running_the_settings_dev_prints_work_as_pasted(services) -> None:
    """`consentflow dev` prints `export` lines; pasted into a shell, they are all the
    operator commands need."""
    lines = export_lines(dev_environment(services, "acme"))
    names = {line.split()[1].split("=")[0] for line in lines}
    assert {
        "CONSENTFLOW_CONSENT_API_URL",
        "CONSENTFLOW_SUPPRESSION_API_URL",
        "CONSENTFLOW_FLOW_EXECUTOR_API_URL",
        "CONSENTFLOW_ALERT_DISPATCHER_API_URL",
        "CONSENTFLOW_API_KEY",
        "CONSENTFLOW_ACCOUNT",
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_ENABLE_IDEMPOTENCE",
        "DATABASE_URL",
    } <= names
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CONSENTFLOW_", "KAFKA_"))}
    script = "\n".join([*lines, f"exec {sys.executable} -m tools.cli reviews list --json"])
    proc = subprocess.run(
        ["sh", "-c", script], env=clean, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["account_id"] == "acme"


def test_running_services_serve_their_api_reference(services) -> None:
    """Each service serves the committed OpenAPI 3.1 document at /openapi.json and a page
    of it at /docs, without an API key."""
    validator = pytest.importorskip(
        "openapi_spec_validator", reason="openapi-spec-validator comes with the dev extras"
    )
    from tools.openapi_gen import DEFAULT_DIR, file_name

    for name, svc in services.services.items():
        with urllib.request.urlopen(f"{svc.base_url}/openapi.json", timeout=10) as r:
            served = json.loads(r.read())
        committed = json.loads((DEFAULT_DIR / file_name(name)).read_text())
        assert served == committed, name
        validator.validate(served)
        with urllib.request.urlopen(f"{svc.base_url}/docs", timeout=10) as r:
            assert r.status == 200 and r.headers["content-type"].startswith("text/html")
            page = r.read().decode()
        assert "<script" not in page
        for path, ops in served["paths"].items():
            for method in ops:
                assert f"{method.upper()}</span> <code>{path}</code>" in page, (name, path)


def program(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`consentflow ARGS` as a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_running_env_prints_the_settings_of_a_running_dev(services, tmp_path) -> None:
    """`consentflow env` prints what a running `consentflow dev` wrote to VAR/dev.env; no
    file, or a file whose services do not answer, is one line and exit 1."""
    running, stale = tmp_path / "running", tmp_path / "stale"
    for folder in (running, stale):
        folder.mkdir()
    lines = export_lines(dev_environment(services, "acme"))
    (running / "dev.env").write_text("\n".join(lines) + "\n")
    dead = {
        **dev_environment(services, "acme"),
        "CONSENTFLOW_CONSENT_API_URL": "http://127.0.0.1:9",
    }
    (stale / "dev.env").write_text("\n".join(export_lines(dead)) + "\n")

    shown = program("env", "--var", str(running))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == lines
    for folder, says in ((tmp_path / "none", "does not exist"), (stale, "not running")):
        failed = program("env", "--var", str(folder))
        assert failed.returncode == 1 and failed.stdout == "", failed
        [line] = failed.stderr.strip().splitlines()
        assert says in line and "consentflow dev" in line, line


async def test_running_tail_prints_new_records_as_json_lines(services, kafka: Kafka) -> None:
    """`consentflow tail consent-changes` follows the topic until interrupted (exit 0),
    `--count` stops it, an unknown topic or too few records by `--timeout` is one line
    and exit 1."""
    env = {**os.environ, **environment(services)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.cli",
        "tail",
        topics.CONSENT_CHANGES,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        ready = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert b"following consent-changes from now" in ready, ready
        pid = f"p-{uuid.uuid4().hex[:8]}"
        await kafka.send(
            topics.CONSENT_COMMANDS,
            pid,
            {
                "command_id": f"c-{uuid.uuid4().hex}",
                "account_id": ACCOUNT,
                "profile": {"id": pid, "phone_number": "+15555550144"},
                "action": "subscribe",
                "channel": "sms",
                "method": "form",
                "consented_at": "2026-11-24T10:00:00Z",
            },
        )
        while True:
            line = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
            if line["key"] == pid:
                break
        assert line["topic"] == topics.CONSENT_CHANGES and line["offset"] >= 0
        assert line["value"]["profile_id"] == pid, line
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    runs = await asyncio.gather(
        *(
            asyncio.to_thread(program, *args, env=environment(services))
            for args in (
                ("tail", topics.CONSENT_CHANGES, "--from-beginning", "-n", "1", "--timeout", "20"),
                ("tail", "no-such-topic"),
                ("tail", topics.dlq(topics.PRIVACY_RESULTS), "-n", "1", "--timeout", "0.5"),
            )
        )
    )
    first, unknown, quiet = runs
    assert first.returncode == 0, first.stderr
    assert [json.loads(x)["topic"] for x in first.stdout.splitlines()] == [topics.CONSENT_CHANGES]
    # The failure is one line (after the note of what it followed, for --timeout).
    for failed, says, before in ((unknown, "no-such-topic", 0), (quiet, "0 of 1 records", 1)):
        assert failed.returncode == 1 and failed.stdout == "", failed
        *note, line = failed.stderr.strip().splitlines()
        assert says in line and len(note) == before and "Traceback" not in failed.stderr, line


def test_running_every_command_has_help() -> None:
    """Every command answers --help, and every option says what it is for."""
    runner = CliRunner()

    def walk(command, path):
        result = runner.invoke(top_cli, [*path, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, (path, result.output)
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, (path, param.name)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(top_cli, [])


async def test_running_consent_show_and_history(services, kafka: Kafka) -> None:
    pid = f"p-{uuid.uuid4().hex[:8]}"
    await kafka.send(
        topics.CONSENT_COMMANDS,
        pid,
        {
            "command_id": f"c-{uuid.uuid4().hex}",
            "account_id": ACCOUNT,
            "profile": {"id": pid, "phone_number": "+15555550142"},
            "action": "subscribe",
            "channel": "sms",
            "method": "form",
            "consented_at": "2026-11-24T10:00:00Z",
        },
    )

    async def subscribed():
        data = http(services, "consent", f"/profiles/{pid}/consent")
        return data and data["channels"]["sms_marketing"]["status"] == "subscribed"

    await eventually(subscribed)
    table = cli(services, "consent", "show", pid).stdout
    assert re.search(r"^sms_marketing\s+subscribed\s+yes", table, re.M), table
    history = as_json(services, "consent", "history", pid)["history"]
    assert [h["action"] for h in history] == ["subscribe"]
    assert "subscribe" in cli(services, "consent", "history", pid).stdout
    for command in ("show", "history"):
        missing = cli(services, "consent", command, "p-nobody", ok=False)
        assert missing.returncode == 1, missing
        assert missing.stderr.strip().splitlines() == [
            f"Error: no profile 'p-nobody' in account '{ACCOUNT}': consent has no record of it"
        ]


async def test_running_publish_an_example_and_show_a_pending_double_opt_in(
    services, tmp_path
) -> None:
    """The producer quickstart through the command: an example payload published as it
    is (here an email subscribe, double opt-in, C8) and `consent show` naming the
    confirmation it waits for; a payload that is not valid is refused, unpublished."""
    pid = f"p-{uuid.uuid4().hex[:8]}"
    payload = json.loads((ROOT / "examples" / "consent-commands.json").read_text())
    payload |= {
        "command_id": f"c-{uuid.uuid4().hex}",
        "account_id": ACCOUNT,
        "profile": {"id": pid, "email": f"{pid}@example.com"},
        "channel": "email",
    }
    path = tmp_path / "subscribe.json"
    path.write_text(json.dumps(payload))
    out = cli(services, "publish", topics.CONSENT_COMMANDS, str(path), group=top_cli).stdout
    assert f"published to consent-commands (key {pid}" in out

    async def pending():
        data = http(services, "consent", f"/profiles/{pid}/consent")
        return data and data["pending_confirmations"]

    await eventually(pending)
    shown = cli(services, "consent", "show", pid).stdout
    assert re.search(r"^email\s+never_subscribed", shown, re.M), shown
    assert "pending: email subscribe waits for the confirmation link" in shown, shown

    path.write_text(json.dumps({**payload, "action": "maybe"}))
    # `produce`, the command's former name, is the same command
    for name in ("publish", "produce"):
        refused = cli(services, name, topics.CONSENT_COMMANDS, str(path), ok=False, group=top_cli)
        assert refused.returncode == 1 and "action" in refused.stderr, refused
        assert len(refused.stderr.strip().splitlines()) == 1


async def test_running_consent_receipts_verify_explain(services, kafka: Kafka) -> None:
    """C15-C17 from the command line: a profile's receipts in their chain, the chain and
    every chain of the account verified, and explain naming the receipt in force."""
    pid = f"p-{uuid.uuid4().hex[:8]}"

    def receipts_are(n: int):
        async def probe():
            data = http(services, "consent", f"/profiles/{pid}/consent/receipts")
            return data and len(data["receipts"]) == n

        return probe

    for n, action in enumerate(("subscribe", "unsubscribe")):
        await kafka.send(
            topics.CONSENT_COMMANDS,
            pid,
            {
                "command_id": f"c-{uuid.uuid4().hex}",
                "account_id": ACCOUNT,
                "profile": {"id": pid, "phone_number": "+15555550143"},
                "action": action,
                "channel": "sms",
                "method": "form",
                "notice": "https://acme.test/sms-terms#v3",
                "jurisdiction": "US-NY",
                "consented_at": f"2026-11-24T10:0{n}:00Z",
            },
        )
        await eventually(receipts_are(n + 1))
    receipts = as_json(services, "consent", "receipts", pid)["receipts"]
    assert [r["status"] for r in receipts] == ["subscribed", "unsubscribed"]
    assert receipts[1]["previous_hash"] == receipts[0]["hash"]
    assert (receipts[0]["notice"], receipts[0]["jurisdiction"]) == (
        "https://acme.test/sms-terms#v3",
        "US-NY",
    )
    in_force = receipts[1]["receipt_id"]
    assert in_force in cli(services, "consent", "receipts", pid).stdout
    assert f"{pid}: 2 receipts verify" in cli(services, "consent", "verify", pid).stdout
    account = as_json(services, "consent", "verify", "--all")
    assert account["ok"] and account["receipts"] >= 2, account
    assert "all verify" in cli(services, "consent", "verify", "--all").stdout
    explained = cli(services, "consent", "explain", pid, "--channel", "sms").stdout
    assert "may not receive" in explained and in_force in explained, explained


async def test_running_reviews_and_recipients(services, kafka: Kafka) -> None:
    lead = f"lead-{uuid.uuid4().hex[:8]}@acme.test"
    await kafka.send(
        topics.FLOW_DEFINITIONS,
        f"{ACCOUNT}:held",
        {
            "account_id": ACCOUNT,
            "flow_id": "held",
            "version": 1,
            "name": "held",
            "trigger": {"type": "metric", "metric": "Asked For Help"},
            "profile_filter": None,
            "steps": [
                {
                    "id": "alert",
                    "type": "internal_alert",
                    "mode": "manual",
                    "recipients": [lead],
                    "from_email": "alerts@acme.test",
                    "subject": "Help",
                    "body": "{{ person.id }}",
                    "next": None,
                }
            ],
        },
    )
    first = await eventually(lambda: _async(mail_to(services, lead)))
    listed = as_json(services, "recipients", "list")["recipients"]
    assert [(r["email"], r["status"]) for r in listed] == [(lead, "unconfirmed")]
    assert lead in cli(services, "recipients", "list").stdout
    assert "queued" in cli(services, "recipients", "resend", lead).stdout
    await eventually(lambda: _async(len(mail_to(services, lead)) > len(first)))

    await saved_by_executor(services, ACCOUNT, "held")
    for n in range(2):
        pid = f"p-{uuid.uuid4().hex[:8]}"
        await kafka.send(
            topics.PROFILE_EVENTS,
            pid,
            {
                "event_id": f"e-{uuid.uuid4().hex}",
                "account_id": ACCOUNT,
                "metric": "Asked For Help",
                "profile": {"id": pid},
                "properties": {"n": n},
                "time": "2026-11-24T10:00:00Z",
            },
        )

    async def two_held():
        held = http(services, "flow_executor", "/reviews")["in_review"]
        return held if len(held) == 2 else None

    held = await eventually(two_held, timeout_s=45)
    assert held[0]["alert_id"] in cli(services, "reviews", "list").stdout
    approved = as_json(services, "reviews", "approve", held[0]["alert_id"])
    assert approved["alert_id"] == held[0]["alert_id"]
    assert "reject" in cli(services, "reviews", "reject", held[1]["alert_id"]).stdout.lower()
    assert as_json(services, "reviews", "list")["in_review"] == []
    again = cli(services, "reviews", "approve", held[0]["alert_id"], ok=False)
    assert again.returncode != 0 and "409" in again.stderr


async def test_running_dlq_list_and_replay_once(services, kafka: Kafka) -> None:
    key = f"p-bad-{uuid.uuid4().hex[:8]}"
    raw = b'{"command_id": "c-1", "this is": "not a consent command"}'
    await kafka.send(topics.CONSENT_COMMANDS, key, raw)

    await eventually(lambda: letters_for(kafka, key, 1))
    rows = as_json(services, "dlq", "list", topics.CONSENT_COMMANDS)
    [letter] = [r for r in rows if r["key"] == key]
    assert letter["replayed"] is False and "invalid message" in letter["error"]
    assert key in cli(services, "dlq", "list", topics.CONSENT_COMMANDS).stdout
    where = (
        "--partition",
        str(letter["partition"]),
        "--from-offset",
        str(letter["offset"]),
        "--to-offset",
        str(letter["offset"]),
    )
    first = as_json(services, "dlq", "replay", topics.CONSENT_COMMANDS, *where)
    assert len(first["replayed"]) == 1
    # The replayed bytes are back on the source topic (and, still invalid, dead-lettered
    # again as a new letter).
    back = await eventually(lambda: letters_for(kafka, key, 2))
    assert len(back) == 2
    second = as_json(services, "dlq", "replay", topics.CONSENT_COMMANDS, *where)
    assert second["replayed"] == [] and second["already_replayed"] == first["replayed"]
    assert "replayed 0" in cli(services, "dlq", "replay", topics.CONSENT_COMMANDS, *where).stdout
    listed = as_json(services, "dlq", "list", topics.CONSENT_COMMANDS, *where)
    assert [r["replayed"] for r in listed] == [True]


async def letters_for(kafka: Kafka, key: str, n: int):
    rows = await kafka.read_all(topics.dlq(topics.CONSENT_COMMANDS))
    mine = [v for k, v in rows if k == key]
    return mine if len(mine) >= n else None


async def test_running_privacy_export_erase_status(services, kafka: Kafka, tmp_path) -> None:
    pid = f"p-{uuid.uuid4().hex[:8]}"
    email = f"{pid}@example.org"
    await kafka.send(
        topics.SUPPRESSION_COMMANDS,
        pid,
        {
            "command_id": f"s-{uuid.uuid4().hex}",
            "account_id": ACCOUNT,
            "profile": {"id": pid, "email": email},
            "action": "suppress",
            "reason": "manual",
            "occurred_at": "2026-11-24T10:00:00Z",
        },
    )

    async def suppressed():
        data = http(services, "consent", f"/profiles/{pid}/consent")
        return data and data["channels"]["email"]["suppressions"]

    await eventually(suppressed)
    document = json.loads(cli(services, "privacy", "export", "--email", email).stdout)
    assert document["profile_ids"] == [pid]
    assert document["suppression"]["suppressions"][0]["reason"] == "manual"
    out = tmp_path / "export.json"
    shown = cli(services, "privacy", "export", "--profile", pid, "-o", str(out)).stdout
    assert "done" in shown and json.loads(out.read_text())["profile_ids"] == [pid]

    erased = as_json(services, "privacy", "erase", "--profile", pid, "--yes")
    assert erased["status"] == "done"
    assert set(erased["services"]) == {
        "consent",
        "suppression",
        "flow_executor",
        "alert_dispatcher",
    }
    status = as_json(services, "privacy", "status", erased["request_id"])
    assert status["action"] == "erase" and status["status"] == "done"
    assert "alert_dispatcher" in cli(services, "privacy", "status", erased["request_id"]).stdout
    refused = cli(services, "privacy", "erase", ok=False)
    assert refused.returncode != 0 and "--profile" in refused.stderr


@pytest.mark.parametrize("command", ["list", "replay"])
def test_dlq_of_an_unknown_topic_is_one_line_and_exit_1(stack, command: str) -> None:
    """`dlq list no-such-topic`: one line that names the topic, exit 1, no traceback."""
    env = {"KAFKA_BOOTSTRAP_SERVERS": stack.broker.bootstrap, "KAFKA_ENABLE_IDEMPOTENCE": "false"}
    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(
            CliRunner().invoke, operator_cli, ["dlq", command, "no-such-topic"], env=env
        ).result()
    assert result.exit_code == 1, (result.output, result.exception)
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert "no-such-topic" in line and "Traceback" not in line
