"""An SMTP capture server (aiosmtpd) that keeps every mail as an `.eml` file, and can be
told to answer with a failure (421, 451, 550) or drop the connection, for A9 tests."""

from __future__ import annotations

import itertools
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class CaptureHandler:
    def __init__(self, mail_dir: Path) -> None:
        self.mail_dir = mail_dir
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self.fail_with: str | None = None  # e.g. "451 4.3.0 try later"; "drop" closes
        self.fail_times: int | None = None  # None = until cleared
        # Failures scoped to one recipient address, so that tests sharing the server do
        # not disturb each other: address -> [mode, times left or None].
        self.fail_for: dict[str, list[Any]] = {}

    def fail_recipient(self, address: str, mode: str | None, times: int | None = None) -> None:
        """Answer mails to `address` with `mode` (`"451 ..."`, `"550 ..."`, `"drop"`), for
        `times` mails or until cleared with `mode=None`."""
        with self._lock:
            if mode is None:
                self.fail_for.pop(address.lower(), None)
            else:
                self.fail_for[address.lower()] = [mode, times]

    def _scoped_failure(self, rcpts: list[str]) -> str | None:
        with self._lock:
            for rcpt in rcpts:
                entry = self.fail_for.get(rcpt.lower())
                if entry is None:
                    continue
                mode, times = entry
                if times is not None:
                    if times <= 1:
                        del self.fail_for[rcpt.lower()]
                    else:
                        entry[1] = times - 1
                return str(mode)
        return None

    def _should_fail(self) -> str | None:
        with self._lock:
            if self.fail_with is None:
                return None
            mode = self.fail_with
            if self.fail_times is not None:
                self.fail_times -= 1
                if self.fail_times <= 0:
                    self.fail_with, self.fail_times = None, None
            return mode

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mode = self._scoped_failure(list(envelope.rcpt_tos)) or self._should_fail()
        if mode == "drop":
            server.transport.close()
            return "421 closing"
        if mode is not None:
            return mode
        n = next(self._seq)
        rcpt = envelope.rcpt_tos[0].replace("/", "_") if envelope.rcpt_tos else "unknown"
        path = self.mail_dir / f"{n:07d}-{rcpt}.eml"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(envelope.original_content or envelope.content)
        tmp.rename(path)
        return "250 OK"


class SmtpCapture:
    def __init__(self, port: int, mail_dir: Path) -> None:
        self.port = port
        self.handler = CaptureHandler(mail_dir)
        self._controller: Controller | None = None

    @property
    def mail_dir(self) -> Path:
        return self.handler.mail_dir

    def start(self) -> None:
        self._controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, ready_timeout=10
        )
        self._controller.start()

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    @property
    def running(self) -> bool:
        return self._controller is not None

    def messages(self) -> list[EmailMessage]:
        """Every captured mail, oldest first."""
        return [
            message_from_bytes(p.read_bytes(), policy=policy.default)  # type: ignore[misc]
            for p in sorted(self.mail_dir.glob("*.eml"))
        ]


def main() -> None:
    """`python -m tools.devstack.smtp PORT DIR`: the capture server as a process of its
    own (the benchmark uses it so that the server does not share a GIL with the load)."""
    import signal
    import sys

    capture = SmtpCapture(int(sys.argv[1]), Path(sys.argv[2]))
    capture.start()
    try:
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
    finally:
        capture.stop()


if __name__ == "__main__":
    main()
