"""`consentflow flows sending-settings` (F8): shows the account's sending window and
changes only what its options give, through the executor's HTTP API."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from tools import operator_cli

SHOWN = {
    "account_id": "acme",
    "window_start": "08:00",
    "window_end": "21:00",
    "timezone": "UTC",
    "email_quiet_hours": False,
}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str, Any]]:
    seen: list[tuple[str, str, str, Any]] = []

    def call(service: str, method: str, path: str, body: Any = None) -> Any:
        seen.append((service, method, path, body))
        return {**SHOWN, **(body or {})}

    monkeypatch.setattr(operator_cli, "call", call)
    return seen


def run(*args: str) -> str:
    result = CliRunner().invoke(operator_cli.cli, ["flows", "sending-settings", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_f8_cli_shows_the_sending_settings(calls: list) -> None:
    out = run("--account", "acme")
    assert calls == [("flow_executor", "GET", "/accounts/acme/sending-settings", None)]
    assert "08:00–21:00" in out and "UTC" in out and "email quiet hours  no" in out


def test_f8_cli_changes_only_what_it_is_given(calls: list) -> None:
    out = run("--account", "acme", "--window", "09:00-20:00", "--email-quiet-hours", "--json")
    [(_, method, _, body)] = calls
    assert method == "PUT"
    assert body == {"window_start": "09:00", "window_end": "20:00", "email_quiet_hours": True}
    assert '"window_start": "09:00"' in out


def test_f8_cli_refuses_a_window_without_its_end(calls: list) -> None:
    result = CliRunner().invoke(
        operator_cli.cli, ["flows", "sending-settings", "--account", "a", "--window", "09:00"]
    )
    assert result.exit_code != 0 and calls == []
