"""What the end-to-end modules share: the four services as processes for one account
of the module's own, and calls to their HTTP APIs with that account's key."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest


def services_for(account: str, key: str):
    """A module-scoped fixture: the four services, with `key` granting `account`."""

    @pytest.fixture(scope="module")
    def services(stack: Any) -> Iterator[Any]:
        stack.start_services(API_KEYS=f"{stack.api_keys},{account}:{key}")
        try:
            yield stack
        finally:
            stack.stop_services()

    return services


def call(base_url: str, key: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One JSON call as the account's operator: (status, decoded body)."""
    req = urllib.request.Request(
        base_url + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
