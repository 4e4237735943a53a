"""`tools.devstack.free_port`: a port picked for a server that binds it later is one no
outgoing connection can take meanwhile (below the kernel's ephemeral range), free when
picked, and never given out twice by one process."""

from __future__ import annotations

import socket

import pytest

from tools.devstack import ports
from tools.devstack.ports import ephemeral_range, free_port


@pytest.mark.skipif(ephemeral_range() is None, reason="the kernel's port range is Linux's")
def test_a_port_is_below_the_ephemeral_range_and_given_once() -> None:
    span = ephemeral_range()
    assert span is not None
    picked = [free_port() for _ in range(300)]
    assert len(set(picked)) == len(picked)
    assert all(ports._LOWEST <= p < span[0] for p in picked)


def test_a_port_something_listens_on_is_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        free = other.getsockname()[1]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        choices = iter([busy, busy, free])
        monkeypatch.setattr(ports, "ephemeral_range", lambda: (65000, 65535))
        monkeypatch.setattr(ports, "_LOWEST", 1024)
        monkeypatch.setattr(ports.random, "randrange", lambda *_: next(choices))
        monkeypatch.setattr(ports, "_given", set())
        assert free_port() == free


def test_without_a_known_range_the_kernel_picks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "ephemeral_range", lambda: None)
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # free: nothing took it
