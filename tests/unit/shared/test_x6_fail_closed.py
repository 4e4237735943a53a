"""X6: a service refuses to start with a weak link key, a short API key or one key given
to two accounts, naming the setting; LINK_SECRETS rotates keys (the first signs, every
one verifies)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from shared.links import InvalidToken, sign, verify
from shared.settings import Settings, StartupRefused

GOOD = secrets.token_hex(32)
SERVICES = ("consent", "suppression", "flow_executor", "alert_dispatcher")


def _start(service: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the real entry point; it must stop before touching Kafka or PostgreSQL."""
    base = {k: v for k, v in os.environ.items() if k not in ("LINK_SECRET", "LINK_SECRETS")}
    return subprocess.run(
        [sys.executable, "-m", f"services.{service}"],
        env={**base, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("service", SERVICES)
def test_x6_service_without_link_secret_exits_nonzero_naming_it(service: str) -> None:
    result = _start(service)
    assert result.returncode != 0
    assert "LINK_SECRET" in result.stderr


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"LINK_SECRET": "change-me"}, "LINK_SECRET"),
        ({"LINK_SECRET": "x" * 31}, "LINK_SECRET"),
        ({"LINK_SECRET": "local-only-link-secret-change-me"}, "LINK_SECRET"),
        ({"LINK_SECRETS": f"{GOOD},secret"}, "LINK_SECRETS"),
        ({"LINK_SECRET": GOOD, "API_KEYS": "acme:short-key"}, "API_KEYS"),
    ],
)
def test_x6_service_with_weak_secret_exits_nonzero_naming_it(env: dict, named: str) -> None:
    result = _start("consent", **env)
    assert result.returncode != 0
    assert named in result.stderr
    assert "refusing to start" in result.stderr


@pytest.mark.parametrize(
    "key",
    ["change-me", "changeme", "secret", "dev-link-secret", "a" * 64, "0" * 40, "short", ""],
)
def test_x6_weak_link_keys_are_refused(key: str) -> None:
    with pytest.raises(StartupRefused, match="LINK_SECRET"):
        Settings(link_secret=key).check_startup()


def test_x6_strong_keys_pass() -> None:
    Settings(link_secret=GOOD, api_keys=f"acme:{secrets.token_hex(8)}").check_startup()
    with pytest.raises(StartupRefused, match="API_KEYS"):
        Settings(link_secret=GOOD, api_keys="acme:fifteen-chars-").check_startup()


def test_x6_link_secrets_rotation_first_signs_every_one_verifies() -> None:
    old, new = secrets.token_hex(32), secrets.token_hex(32)
    before = Settings(link_secret=old)
    during = Settings(link_secrets=f"{new}, {old}")
    during.check_startup()
    assert during.link_signing_key == new
    issued_before = sign(before.link_signing_key, "confirm", {"a": "acme", "p": "p1"})
    issued_during = sign(during.link_signing_key, "confirm", {"a": "acme", "p": "p2"})
    assert verify(during.link_keys, "confirm", issued_before)["p"] == "p1"
    assert verify(during.link_keys, "confirm", issued_during)["p"] == "p2"
    with pytest.raises(InvalidToken):
        verify(before.link_keys, "confirm", issued_during)
    after = Settings(link_secrets=new)
    with pytest.raises(InvalidToken):
        verify(after.link_keys, "confirm", issued_before)


def test_x6_one_key_given_to_two_accounts_is_refused_naming_them_not_the_key() -> None:
    key = secrets.token_hex(16)
    with pytest.raises(StartupRefused, match="API_KEYS") as refused:
        Settings(link_secret=GOOD, api_keys=f"acme:{key},other:{key}").check_startup()
    message = str(refused.value)
    assert "'acme'" in message and "'other'" in message
    assert key not in message


def test_x6_an_account_may_have_several_keys_and_repeat_one() -> None:
    first, second = secrets.token_hex(16), secrets.token_hex(16)
    settings = Settings(link_secret=GOOD, api_keys=f"acme:{first},acme:{second},acme:{first}")
    settings.check_startup()
    assert settings.api_key_accounts == {first: "acme", second: "acme"}


@pytest.mark.parametrize("service", SERVICES)
def test_x6_service_with_a_key_shared_by_two_accounts_exits_nonzero_naming_it(
    service: str,
) -> None:
    key = secrets.token_hex(16)
    result = _start(service, LINK_SECRET=GOOD, API_KEYS=f"acme:{key}, other:{key}")
    assert result.returncode != 0
    assert "refusing to start" in result.stderr
    assert "API_KEYS" in result.stderr
    assert "acme" in result.stderr and "other" in result.stderr
    assert key not in result.stderr + result.stdout
