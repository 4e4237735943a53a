"""The SMTP servers the bench's mail goes to, each a process of its own.

- **The capture server** (`tools.devstack.smtp`, aiosmtpd): every mail kept as a file,
  which the bench reads the recipients' confirmation links from. It is Python, and it
  shares the machine's two cores with the services: measured here, 1.1–3.0 ms of CPU per
  mail, as much as the alert dispatcher's whole mail path. At 1,000 events/s (200 alert
  mails/s) it kept a third of a core busy, which the product's latency queues behind.
- **Postfix's `smtp-sink`** (`--smtp-sink BINARY`): a test server written in C that
  answers the SMTP conversation and keeps nothing, 0.14–0.17 ms of CPU per mail. It
  stands for a relay on a machine of its own, as in production, so that a run with it
  shows what the product's mail path costs without the capture server's CPU. The
  bench confirms the recipients with the capture server first (it needs their mail),
  then swaps the sink in on the same port for (d), the alert mails and the latency
  curve. It is not installed by `.ci/run`: `apt-get download postfix && dpkg -x
  postfix_*.deb var/postfix` gives `var/postfix/usr/sbin/smtp-sink`, run beside the
  package's own libraries (no Postfix is installed or started).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tools.devstack.processes import stop_process, wait_listening


def start_capture(port: int, mail_dir: Path) -> subprocess.Popen[bytes]:
    """The capture server on `port`, keeping every mail in `mail_dir`; ready on return."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.devstack.smtp", str(port), str(mail_dir)],
        stdin=subprocess.DEVNULL,
    )
    wait_listening(proc, port)
    return proc


def start_sink(binary: Path, port: int) -> subprocess.Popen[bytes]:
    """Postfix's `smtp-sink` on `port` (it keeps no mail), with the libraries of the
    package it was unpacked from; ready on return. As root it must drop to a user of
    its own (`-u nobody`) once the socket is open."""
    libs = binary.resolve().parent.parent / "lib" / "postfix"
    env = dict(os.environ)
    if libs.is_dir():
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(libs), env.get("LD_LIBRARY_PATH", "")) if p
        )
    command = [str(binary)]
    if os.geteuid() == 0:
        command += ["-u", "nobody"]
    proc = subprocess.Popen(
        [*command, f"127.0.0.1:{port}", "256"],
        stdin=subprocess.DEVNULL,
        env=env,
    )
    wait_listening(proc, port)
    return proc


def swap_to_sink(
    capture: subprocess.Popen[bytes], binary: Path, port: int
) -> subprocess.Popen[bytes]:
    """Stop the capture server and start `smtp-sink` on its port: the services' SMTP
    connections are dropped and reopen to the sink."""
    stop_process(capture)
    return start_sink(binary, port)
