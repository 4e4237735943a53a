"""Consent that cannot be lost: whole acts in time order, evidence gates, truthful replies
(X3, X3a, C2, C5, C6, C9, C10, C11, C13, S3, S4, S5). Pure domain. The last tests are
failures the property tests found, kept as plain regressions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.consent.domain.keywords import reply_kind
from services.consent.domain.model import Act, Policy, ProfileConsent
from services.consent.domain.rules import decide, live_time, unsubscribe_done
from services.suppression.domain.rules import (
    Command,
    SuppressionState,
    on_consent_change,
)
from services.suppression.domain.rules import decide as suppress

NOON = datetime(2026, 5, 4, 12, tzinfo=UTC)
SINGLE = Policy(email_double_opt_in=False)
PHONE = "+15550100"


def act(act_id: str, at: datetime, action: str = "subscribe", channel: str = "email", **kw):
    return Act(act_id=act_id, action=action, channel=channel, act_at=at, **kw)


def keyword_start() -> Act:
    """The number's own START (a keyword, C13), dated noon."""
    return act(
        "sms:start", NOON, channel="sms", method="keyword", phone_number=PHONE, confirmed=True
    )


def early_stop() -> Act:
    """A STOP dated an hour before noon: late wherever it arrives after a noon act."""
    return act(
        "sms:stop",
        NOON - timedelta(hours=1),
        "unsubscribe",
        "sms",
        method="keyword",
        phone_number=PHONE,
    )


def run(*steps: tuple[Act, datetime], policy: Policy = SINGLE, state=None):
    state = state or ProfileConsent()
    outs = []
    for a, received in steps:
        out = decide(state, a, policy, received)
        outs.append(out)
        state = out.state
    return state, outs


def test_x3_future_dated_subscribe_loses_to_stop_and_link_now() -> None:
    future = datetime(2030, 1, 1, tzinfo=UTC)
    state, (sub_sms, _) = run(
        (act("c1", future, channel="sms", method="form", phone_number=PHONE), NOON),
        (act("c2", future, method="form"), NOON),
    )
    assert sub_sms.state.slot("sms_marketing").consented_at == NOON
    assert sub_sms.history[-1].claimed_at == future  # the claimed time is kept
    later = NOON + timedelta(minutes=1)
    state, (_, click) = run(
        (act("sms:1", later, "unsubscribe", "sms", method="keyword", phone_number=PHONE), later),
        (act("unsub:1", live_time(later), "unsubscribe", clicked=True), later),
        state=state,
    )
    assert state.status("sms_marketing") == state.status("sms_transactional") == "unsubscribed"
    assert state.status("email") == "unsubscribed"
    assert reply_kind("stop", [state]) == "stop"
    assert unsubscribe_done(click, click_act := act("unsub:1", live_time(later), "unsubscribe"))
    assert click_act.action == "unsubscribe"


def test_x3_late_stop_is_whole_act_stale_and_not_confirmed() -> None:
    state, outs = run(
        (
            act(
                "sms:start",
                NOON,
                "unsubscribe",
                channel="sms",
                method="keyword",
                phone_number=PHONE,
            ),
            NOON,
        ),
        (
            act(
                "c2",
                NOON + timedelta(minutes=1),
                channel="sms",
                method="form",
                evidence="signed #9",
                phone_number=PHONE,
            ),
            NOON,
        ),
        (
            early_stop(),
            NOON + timedelta(minutes=2),
        ),
    )
    late = outs[2]
    assert late.stale and not late.events
    assert {h.result for h in late.history} == {"stale"}
    assert state.status("sms_marketing") == "subscribed"
    assert reply_kind("stop", [state]) == "stop_not_applied"


def test_x3_late_stop_under_a_newer_start_ends_as_if_in_order() -> None:
    """In time order STOP then START leaves marketing subscribed, transactional not:
    the late STOP ends the same, publishes no SMS opt-out, and is not confirmed."""
    in_order, _ = run(
        (
            early_stop(),
            NOON,
        ),
        (
            keyword_start(),
            NOON,
        ),
    )
    state, outs = run(
        (
            keyword_start(),
            NOON,
        ),
        (
            early_stop(),
            NOON + timedelta(minutes=1),
        ),
    )
    assert state.signature() == in_order.signature()
    assert not outs[1].events
    assert reply_kind("stop", [state]) == "stop_not_applied"


def test_x3_late_stop_older_than_a_subscribe_it_would_have_blocked_takes_effect() -> None:
    """Protect the person: the form subscribe would have been rejected after the STOP."""
    state, outs = run(
        (act("c1", NOON, channel="sms", method="form", phone_number=PHONE), NOON),
        (
            early_stop(),
            NOON + timedelta(minutes=1),
        ),
    )
    assert state.status("sms_marketing") == "unsubscribed"
    assert [e.type for e in outs[1].events] == ["Unsubscribed from SMS"]


def test_x3_late_list_subscribe_older_than_an_unsubscribe_emits_nothing() -> None:
    state, outs = run(
        (act("c2", NOON, "unsubscribe"), NOON),
        (act("c1", NOON - timedelta(hours=1), list_id="L"), NOON + timedelta(minutes=1)),
    )
    assert not outs[1].events  # no "Subscribed to List", so no list flow is entered
    assert state.status("email") == "unsubscribed"


def test_c11_subscribe_after_opt_out_needs_own_act_or_evidence_whatever_the_flag() -> None:
    state, _ = run((act("c1", NOON, "unsubscribe"), NOON))
    later = NOON + timedelta(minutes=5)
    imp = decide(state, act("c2", later, method="import", historical_import=True), SINGLE, later)
    assert imp.rejection and "C11" in imp.rejection and imp.history[0].result == "rejected"
    form = decide(state, act("c3", later, method="form"), SINGLE, later)
    assert form.confirmation is not None and form.state.status("email") == "unsubscribed"
    ok = decide(state, act("c4", later, method="form", evidence="signed #1"), SINGLE, later)
    assert ok.state.status("email") == "subscribed"


def test_c9_producer_link_unsubscribe_is_clicked_and_unsubscribed() -> None:
    _, (_, out) = run(
        (act("c1", NOON), NOON), (act("c2", NOON, "unsubscribe", method="link"), NOON)
    )
    assert [e.type for e in out.events] == [
        "Unsubscribed from Email Marketing",
        "Clicked and Unsubscribed from Email",
    ]


def test_x3a_c10_list_at_client_scope_is_rejected_not_widened_nor_dropped() -> None:
    for action in ("subscribe", "unsubscribe"):
        out = decide(
            ProfileConsent(), act("c1", NOON, action, list_id="L", scope="client:c1"), SINGLE, NOON
        )
        assert out.rejection and "X3a" in out.rejection
        assert out.history[0].result == "rejected" and not out.events
        assert out.state.signature() == ProfileConsent().signature()


def test_c2_by_whom_is_recorded() -> None:
    _, (out,) = run((act("c1", NOON, actor="ops@acme via api-key:acme/1a2b3c4d"), NOON))
    assert out.history[0].actor == "ops@acme via api-key:acme/1a2b3c4d"


def test_s4_soft_bounces_are_counted_per_list_and_delivery_resets() -> None:
    state = SuppressionState()
    for _ in range(2):
        state = suppress(state, Command("suppress", "soft_bounce", NOON, list_id="L"), 3).state
    assert not state.suppressions and state.list_bounces == {"L": 2}
    state = suppress(state, Command("suppress", "delivered", NOON, list_id="L"), 3).state
    assert state.list_bounces == {}
    for _ in range(3):
        out = suppress(state, Command("suppress", "soft_bounce", NOON, list_id="L"), 3)
        state = out.state
    assert [(s.reason, s.list_id) for s in state.suppressions] == [("soft_bounce", "L")]


def test_s5_list_spam_complaint_is_lifted_by_list_resubscribe_with_evidence() -> None:
    state = suppress(
        SuppressionState(), Command("suppress", "spam_complaint", NOON, list_id="L"), 7
    ).state
    kept = on_consent_change(state, "Subscribed to List", None, False, NOON, None, "L")
    assert kept.state.suppressions
    lifted = on_consent_change(state, "Subscribed to List", "signed #2", False, NOON, None, "L")
    assert not lifted.state.suppressions


def test_s5_evidence_subscribe_reemits_while_a_spam_complaint_is_in_force() -> None:
    policy = Policy(False, spam_suppressed=True)
    state, _ = run((act("c1", NOON), NOON))
    out = decide(state, act("c2", NOON + timedelta(hours=1), evidence="signed #3"), policy, NOON)
    assert [e.type for e in out.events] == ["Subscribed to Email Marketing"]


# -- found by the property tests --------------------------------------------------------


def test_c6_x3_late_act_moving_sms_consent_to_a_new_number_is_published() -> None:
    """Folding in a late act left SMS `subscribed`, but for a new number: the status
    compare saw no change, so nothing was published and the flow executor kept the old
    number's consent."""
    state, outs = run(
        (act("c1", NOON, channel="sms", method="form", phone_number="+1555001"), NOON),
        (act("c2", NOON + timedelta(hours=2), channel="push", method="form"), NOON),
        (
            act(
                "c3",
                NOON + timedelta(hours=1),
                channel="sms",
                method="form",
                phone_number="+1555002",
            ),
            NOON + timedelta(hours=3),
        ),
    )
    assert state.phone_number == "+1555002"
    assert state.status("sms_marketing") == "subscribed"
    assert [e.type for e in outs[2].events] == ["Subscribed to SMS Marketing"]


def test_c5_late_stop_under_a_newer_marketing_subscribe_is_no_sms_opt_out() -> None:
    """A late STOP folded in under a newer START left transactional unsubscribed and
    marketing subscribed; "Unsubscribed from SMS" was published although SMS still
    reaches the person (marketing covers transactional)."""
    state, outs = run(
        (
            act(
                "c1",
                NOON - timedelta(hours=2),
                channel="sms",
                purpose="transactional",
                method="form",
                phone_number=PHONE,
            ),
            NOON,
        ),
        (
            keyword_start(),
            NOON,
        ),
        (
            early_stop(),
            NOON + timedelta(minutes=1),
        ),
    )
    assert state.status("sms_transactional") == "unsubscribed"
    assert state.status("sms_marketing") == "subscribed"
    assert not outs[2].events


def test_c6_f7_number_changed_back_is_published_so_the_executor_does_not_revive_it() -> None:
    """Found by the property test: START from +15550002, then two acts that change the
    number to +15550001 and back. SMS consent belongs to the number (C6), so it is
    `never_subscribed` after the change back; the executor (F7) only learns that if each
    change of number is published, otherwise its last event says "subscribed" for
    +15550002 and it would text the number again."""
    first, second = "+15550002", "+15550001"
    later = NOON + timedelta(minutes=10)
    start = act("sms:1", NOON, channel="sms", method="keyword", confirmed=True, phone_number=first)
    state, outs = run(
        (start, NOON),
        (act("link", live_time(NOON), "unsubscribe", clicked=True), NOON),
        (act("c1", later, method="form", phone_number=second), later),
        (act("c2", later + timedelta(minutes=1), method="form", phone_number=first), later),
    )
    assert state.phone_number == first
    assert state.status("sms_marketing") == "never_subscribed"
    for out in outs[2:]:
        assert [e.type for e in out.events] == ["Changed SMS Phone Number"]
        assert out.confirmation is not None  # the email opt-out still asks (C11)


def test_c6_c11_opt_out_of_a_number_survives_a_change_away_and_back() -> None:
    """Found by the property test: STOP from a number, the profile's number changes away
    and back, then a form subscribe without evidence. A new number starts
    `never_subscribed` (C6), but a number that opted out is still opted out when it
    comes back, so the subscribe is refused (C11)."""
    first, second = "+15550002", "+15550001"
    stop = act("sms:1", NOON, "unsubscribe", "sms", method="keyword", phone_number=first)
    state, outs = run(
        (stop, NOON),
        (act("c1", NOON + timedelta(minutes=1), method="form", phone_number=second), NOON),
        (act("c2", NOON + timedelta(minutes=2), method="form", phone_number=first), NOON),
        (act("c3", NOON + timedelta(minutes=3), channel="sms", method="form"), NOON),
    )
    assert state.phone_number == first
    assert state.status("sms_marketing") == "unsubscribed"
    assert outs[-1].rejection is not None


def test_c6_c11_a_late_stop_of_a_number_already_left_is_remembered() -> None:
    """Found by the property test (arrival order): the profile moved to a second number,
    then a STOP from the first number, dated before the move, arrives late. It changes
    no slot (the profile has the second number) but is not stale either: no SMS act is
    newer (X3: an email act never makes an SMS act stale). When the profile comes back
    to the first number, that number is still opted out (C6, C11), in whatever order
    the three acts arrived."""
    first, second = "+15550001", "+15550002"
    early = NOON - timedelta(hours=3)
    stop = act("a1", early - timedelta(minutes=1), "unsubscribe", "sms", method="form",
               phone_number=first)  # fmt: skip
    move = act("a3", early, method="form", phone_number=second)
    back = act("a2", NOON - timedelta(minutes=30), method="form", phone_number=first)
    state, outs = run((move, NOON), (stop, NOON), (back, NOON))
    assert not outs[1].stale and not outs[1].events
    assert first in outs[1].state.opted_out_numbers
    assert state.phone_number == first
    assert state.status("sms_marketing") == "unsubscribed"
    in_time_order, _ = run((stop, NOON), (move, NOON), (back, NOON))
    assert in_time_order.slots == state.slots
