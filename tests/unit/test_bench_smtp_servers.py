"""The bench's SMTP servers (`bench.smtp_servers`): the capture server is ready when
started, takes a mail, and is gone when stopped, so that a sink can take its port; a
server that cannot start says so instead of waiting out the timeout."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import aiosmtplib
import pytest

from bench import smtp_servers
from tools.devstack import free_port
from tools.devstack.processes import stop_process, wait_listening


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def test_the_capture_server_takes_mail_and_frees_its_port_when_stopped(tmp_path: Path) -> None:
    port = free_port()
    proc = smtp_servers.start_capture(port, tmp_path / "mail")
    try:
        asyncio.run(
            aiosmtplib.send(
                b"Subject: hi\r\n\r\nbody\r\n",
                sender="a@example.com",
                recipients=["b@example.com"],
                hostname="127.0.0.1",
                port=port,
            )
        )
        assert len(list((tmp_path / "mail").glob("*.eml"))) == 1
    finally:
        stop_process(proc)
    assert proc.returncode is not None
    assert not _listening(port)


def test_a_server_that_exits_before_listening_is_reported(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(RuntimeError, match="exited with 3"):
        wait_listening(proc, free_port(), timeout_s=10)
