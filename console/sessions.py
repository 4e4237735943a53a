"""Sessions of the operator console (W4), without I/O so that they are tested alone.

- A session is opened by an API key the services accept. The key stays on the server:
  the browser holds only a random session id, signed with the console's secret
  (HMAC-SHA256), in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` outside loopback).
- Sessions are kept in memory. Signing out removes the session, so a copy of the cookie
  taken before (a replay) opens nothing. Sessions also end after a time without use
  and after a longest lifetime.
- Every state-changing form carries the session's CSRF token; a request without it, or
  with another session's, changes nothing.
- A wrong key is answered after a delay that doubles with each failure from the same
  address (up to a ceiling) and is forgotten after a quiet while.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

COOKIE = "consentflow_console"
SIGN_IN_COOKIE = "consentflow_console_signin"
IDLE_SECONDS = 30 * 60
LONGEST_SECONDS = 12 * 3600
MIN_SECRET_BYTES = 32


def _mac(secret: bytes, purpose: str, value: str) -> str:
    return hmac.new(secret, f"{purpose}\x00{value}".encode(), hashlib.sha256).hexdigest()


def sign(secret: bytes, value: str, purpose: str = "session") -> str:
    """`value` with its MAC, for a cookie."""
    return f"{value}.{_mac(secret, purpose, value)}"


def unsign(secret: bytes, signed: str | None, purpose: str = "session") -> str | None:
    """The value of a signed cookie, or None when it is missing, forged or altered."""
    if not signed:
        return None
    value, dot, mac = signed.rpartition(".")
    if not dot or not value:
        return None
    if not hmac.compare_digest(mac, _mac(secret, purpose, value)):
        return None
    return value


def same_token(given: str | None, expected: str) -> bool:
    """Whether a form's CSRF token is the session's (constant time)."""
    return bool(given) and hmac.compare_digest(str(given), expected)


@dataclass
class Session:
    """One signed-in operator: the account, its API key and who they said they are."""

    session_id: str
    account: str
    key: str
    actor: str | None
    csrf: str
    created: float
    seen: float
    timezone: str = "UTC"
    flash: list[tuple[str, str]] = field(default_factory=list)

    def take_flash(self) -> list[tuple[str, str]]:
        """The notices to show once (kind, text), then forgotten."""
        shown, self.flash = self.flash, []
        return shown


@dataclass
class SessionStore:
    """The console's sessions, in memory (one console replica, or sticky sessions)."""

    clock: Callable[[], float] = time.monotonic
    idle_seconds: float = IDLE_SECONDS
    longest_seconds: float = LONGEST_SECONDS
    _sessions: dict[str, Session] = field(default_factory=dict)

    def open(self, account: str, key: str, actor: str | None, timezone: str = "UTC") -> Session:
        """A new session with its own id and CSRF token."""
        self._expire()
        now = self.clock()
        session = Session(
            session_id=secrets.token_urlsafe(32),
            account=account,
            key=key,
            actor=actor,
            csrf=secrets.token_urlsafe(32),
            created=now,
            seen=now,
            timezone=timezone,
        )
        self._sessions[session.session_id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of `session_id` (touched), or None: unknown, ended or
        expired."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self.clock()
        if now - session.seen > self.idle_seconds or now - session.created > self.longest_seconds:
            self._sessions.pop(session_id, None)
            return None
        session.seen = now
        return session

    def close(self, session_id: str) -> None:
        """Sign-out: the session is gone; its cookie opens nothing any more."""
        self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)

    def _expire(self) -> None:
        now = self.clock()
        for sid, s in list(self._sessions.items()):
            if now - s.seen > self.idle_seconds or now - s.created > self.longest_seconds:
                del self._sessions[sid]


@dataclass
class SignInThrottle:
    """The growing delay after wrong keys, per client address: `first` seconds after the
    first failure, doubling up to `ceiling`; forgotten `forget_after` seconds after the
    last failure, and on a successful sign-in."""

    first: float = 0.5
    ceiling: float = 8.0
    forget_after: float = 15 * 60
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, tuple[int, float]] = field(default_factory=dict)

    def failed(self, address: str) -> float:
        """Record a failure; the delay to wait before answering it."""
        now = self.clock()
        count, last = self._failures.get(address, (0, now))
        if now - last > self.forget_after:
            count = 0
        count += 1
        self._failures[address] = (count, now)
        if len(self._failures) > 10_000:  # a flood of addresses: keep the newest
            oldest = sorted(self._failures.items(), key=lambda kv: kv[1][1])[:5_000]
            for addr, _ in oldest:
                del self._failures[addr]
        return min(self.ceiling, self.first * 2 ** (count - 1))

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)


def is_loopback(host: str | None) -> bool:
    """Whether the console is reached on this machine only (then the cookie may go
    without `Secure`, since plain HTTP on loopback never leaves the host)."""
    return (host or "").strip("[]") in ("127.0.0.1", "localhost", "::1") or (host or "").startswith(
        "127."
    )


def secret_problem(secret: str) -> str | None:
    """Why a configured `CONSOLE_SECRET` may not sign sessions, or None."""
    if len(secret.encode()) < MIN_SECRET_BYTES:
        return (
            f"CONSOLE_SECRET is shorter than {MIN_SECRET_BYTES} bytes:"
            " generate one with `openssl rand -hex 32`"
        )
    return None
