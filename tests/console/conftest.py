"""The operator console against the real stack: the embedded broker, PostgreSQL and SMTP
capture (the session's `stack`), the four services as processes, and the console as its
own process (`python -m console`), all on free loopback ports; Debian's Chromium through
Playwright with axe-core, as in tests/browser (skipped, naming the install command, where
Chromium or axe-core is missing; a failure in CI).

Two accounts of their own: the one the operator works in, and another whose key must
open nothing of the first (X5, W6)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import launched_chromium, skip_without_browser
from tools.devstack import EmbeddedStack
from tools.devstack.stack import ServiceProcess, free_port

HERE = Path(__file__).resolve().parent
BROWSER_TESTS = ("test_console_in_chromium.py",)


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    skip_without_browser(items, lambda path: path.name in BROWSER_TESTS)


@dataclass(frozen=True)
class Accounts:
    """The operator's account and key, and another account's key."""

    ours: str
    key: str
    theirs: str
    their_key: str


@pytest.fixture(scope="module")
def accounts() -> Accounts:
    run = uuid.uuid4().hex[:6]
    return Accounts(
        ours=f"alpenglow-{run}",
        key=f"key-alpenglow-{secrets.token_urlsafe(16)}",
        theirs=f"other-{run}",
        their_key=f"key-other-{secrets.token_urlsafe(16)}",
    )


@pytest.fixture(scope="module")
def services(stack: EmbeddedStack, accounts: Accounts) -> Iterator[EmbeddedStack]:
    keys = f"{stack.api_keys},{accounts.ours}:{accounts.key},{accounts.theirs}:{accounts.their_key}"
    stack.start_services(API_KEYS=keys)
    try:
        yield stack
    finally:
        stack.stop_services()


def start_console(stack: EmbeddedStack, **env: str) -> ServiceProcess:
    """`python -m console` against the stack's services, ready to answer."""
    urls = {
        f"CONSENTFLOW_{name.upper()}_API_URL": svc.base_url for name, svc in stack.services.items()
    }
    settings = {
        **urls,
        "HTTP_HOST": "127.0.0.1",
        "CONSOLE_SECRET": secrets.token_hex(32),
        "CONSOLE_TIMEZONE": "Europe/Berlin",
        **env,
    }
    port = free_port()
    log = stack.root / "logs" / f"console-{port}.log"
    console = ServiceProcess("console", settings, log, port, module="console")
    console.start()
    try:
        console.wait_ready(timeout_s=30)
    except BaseException:
        console.stop()
        raise
    return console


@pytest.fixture(scope="module")
def console(services: EmbeddedStack, accounts: Accounts) -> Iterator[ServiceProcess]:
    c = start_console(services, CONSENTFLOW_ACCOUNT=accounts.ours)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    async with launched_chromium() as b:
        yield b
