"""How the console runs, from the environment only (as the services and the operator
commands are configured):

- `CONSENTFLOW_<SERVICE>_API_URL` (or `CONSENTFLOW_API_URL` for a gateway): where each
  of the four services' APIs is, the same variables the operator commands read
- `CONSENTFLOW_ACCOUNT`: the account the sign-in form suggests (optional)
- `CONSOLE_SECRET`: signs session cookies (32 bytes or more; generated at start when
  unset, so sessions end when the console restarts)
- `HTTP_HOST`, `HTTP_PORT`: where the console listens (default 127.0.0.1:8090)
- `CONSOLE_TIMEZONE`: the zone times are shown in until the operator picks theirs
- `CONSOLE_BRAND_NAME`, `CONSOLE_ACCENT_COLOUR`: the name and colour on the sign-in page
  (after sign-in the account's own, from the consent service's page settings)
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from console.sessions import secret_problem
from shared.api_client import SERVICES, service_urls, url_variable
from shared.pages import DEFAULT_ACCENT, colour_error


class ConsoleRefused(Exception):
    """A setting the console will not start with; the message names it."""


@dataclass(frozen=True)
class ConsoleSettings:
    urls: Mapping[str, str]
    secret: bytes
    host: str = "127.0.0.1"
    port: int = 8090
    timezone: str = "UTC"
    account: str = ""
    brand_name: str = "consentflow"
    accent: str = DEFAULT_ACCENT
    api_timeout: float = 15.0
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ConsoleSettings:
        """The settings, or ConsoleRefused naming what is missing or wrong (fail closed)."""
        env = os.environ if environ is None else environ
        urls = service_urls(env)
        missing = [url_variable(s) for s in SERVICES if s not in urls]
        if missing:
            raise ConsoleRefused(f"set {', '.join(missing)} (or CONSENTFLOW_API_URL)")
        secret = env.get("CONSOLE_SECRET", "")
        if secret and (problem := secret_problem(secret)):
            raise ConsoleRefused(problem)
        zone = env.get("CONSOLE_TIMEZONE", "UTC") or "UTC"
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConsoleRefused(f"CONSOLE_TIMEZONE {zone!r} is not an IANA zone") from None
        accent = env.get("CONSOLE_ACCENT_COLOUR", DEFAULT_ACCENT) or DEFAULT_ACCENT
        if colour_error(accent):
            raise ConsoleRefused("CONSOLE_ACCENT_COLOUR must be a colour like #1f5fbf")
        try:
            port = int(env.get("HTTP_PORT", "8090"))
        except ValueError:
            raise ConsoleRefused("HTTP_PORT is not a number") from None
        return cls(
            urls=urls,
            secret=secret.encode() if secret else secrets.token_bytes(32),
            host=env.get("HTTP_HOST", "127.0.0.1"),
            port=port,
            timezone=zone,
            account=env.get("CONSENTFLOW_ACCOUNT", ""),
            brand_name=env.get("CONSOLE_BRAND_NAME", "consentflow") or "consentflow",
            accent=accent,
        )
