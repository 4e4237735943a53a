"""The `consentflow` command answers a broker it cannot reach with one line naming the
setting and exit code 2, never a traceback (the operator's contract)."""

from __future__ import annotations

import socket

import pytest

from tools.cli import main


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("argv", [["topics"], ["dlq", "list", "profile-events"]])
def test_an_unreachable_broker_is_one_line_and_exit_2(argv, monkeypatch, capsys) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("KAFKA_REQUEST_TIMEOUT_MS", "3000")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "KAFKA_BOOTSTRAP_SERVERS" in err[0], err
    assert "Traceback" not in err[0]
