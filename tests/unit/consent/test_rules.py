"""The consent domain, pure (C1–C13, X3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.consent.domain.keywords import keyword
from services.consent.domain.model import (
    MIN_CONSENTED_AT,
    Act,
    Policy,
    ProfileConsent,
    clamp,
    normalize_phone,
    scope_name,
)
from services.consent.domain.reachability import can_receive, shown_reasons
from services.consent.domain.rules import decide

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 6, 1, tzinfo=UTC)
SINGLE = Policy(email_double_opt_in=False)
DOUBLE = Policy(email_double_opt_in=True)


def act(n: int, action: str = "subscribe", channel: str = "email", **kw) -> Act:
    return Act(
        act_id=f"c{n:03d}",
        action=action,
        channel=channel,
        act_at=kw.pop("at", T0 + timedelta(minutes=n)),
        **kw,
    )


def run(*acts: Act, policy: Policy = SINGLE, state: ProfileConsent | None = None):
    state = state or ProfileConsent()
    outcomes = []
    for a in acts:
        out = decide(state, a, policy, NOW)
        outcomes.append(out)
        state = out.state
    return state, outcomes


def types(outcome) -> list[str]:
    return [e.type for e in outcome.events]


def test_c1_default_is_never_subscribed_per_channel() -> None:
    state = ProfileConsent()
    view = state.view()
    for ch in ("email", "sms_marketing", "sms_transactional", "push"):
        assert view[ch]["status"] == "never_subscribed"


def test_c2_change_records_status_time_method_and_source() -> None:
    _, (out,) = run(act(1, method="form", list_id="L", evidence=None))
    entries = {h.slot: h for h in out.history}
    assert entries["email"].status == "subscribed"
    assert entries["email"].method == "form"
    assert entries["email"].act_id == "c001"
    assert entries["list:L"].list_id == "L"


def test_c3_consent_before_1990_is_clamped() -> None:
    assert clamp(datetime(1970, 5, 1, tzinfo=UTC)) == MIN_CONSENTED_AT
    old = act(1, at=clamp(datetime(1980, 1, 1, tzinfo=UTC)), historical_import=True)
    state, _ = run(old)
    assert state.slot("email").consented_at == MIN_CONSENTED_AT


def test_c4_historical_import_keeps_timestamp_and_live_is_stamped_now() -> None:
    state, (_out,) = run(act(1, historical_import=True, method="import"))
    assert state.slot("email").consented_at == T0 + timedelta(minutes=1)
    state, _ = run(act(2))
    assert state.slot("email").consented_at == NOW


def test_c4_historical_import_skips_double_opt_in() -> None:
    _, (out,) = run(act(1, historical_import=True), policy=DOUBLE)
    assert out.confirmation is None
    assert types(out) == ["Subscribed to Email Marketing"]


def test_c5_sms_marketing_implies_transactional() -> None:
    state, _ = run(act(1, channel="sms", phone_number="+15550100"))
    assert can_receive(state, [], "sms_marketing")
    assert can_receive(state, [], "sms_transactional")
    state, _ = run(act(2, channel="sms", purpose="transactional", phone_number="+15550100"))
    assert can_receive(state, [], "sms_transactional")
    assert not can_receive(state, [], "sms_marketing")


def test_c5_unsubscribing_either_sms_purpose_unsubscribes_both() -> None:
    state, outs = run(
        act(1, channel="sms", phone_number="+1555"),
        act(2, channel="sms", purpose="transactional", phone_number="+1555"),
        act(3, "unsubscribe", channel="sms", purpose="transactional"),
    )
    assert state.status("sms_marketing") == "unsubscribed"
    assert state.status("sms_transactional") == "unsubscribed"
    assert types(outs[2]) == ["Unsubscribed from SMS"]


def test_c6_new_phone_number_resets_sms_consent() -> None:
    state, outs = run(
        act(1, channel="sms", phone_number="+1 555-0100"),
        act(2, channel="email", phone_number="+15550199"),
    )
    assert state.phone_number == "+15550199"
    assert state.status("sms_marketing") == "never_subscribed"
    assert state.slot("sms_marketing").phone_number == "+15550199"
    assert any(h.result == "phone_changed" for h in outs[1].history)
    assert normalize_phone("+1 (555) 010-0") == "+15550100"


def test_c6_sms_subscribe_needs_a_phone_number() -> None:
    _, (out,) = run(act(1, channel="sms"))
    assert out.rejection and "phone_number" in out.rejection


def test_c7_channels_are_independent() -> None:
    state, _ = run(act(1, channel="email"))
    assert state.status("sms_marketing") == "never_subscribed"
    assert state.status("push") == "never_subscribed"
    assert not can_receive(state, [], "push")
    state, _ = run(act(2, channel="push"), state=state)
    assert state.status("push") == "subscribed"


def test_c8_double_opt_in_leaves_status_and_asks_for_confirmation() -> None:
    state, (out,) = run(act(1, method="form"), policy=DOUBLE)
    assert state.status("email") == "never_subscribed"
    assert out.confirmation is not None and out.events == ()
    assert out.history[0].result == "pending_confirmation"
    state, (out,) = run(act(2, method="link", confirmed=True), policy=DOUBLE, state=state)
    assert state.status("email") == "subscribed"
    assert types(out) == ["Subscribed to Email Marketing"]


def test_c9_events_only_on_real_transitions() -> None:
    _, outs = run(
        act(1, list_id="news"), act(2, list_id="news"), act(3, "unsubscribe"), act(4, "unsubscribe")
    )
    assert types(outs[0]) == ["Subscribed to List", "Subscribed to Email Marketing"]
    assert types(outs[1]) == []
    assert types(outs[2]) == ["Unsubscribed from Email Marketing"]
    assert types(outs[3]) == []


def test_c9_clicked_unsubscribe_adds_clicked_event() -> None:
    _, (_, out) = run(act(1), act(2, "unsubscribe", method="link", clicked=True))
    assert types(out) == [
        "Unsubscribed from Email Marketing",
        "Clicked and Unsubscribed from Email",
    ]


def test_c9_subscribe_of_manually_suppressed_profile_emits() -> None:
    state, _ = run(act(1))
    out = decide(state, act(2), Policy(email_double_opt_in=False, manually_suppressed=True), NOW)
    assert types(out) == ["Subscribed to Email Marketing"]


def test_c9_list_unsubscribe_keeps_email_consent() -> None:
    state, (_, out) = run(act(1, list_id="L"), act(2, "unsubscribe", list_id="L"))
    assert types(out) == ["Unsubscribed from List"]
    assert state.status("email") == "subscribed"
    assert state.lists == {"L": "unsubscribed"}


def test_c10_scoped_opt_out_levels() -> None:
    client = scope_name("client", "news", None)
    user = scope_name("user", "events", "bob")
    state, outs = run(
        act(1), act(2, "unsubscribe", scope=client), act(3, "unsubscribe", scope=user)
    )
    assert state.opt_outs == ["client:news", "user:events/bob"]
    assert state.status("email") == "subscribed"
    assert not can_receive(state, [], "email", client_id="news", user_id="ann")
    assert not can_receive(state, [], "email", client_id="events", user_id="bob")
    assert can_receive(state, [], "email", client_id="events", user_id="ann")
    assert outs[1].events[0].scope == "client:news"
    # group level covers everyone
    state, _ = run(act(4, "unsubscribe"), state=state)
    assert state.opt_outs[0] == "group"
    assert not can_receive(state, [], "email", client_id="other", user_id="x")


def test_c10_resubscribe_lifts_that_level_only() -> None:
    client = "client:news"
    state, _ = run(act(1, "unsubscribe"), act(2, "unsubscribe", scope=client))
    state, (out,) = run(act(3, "resubscribe", scope=client, evidence="ticket-1"), state=state)
    assert state.opt_outs == ["group"]
    assert out.events[0].scope == client


def test_c11_resubscribe_without_evidence_is_rejected() -> None:
    state, _ = run(act(1, "unsubscribe"))
    out = decide(state, act(2, "resubscribe"), SINGLE, NOW)
    assert out.rejection and "evidence" in out.rejection
    assert out.state.signature() == state.signature()


def test_c11_subscribe_after_opt_out_needs_confirmation_even_single_opt_in() -> None:
    state, (_, out) = run(act(1, "unsubscribe"), act(2, method="form"))
    assert out.confirmation is not None
    assert state.status("email") == "unsubscribed"
    state, (out,) = run(act(3, "resubscribe", evidence="signed form #12"), state=state)
    assert state.status("email") == "subscribed"
    assert types(out) == ["Subscribed to Email Marketing"]


def test_c11_sms_subscribe_after_stop_is_rejected_whatever_the_method() -> None:
    state, outs = run(
        act(1, channel="sms", phone_number="+1555", method="keyword"),
        act(2, "unsubscribe", channel="sms", method="keyword"),
        act(3, channel="sms", method="manual"),
        act(4, channel="sms", method="form"),
        act(5, channel="sms", method="import", historical_import=True),
        act(6, channel="sms", method="keyword"),  # a producer's claim, not the phone's START
    )
    assert all(o.rejection and "C11" in o.rejection for o in outs[2:])
    assert all(o.history[0].result == "rejected" for o in outs[2:])
    # START from the number itself (sms-inbound) is the profile's own act.
    state, (_out,) = run(act(7, channel="sms", method="keyword", confirmed=True), state=state)
    assert state.status("sms_marketing") == "subscribed"


def test_c13_keywords_are_case_insensitive_and_trimmed() -> None:
    assert keyword("  stop ") == "stop"
    assert keyword("StopAll") == "stop"
    for w in ("UNSUBSCRIBE", "cancel", "End", "quit"):
        assert keyword(w) == "stop"
    for w in ("start", "UNSTOP", "yes"):
        assert keyword(w) == "start"
    assert keyword("help") == keyword(" INFO") == "help"
    assert keyword("stop please") is None


def test_c14_can_receive_combines_consent_and_suppression() -> None:
    state = ProfileConsent()
    assert can_receive(state, [], "email")  # never subscribed, not suppressed
    sup = [{"channel": "email", "reason": "manual", "list_id": None}]
    assert not can_receive(state, sup, "email")
    lst = [{"channel": "email", "reason": "manual", "list_id": "L"}]
    assert can_receive(state, lst, "email")
    assert not can_receive(state, lst, "email", list_id="L")
    spam = [{"channel": "email", "reason": "spam_complaint", "list_id": None}]
    assert shown_reasons(spam + sup, "email") == [
        {"reason": "manual", "list_id": None, "since": None}
    ]


def test_x3_older_act_does_not_override_newer() -> None:
    newer = act(5, "unsubscribe")
    older = act(1)
    state, (_, out) = run(newer, older)
    assert state.status("email") == "unsubscribed"
    assert out.events == ()
    assert [h.result for h in out.history] == ["stale"]


def test_x3_equal_timestamps_tie_break_by_act_id() -> None:
    a = act(1, "unsubscribe", at=T0)
    b = Act(act_id="c000", action="subscribe", channel="email", act_at=T0)
    state, (_, late) = run(a, b)  # b sorts before a: kept in history, no effect
    assert state.status("email") == "unsubscribed"
    assert [h.result for h in late.history] == ["stale"]
    state2, _ = run(b, a)  # same order either way
    assert state2.status("email") == "unsubscribed"


def test_x3_state_roundtrips_through_json() -> None:
    state, _ = run(
        act(1, list_id="L"),
        act(2, "unsubscribe", scope="client:x"),
        act(3, channel="sms", phone_number="+1555"),
    )
    assert ProfileConsent.from_json(state.to_json()) == state
