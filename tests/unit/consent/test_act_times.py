"""X3, C9, C15: a command's act carries its time with the standard library's `timezone`
(`model.plain_zone`) instead of the `TzInfo` pydantic parsed it with, and that changes
nothing anyone can see: for every offset (zero, east, west, with seconds and
microseconds, before 1990 and in the future), the act's time is the same instant with
the same offset and text, and everything written for the act (the state and its act log
as stored, the receipt's canonical bytes and hash, the change payloads) is the same
bytes as with the time as parsed."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_core import to_json

from services.consent.domain.model import Policy, ProfileConsent, clamp, plain_zone
from services.consent.domain.receipts import Head, Personal, applied, receipt
from services.consent.domain.rules import decide
from services.consent.handlers import act_from_command
from services.consent.outputs import change_payloads
from shared.contracts import ConsentCommand

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
OFFSETS = st.sampled_from(("Z", "+00:00", "-00:00", "+05:30", "-08:00", "+14:00", "-12:00"))
TIMES = st.one_of(
    st.datetimes(min_value=datetime(1985, 1, 1), max_value=datetime(2027, 12, 31)),
    st.sampled_from((datetime(2026, 11, 23, 10, 0), datetime(2026, 11, 23, 10, 4, 59, 999999))),
)


def _command(at: str, channel: str, action: str, historical: bool) -> ConsentCommand:
    return ConsentCommand.model_validate(
        {
            "command_id": "c-1",
            "account_id": "acme",
            "profile": {"id": "p-1", "phone_number": "+15555550100", "email": "ada@example.com"},
            "action": action,
            "channel": channel,
            "method": "form",
            "consented_at": at,
            "historical_import": historical,
        }
    )


def _written(act, policy: Policy) -> tuple[bytes, ...]:
    outcome = decide(ProfileConsent(), act, policy, NOW)
    profile = {"id": "p-1", "phone_number": "+15555550100", "email": "ada@example.com"}
    out: list[bytes] = [to_json(outcome.state.to_json())]
    if entries := applied(outcome.history):
        made = receipt(
            account_id="acme",
            account_name="Acme",
            profile_id="p-1",
            act=act,
            entries=entries,
            personal=Personal(phone_number=outcome.state.phone_number),
            head=Head(),
            recorded_at=NOW,
            keyed=lambda kind, value: f"{kind}:{value}",
        )
        out += [made.canonical or b"", made.hash.encode()]
    out += change_payloads("acme:p-1:c-1", "acme", "p-1", profile, act, outcome, NOW, "r")
    return tuple(out)


@settings(max_examples=300, deadline=None)
@given(
    at=TIMES,
    offset=OFFSETS,
    channel=st.sampled_from(("email", "sms", "push")),
    action=st.sampled_from(("subscribe", "unsubscribe")),
    historical=st.booleans(),
    doi=st.booleans(),
)
def test_x3_an_act_time_in_a_plain_zone_is_the_same_time_and_writes_the_same_bytes(
    at: datetime, offset: str, channel: str, action: str, historical: bool, doi: bool
) -> None:
    text = at.isoformat() + offset
    cmd = _command(text, channel, action, historical)
    parsed = cmd.consented_at
    act = act_from_command(cmd)
    as_parsed = replace(act, act_at=clamp(parsed))
    assert act == as_parsed
    assert act.act_at.utcoffset() == as_parsed.act_at.utcoffset()
    assert act.act_at.isoformat() == as_parsed.act_at.isoformat()
    assert to_json(act.act_at) == to_json(as_parsed.act_at)
    policy = Policy(email_double_opt_in=doi)
    assert _written(act, policy) == _written(as_parsed, policy)


@given(at=st.datetimes(), offset=st.integers(-86399, 86399))
def test_plain_zone_keeps_instant_offset_and_text(at: datetime, offset: int) -> None:
    aware = at.replace(tzinfo=timezone(timedelta(seconds=offset)))
    plain = plain_zone(aware)
    assert plain == aware
    assert plain.utcoffset() == aware.utcoffset()
    assert plain.isoformat() == aware.isoformat()
    assert plain_zone(at) is at  # naive: as it is
