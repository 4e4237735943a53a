"""Starting and ending the child processes the embedded stack and the bench run: a
server is ready once it accepts connections, and is stopped by its process."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path


def wait_listening(
    proc: subprocess.Popen[bytes],
    port: int,
    timeout_s: float = 10.0,
    name: str | None = None,
    log: Path | None = None,
) -> None:
    """Until `proc` accepts connections on `port` on loopback: RuntimeError if it exits
    first (`log`: where to look), TimeoutError if it never listens."""
    name = name or str(proc.args[0])  # type: ignore[index]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            see = f"; see {log}" if log else ""
            raise RuntimeError(f"{name} exited with {proc.returncode} at start{see}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{name} did not open its port {port}")


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """Ask `proc` to end (SIGTERM: services drain and close their connections) and wait up
    to `timeout_s`; then kill it. Nothing to do if it already ended."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
