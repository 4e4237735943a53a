"""Free TCP ports on loopback for the embedded stack's servers and services.

A port is picked here and bound later by another process (the broker, a service). A port
the kernel gave out as free (`bind(0)`) comes from its ephemeral range, the same range
it takes the source port of every outgoing connection from: between the pick and the
bind, a client connection (a Kafka or PostgreSQL client of a service already running)
can take it, and the server then fails to start (seen once in the bench). So ports are
picked below the ephemeral range, where the kernel never puts a connection, checked free
by binding them, and never handed out twice by one process.
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10000  # above the well-known and most registered servers' ports
_given: set[int] = set()
_lock = threading.Lock()


def ephemeral_range() -> tuple[int, int] | None:
    """The kernel's range for the source ports of outgoing connections (Linux), or None
    where it cannot be read."""
    try:
        low, high = (int(p) for p in _RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return None
    return low, high


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now, outside the kernel's
    ephemeral range, not given out before by this process."""
    span = ephemeral_range()
    with _lock:
        if span is not None and span[0] - _LOWEST >= 1000:
            for _ in range(200):
                port = random.randrange(_LOWEST, span[0])
                if port not in _given and _bindable(port):
                    _given.add(port)
                    return port
        while True:  # no range known (or none below it): what the kernel gives out
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            if port not in _given:
                _given.add(port)
                return port
