"""The suppression domain, pure (S1–S5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.suppression.domain.rules import (
    Command,
    SuppressionState,
    decide,
    on_consent_change,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def run(*cmds: Command, limit: int = 7, state: SuppressionState | None = None):
    state = state or SuppressionState()
    outs = []
    for c in cmds:
        out = decide(state, c, limit)
        outs.append(out)
        if out.rejection is None:
            state = out.state
    return state, outs


def cmd(action: str, reason: str, n: int = 0, **kw) -> Command:
    return Command(action, reason, T0 + timedelta(minutes=n), **kw)


def test_s1_reasons_and_list_specific_suppression() -> None:
    state, outs = run(
        cmd("suppress", "manual"),
        cmd("suppress", "invalid_email"),
        cmd("suppress", "manual", list_id="L"),
    )
    assert {(s.reason, s.list_id) for s in state.suppressions} == {
        ("manual", None),
        ("invalid_email", None),
        ("manual", "L"),
    }
    assert outs[2].changes[0].list_id == "L"
    _, (again,) = run(cmd("suppress", "manual"), state=state)
    assert again.changes == ()


def test_s4_hard_bounce_suppresses_at_once() -> None:
    _state, (out,) = run(cmd("suppress", "hard_bounce"))
    assert out.changes[0].reason == "hard_bounce"


def test_s4_soft_bounces_suppress_after_limit_and_delivery_resets() -> None:
    state, outs = run(*[cmd("suppress", "soft_bounce", n) for n in range(6)])
    assert state.soft_bounces == 6 and not state.suppressions
    state, (_reset,) = run(cmd("suppress", "delivered"), state=state)
    assert state.soft_bounces == 0
    state, outs = run(*[cmd("suppress", "soft_bounce", n) for n in range(3)], limit=3, state=state)
    assert [o.changes for o in outs[:2]] == [(), ()]
    assert outs[2].changes[0].reason == "soft_bounce"


def test_s5_operator_removes_manual_bounce_and_list_suppressions() -> None:
    state, _ = run(
        cmd("suppress", "manual"),
        cmd("suppress", "hard_bounce"),
        cmd("suppress", "manual", list_id="L"),
    )
    state, outs = run(
        cmd("unsuppress", "hard_bounce"),
        cmd("unsuppress", "manual", list_id="L"),
        cmd("unsuppress", "manual"),
        state=state,
    )
    assert state.suppressions == ()
    assert [len(o.changes) for o in outs] == [1, 1, 1]


def test_s5_spam_complaint_cannot_be_unsuppressed() -> None:
    state, (_, out) = run(cmd("suppress", "spam_complaint"), cmd("unsuppress", "spam_complaint"))
    assert out.rejection and "evidence" in out.rejection
    assert state.has("email", "spam_complaint", None)


def test_s5_resubscribe_with_evidence_lifts_spam_complaint() -> None:
    state, _ = run(cmd("suppress", "spam_complaint"))
    later = T0 + timedelta(hours=1)
    out = on_consent_change(state, "Subscribed to Email Marketing", None, False, later)
    assert out.changes == ()
    out = on_consent_change(state, "Subscribed to Email Marketing", "ticket-9", False, later)
    assert out.state.suppressions == ()


def test_s2_consent_events_do_not_lift_bounces() -> None:
    state, _ = run(cmd("suppress", "hard_bounce"))
    out = on_consent_change(
        state, "Subscribed to Email Marketing", "ev", False, T0 + timedelta(hours=1)
    )
    assert out.changes == ()


def test_s5_c11_import_with_evidence_lifts_a_list_complaint_but_no_manual_suppression() -> None:
    """Found by the consent property test against the reference model: an imported
    re-subscribe that carries evidence lifts a spam complaint (C11: whatever the
    `historical_import` flag), while an import never lifts an operator's manual
    suppression."""
    state, _ = run(
        cmd("suppress", "spam_complaint", list_id="L1"),
        cmd("suppress", "manual"),
    )
    later = T0 + timedelta(hours=1)
    out = on_consent_change(state, "Subscribed to List", "form #7", True, later, list_id="L1")
    assert [(c.type, c.reason, c.list_id) for c in out.changes] == [
        ("unsuppressed", "spam_complaint", "L1")
    ]
    out = on_consent_change(out.state, "Subscribed to Email Marketing", None, True, later)
    assert not out.changes
    assert [s.reason for s in out.state.suppressions] == ["manual"]
