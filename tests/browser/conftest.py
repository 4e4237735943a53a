"""Debian's Chromium driven by Playwright (no browser download), with axe-core injected
for the accessibility check, against the consent service and the alert dispatcher as
real processes.

`.ci/run` installs Chromium (`apt-get install chromium`) and axe-core (`npm install`
here) and sets `CONSENTFLOW_REQUIRE_BROWSER=1`, so that in CI a missing tool is a
failure; elsewhere these tests are skipped with the command that installs what is
missing. `SCREENSHOTS=docs/screenshots python -m pytest tests/browser` regenerates the
screenshots in docs/architecture.md."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tools.devstack import EmbeddedStack

HERE = Path(__file__).resolve().parent
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
_RUN = uuid.uuid4().hex[:6]
ACCOUNTS = [f"br{_RUN}-{i}" for i in range(20)]
_free = list(ACCOUNTS)
SERVICES = ("consent", "alert_dispatcher")


INSTALL = "apt-get install chromium && npm install --prefix tests/browser"


def _missing() -> str | None:
    """Why the browser tests cannot run here, naming the install steps; None if they can."""
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append("Chromium")
    if not AXE.exists():
        missing.append("axe-core")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        missing.append('Playwright (pip install -e ".[dev]")')
    if not missing:
        return None
    return f"browser tests need {' and '.join(missing)}: install with `{INSTALL}`"


def skip_without_browser(items: list[Any], needs_browser: Callable[[Path], bool]) -> None:
    """Skip the collected tests that need the browser when it is missing, saying how to
    install it; with `CONSENTFLOW_REQUIRE_BROWSER=1` (CI) refuse to run instead."""
    why = _missing()
    if why is None:
        return
    if os.environ.get("CONSENTFLOW_REQUIRE_BROWSER") == "1":
        raise pytest.UsageError(why)
    for item in items:
        if needs_browser(Path(str(item.fspath))):
            item.add_marker(pytest.mark.skip(reason=why))


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    skip_without_browser(items, lambda path: HERE in path.parents)


def headers(account: str) -> dict[str, str]:
    return {"authorization": f"Bearer key-{account}-for-tests"}


@pytest.fixture
def acct() -> str:
    return _free.pop(0)


@pytest.fixture(scope="module")
def services(stack: EmbeddedStack) -> Iterator[EmbeddedStack]:
    keys = ",".join([stack.api_keys, *(f"{a}:key-{a}-for-tests" for a in ACCOUNTS)])
    stack.start_services(SERVICES, API_KEYS=keys)
    try:
        yield stack
    finally:
        for name in SERVICES:
            stack.services[name].stop()


def _screenshot_folder() -> None:
    if shots := os.environ.get("SCREENSHOTS"):
        Path(shots).mkdir(parents=True, exist_ok=True)


@contextlib.asynccontextmanager
async def launched_chromium() -> AsyncIterator[Any]:
    """Debian's Chromium, headless, driven by Playwright; closed on the way out."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    _screenshot_folder()
    async with launched_chromium() as b:
        yield b
