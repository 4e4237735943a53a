"""The README's ten-minute tour as CI runs it: `consentflow dev` started as a process on a
folder of its own (its own embedded stack on free loopback ports), then examples/tour.sh
(the README's block, tests/unit/test_readme_tour.py) run by bash in a clean environment
that has only the virtualenv and the folder's name, and `consentflow dev` stopped with
Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tools.cli import SERVICE_URL_VARS, _parse_exports

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def wait_until_running(var: Path, dev: subprocess.Popen[bytes], log: Path) -> None:
    """Until `consentflow dev` has written VAR/dev.env and its consent service answers."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert dev.poll() is None, f"consentflow dev exited: {log.read_text()}"
        env_file = var / "dev.env"
        if env_file.is_file():
            url = dict(_parse_exports(env_file.read_text())).get(SERVICE_URL_VARS["consent"])
            if url and answers(url):
                return
        time.sleep(0.2)
    raise AssertionError(f"consentflow dev not running after 90 s: {log.read_text()}")


def stop(dev: subprocess.Popen[bytes]) -> int:
    """Ctrl-C, as a person stops it; its process group killed only if it hangs."""
    if dev.poll() is None:
        dev.send_signal(signal.SIGINT)
        try:
            return dev.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait(10)
            raise
    return dev.returncode


def test_the_readme_tour_runs_as_pasted(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Short: PostgreSQL's socket lives under it, and a socket path has at most 107 bytes.
    var = tmp_path_factory.mktemp("tour")
    log = var.parent / f"{var.name}-dev.log"
    inherited = {
        k: v for k, v in os.environ.items() if not k.startswith(("CONSENTFLOW_", "KAFKA_"))
    }
    with log.open("wb") as out:
        dev = subprocess.Popen(
            [sys.executable, "-m", "tools.cli", "dev", "--var", str(var)],
            cwd=ROOT,
            env=inherited,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own group: Ctrl-C in the test's terminal is ours
        )
    try:
        wait_until_running(var, dev, log)
        clean = {
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "VIRTUAL_ENV": sys.prefix,
            "CONSENTFLOW_VAR": str(var),
        }
        tour = subprocess.run(
            ["bash", "-e", "examples/tour.sh"],
            cwd=ROOT,
            env=clean,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        said = f"stdout:\n{tour.stdout}\nstderr:\n{tour.stderr}"
        assert tour.returncode == 0, said
        for topic in ("flow-definitions", "consent-commands", "profile-events"):
            assert f"published to {topic} (key " in tour.stdout, said
        # her consent: subscribed, over HTTP and in `consent show`
        assert '"sms_marketing":{"status":"subscribed"' in tour.stdout, said
        assert re.search(r"^sms_marketing\s+subscribed\s+yes\s", tour.stdout, re.M), said
        # the text the flow requested, on its output topic
        [request] = [
            json.loads(line)
            for line in tour.stdout.splitlines()
            if line.startswith('{"topic": "message-requests"')
        ]
        assert request["value"]["flow_id"] == "nps" and request["value"]["step_id"] == "thanks"
        assert request["value"]["channel"] == "sms" and request["key"] == "ada"
        # the executor's decisions: the text executed, the alert held for review
        activity = [
            json.loads(line)
            for line in tour.stdout.splitlines()
            if line.startswith('{"account_id":"acme","flow_id":"nps"')
        ][-1]
        steps = activity["steps"]
        assert steps["thanks"]["executed"]["profiles"] == ["ada"], said
        assert steps["alert"]["in_review"]["count"] == 1, said
        assert re.search(r"^\S+:alert\s+nps\s+alert\s+ada\s", tour.stdout, re.M), said
        assert "ada on sms_transactional: may receive" in tour.stdout, said
        # the operator console: its settings check, and its sign-in page served
        assert "the four services answer" in tour.stdout, said
        assert "Sign in to the console" in tour.stdout, said
        assert "Traceback" not in tour.stderr, said
    finally:
        code = stop(dev)
    assert code == 0, log.read_text()
    assert not (var / "dev.env").exists()  # `consentflow env` now says none runs there
