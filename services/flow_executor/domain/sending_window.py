"""Quiet hours (F8): whether a message step may go now in the recipient's local time,
and if not, the instant it may. Pure; the clock is the caller's `now`.

The window is per account (default 08:00–21:00, the US TCPA window): minutes after
local midnight, the start included and the end excluded (an end of 24:00 closes at
midnight). The recipient's zones, in order: the profile's `timezone` property (an IANA
name; an unknown name falls through), else every zone `phonenumbers` gives for the
number (its `Etc/Unknown` counts as none; the window must be open in all of them), else
the account's zone. Everything is computed on UTC instants with `zoneinfo`, so the
nights the clocks change are the zone database's business, not ours.

The release time is the earliest instant at or after `now` at which the window is open
in every zone. It is one of: `now`; an instant whose local time is the window's start in
one zone (either fold of an ambiguous local time); an instant at which one zone's offset
changes (a gap can open the window). The search looks `HORIZON` ahead; zones whose
windows never overlap within it fall back to the account's zone (see docs/rules.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import cache, lru_cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import phonenumbers
from phonenumbers import timezone as phone_zones

from shared.contracts.flows import EmailStep, SmsStep

DEFAULT_START = 8 * 60
DEFAULT_END = 21 * 60
DAY = 24 * 60
HORIZON = timedelta(days=8)
UNKNOWN_ZONE = "Etc/Unknown"
WAITING_QUIET_HOURS = "Waiting: quiet hours"


@dataclass(frozen=True)
class SendingSettings:
    """An account's sending preferences: the window (minutes after local midnight,
    `start` included, `end` excluded, `0 <= start < end <= 1440`), the account's zone
    (the last resort for a recipient's zone) and whether email steps keep quiet hours."""

    window_start: int = DEFAULT_START
    window_end: int = DEFAULT_END
    timezone: str = "UTC"
    email_quiet_hours: bool = False

    @property
    def window(self) -> tuple[int, int]:
        return self.window_start, self.window_end


DEFAULT_SETTINGS = SendingSettings()


# --- zones ---------------------------------------------------------------------------


@cache
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def zone_named(name: Any) -> ZoneInfo | None:
    """The IANA zone `name`, or None when it is not one (unknown names fall through)."""
    if not isinstance(name, str) or name == UNKNOWN_ZONE or name not in _known_zones():
        return None
    return ZoneInfo(name)


@lru_cache(maxsize=8192)
def number_zones(phone: str | None) -> tuple[ZoneInfo, ...]:
    """Every zone `phonenumbers` gives for the number (none for `Etc/Unknown`)."""
    if not phone:
        return ()
    try:
        parsed = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return ()
    names = phone_zones.time_zones_for_number(parsed)
    return tuple(z for name in names if (z := zone_named(name)) is not None)


def account_zone(settings: SendingSettings) -> ZoneInfo:
    return zone_named(settings.timezone) or ZoneInfo("UTC")


def recipient_zones(
    profile: Mapping[str, Any] | None, settings: SendingSettings
) -> tuple[ZoneInfo, ...]:
    """The zones whose local time decides (F8): the profile's `timezone` property, else
    the number's zones, else the account's zone."""
    profile = profile or {}
    props = profile.get("properties") or {}
    if (
        own := zone_named(props.get("timezone") if isinstance(props, Mapping) else None)
    ) is not None:
        return (own,)
    if zones := number_zones(profile.get("phone_number")):
        return zones
    return (account_zone(settings),)


# --- the window ----------------------------------------------------------------------


def is_open(window: tuple[int, int], zone: ZoneInfo, instant: datetime) -> bool:
    """Whether the local time of `instant` in `zone` is inside `[start, end)`."""
    local = instant.astimezone(zone)
    minute = local.hour * 60 + local.minute
    return window[0] <= minute < window[1]


def open_everywhere(window: tuple[int, int], zones: Iterable[ZoneInfo], instant: datetime) -> bool:
    return all(is_open(window, z, instant) for z in zones)


def _offset(zone: ZoneInfo, ts: int) -> timedelta | None:
    return datetime.fromtimestamp(ts, UTC).astimezone(zone).utcoffset()


def offset_changes(zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """The instants in `[start, end]` at which `zone`'s UTC offset changes (hourly
    samples, then bisection to the second)."""
    found: list[datetime] = []
    t, stop = int(start.timestamp()), int(end.timestamp()) + 3600
    before = _offset(zone, t)
    while t < stop:
        after_t = t + 3600
        after = _offset(zone, after_t)
        if after != before:
            lo, hi = t, after_t
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if _offset(zone, mid) == before else (lo, mid)
            found.append(datetime.fromtimestamp(hi, UTC))
        t, before = after_t, after
    return found


def _starts(window: tuple[int, int], zone: ZoneInfo, now: datetime) -> Iterable[datetime]:
    """Each instant in the horizon whose local time in `zone` is the window's start."""
    first = now.astimezone(zone).date() - timedelta(days=1)
    at = time(window[0] // 60, window[0] % 60)
    for day in range(HORIZON.days + 2):
        local = datetime.combine(first + timedelta(days=day), at, tzinfo=zone)
        for fold in (0, 1):
            yield local.replace(fold=fold).astimezone(UTC)


def release_time(
    window: tuple[int, int], zones: Sequence[ZoneInfo], now: datetime
) -> datetime | None:
    """The earliest instant at or after `now` at which the window is open in every zone
    (`now` itself when it is open), or None if there is none within `HORIZON`."""
    if open_everywhere(window, zones, now):
        return now
    end = now + HORIZON
    candidates: set[datetime] = set()
    for zone in set(zones):
        candidates.update(_starts(window, zone, now))
        candidates.update(offset_changes(zone, now, end))
    for instant in sorted(c for c in candidates if now <= c <= end):
        if open_everywhere(window, zones, instant):
            return instant
    return None


def hold_until(
    settings: SendingSettings, profile: Mapping[str, Any] | None, now: datetime
) -> datetime | None:
    """F8: None when a step may go now, else the instant it may. Zones that share no open
    instant within the horizon fall back to the account's zone."""
    window = settings.window
    release = release_time(window, recipient_zones(profile, settings), now)
    if release is None:
        release = release_time(window, (account_zone(settings),), now)
    return None if release is None or release <= now else release


def keeps_quiet_hours(step: EmailStep | SmsStep, settings: SendingSettings) -> bool:
    """Marketing SMS always; email when the account turns it on; transactional SMS never."""
    if isinstance(step, SmsStep):
        return step.purpose == "marketing"
    return settings.email_quiet_hours


# --- settings as operators write them --------------------------------------------------


def parse_clock(text: Any) -> int | None:
    """`"HH:MM"` (00:00–24:00) as minutes after midnight, or None if malformed."""
    if not isinstance(text, str) or len(text) != 5 or text[2] != ":":
        return None
    hh, mm = text[:2], text[3:]
    if not (hh.isdigit() and mm.isdigit() and hh.isascii() and mm.isascii()):
        return None
    minutes = int(hh) * 60 + int(mm)
    return minutes if int(mm) < 60 and minutes <= DAY else None


def format_clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _clock(body: Mapping[str, Any], name: str, default: int) -> int | None:
    return parse_clock(body[name]) if name in body else default


SETTING_FIELDS = ("window_start", "window_end", "timezone", "email_quiet_hours")


def updated_settings(current: SendingSettings, body: Mapping[str, Any]) -> SendingSettings | str:
    """`current` with the fields `body` gives (as the API takes them), or why not."""
    if unknown := sorted(set(body) - set(SETTING_FIELDS)):
        return f"unknown settings: {', '.join(unknown)}"
    start = _clock(body, "window_start", current.window_start)
    if start is None or start >= DAY:
        return "window_start must be a local time HH:MM between 00:00 and 23:59"
    end = _clock(body, "window_end", current.window_end)
    if end is None or end == 0:
        return "window_end must be a local time HH:MM between 00:01 and 24:00"
    if not 0 <= start < end <= DAY:
        return (
            f"the window must start before it ends on the same day"
            f" ({format_clock(start)}–{format_clock(end)} does not)"
        )
    zone = body.get("timezone", current.timezone)
    if zone_named(zone) is None:
        return f"timezone {zone!r} is not an IANA time zone name"
    quiet = body.get("email_quiet_hours", current.email_quiet_hours)
    if not isinstance(quiet, bool):
        return "email_quiet_hours must be true or false"
    return SendingSettings(start, end, zone, quiet)


def settings_view(settings: SendingSettings) -> dict[str, Any]:
    return {
        "window_start": format_clock(settings.window_start),
        "window_end": format_clock(settings.window_end),
        "timezone": settings.timezone,
        "email_quiet_hours": settings.email_quiet_hours,
    }
