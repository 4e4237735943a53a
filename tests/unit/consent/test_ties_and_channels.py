"""X3, C8: ties between an opt-in and an opt-out, and acts of other channels. Pure domain.

Second-precision imports make equal `consented_at` common: the opt-out must stand
whatever the command ids and whatever the arrival order. And an act is stale only
against a newer act of its own channel: an email form subscribe carrying the profile's
phone, older than an SMS act, still asks for its confirmation (C8)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from services.consent.domain.model import Act, Policy, ProfileConsent
from services.consent.domain.rules import decide

NOON = datetime(2026, 5, 4, 12, tzinfo=UTC)
PHONE = "+15555550100"
DOI = Policy(email_double_opt_in=True)
SINGLE = Policy(email_double_opt_in=False)


def run(acts: list[Act], policy: Policy = SINGLE) -> tuple[ProfileConsent, list]:
    state, outs = ProfileConsent(), []
    for a in acts:
        out = decide(state, a, policy, NOON + timedelta(hours=1))
        outs.append(out)
        state = out.state
    return state, outs


def _tie(channel: str, sub_id: str, unsub_id: str) -> list[Act]:
    sub = Act(
        sub_id, "subscribe", channel, NOON, method="import", evidence="signed form 42",
        phone_number=PHONE, historical_import=True,
    )  # fmt: skip
    unsub = Act(unsub_id, "unsubscribe", channel, NOON, method="import", phone_number=PHONE)
    return [sub, unsub]


@pytest.mark.parametrize("channel", ["email", "sms", "push"])
@pytest.mark.parametrize(("sub_id", "unsub_id"), [("a", "b"), ("b", "a"), ("zz", "00")])
def test_x3_a_tie_between_opt_in_and_opt_out_ends_opted_out(channel, sub_id, unsub_id) -> None:
    """Same `consented_at`: the opt-out stands whichever id sorts higher and whichever
    arrives first (on today's main the higher id won, so the opt-out lost half the time)."""
    slot = {"email": "email", "sms": "sms_marketing", "push": "push"}[channel]
    for order in itertools.permutations(_tie(channel, sub_id, unsub_id)):
        state, _ = run(list(order))
        assert state.status(slot) == "unsubscribed", [a.act_id for a in order]


def test_x3_c8_an_email_act_is_never_stale_because_of_an_sms_act() -> None:
    """An email form subscribe that carries the profile's phone, dated an hour before the
    profile's SMS subscribe, arrives after it: it asks for its confirmation (double
    opt-in) instead of being recorded stale and lost."""
    sms = Act("s1", "subscribe", "sms", NOON, method="form", phone_number=PHONE)
    email = Act("e1", "subscribe", "email", NOON - timedelta(hours=1), method="form",
                phone_number=PHONE)  # fmt: skip
    state, (_, out) = run([sms, email], DOI)
    assert not out.stale
    assert out.confirmation is not None
    assert [h.result for h in out.history] == ["pending_confirmation"]
    assert state.status("sms_marketing") == "subscribed"


def test_x3_an_sms_act_is_never_stale_because_of_an_email_act() -> None:
    """The other way round: an SMS unsubscribe older than an email act still applies."""
    sub = Act("s0", "subscribe", "sms", NOON - timedelta(hours=2), method="form",
              phone_number=PHONE)  # fmt: skip
    email = Act("e1", "subscribe", "email", NOON, method="form")
    stop = Act("s1", "unsubscribe", "sms", NOON - timedelta(hours=1), method="form",
               phone_number=PHONE)  # fmt: skip
    state, outs = run([sub, email, stop])
    assert not outs[-1].stale
    assert state.status("sms_marketing") == "unsubscribed"
    assert [e.type for e in outs[-1].events] == ["Unsubscribed from SMS"]


def test_x3_an_email_act_older_than_a_newer_email_act_is_still_stale() -> None:
    """Staleness within a channel is unchanged: an older subscribe under a newer
    unsubscribe changes nothing and asks nothing."""
    unsub = Act("e2", "unsubscribe", "email", NOON, method="form")
    sub = Act("e1", "subscribe", "email", NOON - timedelta(hours=1), method="form")
    state, (_, out) = run([unsub, sub], DOI)
    assert out.stale and out.confirmation is None
    assert state.status("email") == "unsubscribed"
