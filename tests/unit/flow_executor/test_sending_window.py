"""F8 quiet hours and F9 smart sending as pure rules, with the clock injected: the
window's boundaries in the recipient's local time, the nights the clocks change, numbers
whose region spans several zones, a profile's own zone, unknown zones; and a property
checked against a brute-force scan of every minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.flow_executor.domain import smart_sending
from services.flow_executor.domain.sending_window import (
    HORIZON,
    SendingSettings,
    hold_until,
    is_open,
    keeps_quiet_hours,
    number_zones,
    open_everywhere,
    recipient_zones,
    release_time,
    updated_settings,
)
from shared.contracts.flows import EmailStep, SmsStep

NY, BERLIN, UTC_ZONE = ZoneInfo("America/New_York"), ZoneInfo("Europe/Berlin"), ZoneInfo("UTC")
TCPA = (8 * 60, 21 * 60)
DEFAULT = SendingSettings()
NYC_NUMBER = "+12125550100"  # area code 212: America/New_York only
US_WIDE = "+15005550100"  # area code 500: no area-code zone, every zone of the region
UNKNOWN_NUMBER = "+15555550100"  # phonenumbers answers Etc/Unknown


def local(zone: ZoneInfo, *parts: int, fold: int = 0) -> datetime:
    return datetime(*parts, tzinfo=zone, fold=fold).astimezone(UTC)  # type: ignore[misc]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


# --- boundaries (start included, end excluded) ------------------------------------------


@pytest.mark.parametrize(
    ("hour", "minute", "is_open_then"),
    [(7, 59, False), (8, 0, True), (20, 59, True), (21, 0, False)],
)
def test_f8_window_boundaries_in_the_recipients_local_time(
    hour: int, minute: int, is_open_then: bool
) -> None:
    now = local(NY, 2026, 11, 23, hour, minute)
    assert is_open(TCPA, NY, now) is is_open_then
    held = hold_until(DEFAULT, {"phone_number": NYC_NUMBER}, now)
    if is_open_then:
        assert held is None
    elif hour == 7:
        assert held == local(NY, 2026, 11, 23, 8, 0)  # a minute later, same day
    else:
        assert held == local(NY, 2026, 11, 24, 8, 0)  # the next morning


def test_f8_the_last_second_before_the_end_is_inside_and_the_start_is_exact() -> None:
    assert is_open(TCPA, NY, local(NY, 2026, 11, 23, 20, 59, 59))
    assert not is_open(TCPA, NY, local(NY, 2026, 11, 23, 7, 59, 59))
    now = local(NY, 2026, 11, 23, 7, 59, 30)
    assert hold_until(DEFAULT, {"phone_number": NYC_NUMBER}, now) == local(NY, 2026, 11, 23, 8)


# --- the nights the clocks change -----------------------------------------------------


def test_f8_new_york_spring_forward_releases_at_0800_daylight_time() -> None:
    # 2026-03-08: 02:00 EST becomes 03:00 EDT (07:00 UTC).
    now = local(NY, 2026, 3, 8, 1, 30)
    assert release_time(TCPA, (NY,), now) == utc(2026, 3, 8, 12, 0)  # 08:00 EDT


def test_f8_new_york_spring_forward_a_start_inside_the_gap_opens_at_the_jump() -> None:
    # 02:30 never happens that night: the window opens when the clock jumps to 03:00.
    now = local(NY, 2026, 3, 8, 1, 30)
    assert release_time((2 * 60 + 30, 21 * 60), (NY,), now) == utc(2026, 3, 8, 7, 0)


def test_f8_new_york_fall_back_an_ambiguous_start_is_its_first_occurrence() -> None:
    # 2026-11-01: 02:00 EDT becomes 01:00 EST (06:00 UTC); 01:30 happens twice.
    now = local(NY, 2026, 11, 1, 1, 0)
    assert release_time((90, 21 * 60), (NY,), now) == utc(2026, 11, 1, 5, 30)  # 01:30 EDT


def test_f8_new_york_fall_back_the_repeated_hour_opens_a_closed_window_again() -> None:
    # Window 00:00–01:30: closed at 01:45 EDT, open again when 01:00 EST comes round.
    now = local(NY, 2026, 11, 1, 1, 45)
    assert not is_open((0, 90), NY, now)
    assert release_time((0, 90), (NY,), now) == utc(2026, 11, 1, 6, 0)


def test_f8_berlin_spring_forward() -> None:
    # 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC).
    now = utc(2026, 3, 29, 0, 30)  # 01:30 CET
    assert release_time(TCPA, (BERLIN,), now) == utc(2026, 3, 29, 6, 0)  # 08:00 CEST
    assert release_time((150, 21 * 60), (BERLIN,), now) == utc(2026, 3, 29, 1, 0)  # the jump


def test_f8_berlin_fall_back() -> None:
    # 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00 UTC).
    now = utc(2026, 10, 25, 0, 40)  # 02:40 CEST
    assert release_time((0, 150), (BERLIN,), now) == utc(2026, 10, 25, 1, 0)  # 02:00 CET
    assert release_time(TCPA, (BERLIN,), now) == utc(2026, 10, 25, 7, 0)  # 08:00 CET


# --- whose zone --------------------------------------------------------------------------


def test_f8_a_number_whose_region_spans_several_zones_waits_until_open_in_all() -> None:
    zones = number_zones(US_WIDE)
    assert len(zones) > 10 and ZoneInfo("Pacific/Honolulu") in zones
    now = utc(2026, 11, 23, 15, 0)  # 10:00 in New York, 05:00 in Honolulu
    assert is_open(TCPA, NY, now)
    release = hold_until(DEFAULT, {"phone_number": US_WIDE}, now)
    # Open everywhere from 08:00 in Guam (22:00 UTC), when Pago Pago is at 11:00.
    assert release == utc(2026, 11, 23, 22, 0)
    assert open_everywhere(TCPA, zones, release)
    assert not open_everywhere(TCPA, zones, release - timedelta(minutes=1))


def test_f8_a_profile_timezone_overrides_the_number() -> None:
    profile = {"phone_number": NYC_NUMBER, "properties": {"timezone": "Europe/Berlin"}}
    assert recipient_zones(profile, DEFAULT) == (BERLIN,)
    now = utc(2026, 11, 23, 12, 0)  # 07:00 in New York, 13:00 in Berlin
    assert hold_until(DEFAULT, profile, now) is None
    assert hold_until(DEFAULT, {"phone_number": NYC_NUMBER}, now) == utc(2026, 11, 23, 13, 0)


def test_f8_an_unknown_profile_timezone_falls_through_to_the_number() -> None:
    profile = {"phone_number": NYC_NUMBER, "properties": {"timezone": "Mars/Olympus_Mons"}}
    assert recipient_zones(profile, DEFAULT) == (NY,)


def test_f8_an_unknown_zone_for_the_number_means_the_accounts_zone() -> None:
    account = SendingSettings(timezone="Europe/Berlin")
    assert number_zones(UNKNOWN_NUMBER) == ()  # Etc/Unknown counts as no zone
    assert recipient_zones({"phone_number": UNKNOWN_NUMBER}, account) == (BERLIN,)
    assert recipient_zones({"phone_number": "not a number"}, account) == (BERLIN,)
    assert recipient_zones({}, DEFAULT) == (UTC_ZONE,)
    now = utc(2026, 11, 23, 6, 30)  # 07:30 in Berlin
    assert hold_until(account, {"phone_number": UNKNOWN_NUMBER}, now) == utc(2026, 11, 23, 7)


def test_f8_zones_that_never_share_an_open_instant_fall_back_to_the_accounts_zone() -> None:
    narrow = SendingSettings(8 * 60, 9 * 60, "Europe/Berlin")
    profile = {"phone_number": "+16715550100"}  # Guam; with New York below, no overlap
    zones = (ZoneInfo("Pacific/Guam"), NY)
    now = utc(2026, 11, 23, 12, 0)
    assert release_time(narrow.window, zones, now) is None
    assert recipient_zones(profile, narrow) == (ZoneInfo("Pacific/Guam"),)
    assert hold_until(narrow, {}, now) == utc(2026, 11, 24, 7, 0)  # 08:00 in Berlin


def test_f8_transactional_sms_is_exempt_and_email_only_when_the_account_turns_it_on() -> None:
    assert keeps_quiet_hours(SmsStep(id="t", type="sms"), DEFAULT)
    assert not keeps_quiet_hours(SmsStep(id="t", type="sms", purpose="transactional"), DEFAULT)
    assert not keeps_quiet_hours(EmailStep(id="m", type="email"), DEFAULT)
    on = SendingSettings(email_quiet_hours=True)
    assert keeps_quiet_hours(EmailStep(id="m", type="email"), on)


def test_f8_settings_take_hh_mm_an_iana_zone_and_refuse_a_bad_window_or_zone() -> None:
    got = updated_settings(DEFAULT, {"window_end": "24:00", "timezone": "Europe/Berlin"})
    assert got == SendingSettings(8 * 60, 24 * 60, "Europe/Berlin", False)
    assert updated_settings(DEFAULT, {"email_quiet_hours": True}) == SendingSettings(
        email_quiet_hours=True
    )
    for body, reason in [
        ({"window_start": "22:00"}, "the window must start before it ends"),
        ({"window_start": "8:00"}, "window_start must be"),
        ({"window_end": "24:30"}, "window_end must be"),
        ({"window_start": "24:00", "window_end": "24:00"}, "window_start must be"),
        ({"timezone": "Mars/Base"}, "is not an IANA time zone"),
        ({"timezone": "Etc/Unknown"}, "is not an IANA time zone"),
        ({"email_quiet_hours": "yes"}, "email_quiet_hours must be"),
        ({"quiet": True}, "unknown settings: quiet"),
    ]:
        problem = updated_settings(DEFAULT, body)
        assert isinstance(problem, str) and reason in problem, (body, problem)


# --- the property --------------------------------------------------------------------

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "America/St_Johns",  # -03:30, with DST
    "Asia/Kolkata",  # +05:30
    "Asia/Kathmandu",  # +05:45
    "Australia/Lord_Howe",  # a 30-minute DST change
    "Pacific/Chatham",  # +12:45 / +13:45
    "Pacific/Honolulu",
    "Pacific/Guam",
    "America/Santiago",  # southern-hemisphere DST
    "Africa/Casablanca",  # DST suspended each Ramadan
    "Europe/Dublin",  # a negative DST in the zone database
    "Antarctica/Troll",  # a two-hour DST change
]
# From 2020 to 2040: zones' offsets are whole minutes, the minute scan is exact.
INSTANTS = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)


@st.composite
def windows(draw: st.DrawFn) -> tuple[int, int]:
    start = draw(st.integers(0, 24 * 60 - 1))
    end = draw(st.integers(start + 1, 24 * 60))
    return start, end


def brute_force_release(
    window: tuple[int, int], zones: tuple[ZoneInfo, ...], now: datetime
) -> datetime | None:
    """Every minute from `now` until the horizon: the first at which all are open."""
    if open_everywhere(window, zones, now):
        return now
    t = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while t <= now + HORIZON:
        if all(window[0] <= _minute(t, z) < window[1] for z in zones):
            return t
        t += timedelta(minutes=1)
    return None


def _minute(t: datetime, zone: ZoneInfo) -> int:
    lt = t.astimezone(zone)
    return lt.hour * 60 + lt.minute


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    now=INSTANTS,
    names=st.lists(st.sampled_from(ZONES), min_size=1, max_size=3, unique=True),
    window=windows(),
)
def test_f8_property_a_step_runs_only_when_open_everywhere_at_the_earliest_such_instant(
    now: datetime, names: list[str], window: tuple[int, int]
) -> None:
    zones = tuple(ZoneInfo(n) for n in names)
    release = release_time(window, zones, now)
    assert release == brute_force_release(window, zones, now)
    if release is not None:
        assert release >= now and open_everywhere(window, zones, release)
        assert (release == now) is open_everywhere(window, zones, now)


# The property has not failed yet (also not over 1,500 examples with more zones); a
# shrunk failure would be kept here as a named case, as this hand-picked one is.


def test_f8_lord_howe_half_hour_dst_gap_opens_a_window_whose_start_never_happens() -> None:
    zone = ZoneInfo("Australia/Lord_Howe")
    # 2026-10-04 02:00 local becomes 02:30 (15:30 UTC the day before).
    now = utc(2026, 10, 3, 15, 0)  # 01:30 local
    window = (2 * 60 + 10, 24 * 60)  # opens at 02:10, which never happens that night
    assert release_time(window, (zone,), now) == brute_force_release(window, (zone,), now)
    assert release_time(window, (zone,), now) == utc(2026, 10, 3, 15, 30)


# --- F9 smart sending ------------------------------------------------------------------


def test_f9_a_message_on_the_channel_within_the_hours_skips_the_step() -> None:
    now = utc(2026, 11, 23, 12)
    sms = SmsStep(id="t", type="sms")
    assert smart_sending.smart_sending_hours(sms) == 16
    assert smart_sending.skips(sms, now - timedelta(hours=15, minutes=59), now)
    assert not smart_sending.skips(sms, now - timedelta(hours=16), now)  # exactly: not within
    assert not smart_sending.skips(sms, None, now)


def test_f9_zero_turns_it_off_and_transactional_sms_defaults_to_off() -> None:
    now = utc(2026, 11, 23, 12)
    just = now - timedelta(minutes=1)
    assert not smart_sending.skips(SmsStep(id="t", type="sms", smart_sending_hours=0), just, now)
    transactional = SmsStep(id="t", type="sms", purpose="transactional")
    assert smart_sending.smart_sending_hours(transactional) == 0
    assert not smart_sending.skips(transactional, just, now)
    mail = EmailStep(id="m", type="email", smart_sending_hours=2)
    assert smart_sending.skips(mail, now - timedelta(hours=1), now)
    assert smart_sending.channel_of(mail) == "email"
