"""Ending the child processes the embedded stack and the bench start."""

from __future__ import annotations

import subprocess


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
