"""A client of the four services' public HTTP APIs, as an operator uses them: the
`consentflow` operator commands (tools/operator_cli.py) and the operator console
(console/) both call the services through it.

Each call carries one account's API key (X5), and optionally the operator's name in
`X-Actor`, so that the service records the act as that key's name (C2). Nothing here
reads another service's tables: only the URLs the services publish.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SERVICES = ("consent", "suppression", "flow_executor", "alert_dispatcher")


class ApiError(Exception):
    """A 4xx/5xx answer (`status` set, `reason` the service's own words) or a service
    that cannot be reached (`status` None)."""

    def __init__(
        self, service: str, reason: str, status: int | None = None, details: str = ""
    ) -> None:
        self.service = service
        self.reason = reason
        self.status = status
        self.details = details
        if status is None:
            super().__init__(reason)
        else:
            super().__init__(f"{service}: HTTP {status}: {reason}")


class MissingSetting(Exception):
    """A service URL or the API key is not configured; the message names the setting."""


def url_variable(service: str) -> str:
    """The environment variable that holds `service`'s base URL."""
    return f"CONSENTFLOW_{service.upper()}_API_URL"


def service_urls(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each service's base URL from `CONSENTFLOW_<SERVICE>_API_URL`, falling back to
    `CONSENTFLOW_API_URL` (a gateway serving all four); services with neither are left
    out."""
    env = os.environ if environ is None else environ
    urls = {}
    for service in SERVICES:
        url = env.get(url_variable(service)) or env.get("CONSENTFLOW_API_URL")
        if url:
            urls[service] = url.rstrip("/")
    return urls


def quote(value: str) -> str:
    """One path segment, every reserved character escaped."""
    return urllib.parse.quote(value, safe="")


def _reason(raw: bytes) -> tuple[str, str]:
    """The service's reason (`error`) and, for a request that did not validate, the
    validator's words (`details`)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace"), ""
    if not isinstance(data, dict) or "error" not in data:
        return raw.decode(errors="replace"), ""
    details = data.get("details")
    words = ""
    if isinstance(details, list):
        words = "; ".join(
            f"{'.'.join(map(str, d.get('loc', ())))}: {d.get('msg', '')}".lstrip(": ")
            if isinstance(d, dict)
            else str(d)
            for d in details
        )
    return str(data["error"]), words


@dataclass(frozen=True)
class ApiClient:
    """Calls as one account's key. `urls` maps service name to base URL."""

    urls: Mapping[str, str]
    key: str
    actor: str | None = None
    timeout: float = 30.0
    headers: Mapping[str, str] = field(default_factory=dict)

    def base_url(self, service: str) -> str:
        """The base URL of `service`, or MissingSetting naming the variable to set."""
        url = self.urls.get(service)
        if not url:
            raise MissingSetting(
                f"set {url_variable(service)} (or CONSENTFLOW_API_URL) to the"
                f" {service.replace('_', '-')} service's address"
            )
        return url

    def call(self, service: str, method: str, path: str, body: Any = None) -> Any:
        """One API call; returns the decoded JSON answer or raises ApiError."""
        headers = {
            "Authorization": f"Bearer {self.key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            **self.headers,
        }
        if self.actor:
            headers["X-Actor"] = self.actor
        base = self.base_url(service)
        req = urllib.request.Request(
            base + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers=headers,
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                raw = r.read()
        except urllib.error.HTTPError as exc:
            reason, details = _reason(exc.read())
            raise ApiError(service, reason, exc.code, details) from None
        except OSError as exc:
            raise ApiError(service, f"{service} at {base} is unreachable: {exc}") from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode(errors="replace")

    def get(self, service: str, path: str, **query: Any) -> Any:
        """GET `path` with the query parameters that are not None."""
        given = {k: v for k, v in query.items() if v is not None and v != ""}
        if given:
            path += "?" + urllib.parse.urlencode(given)
        return self.call(service, "GET", path)
