"""F3-F5: walking a profile through the steps."""

from __future__ import annotations

from services.flow_executor.domain.conditions import evaluate
from services.flow_executor.domain.walker import (
    SKIPPED_DRAFT,
    SKIPPED_FILTER,
    Execute,
    Exit,
    HoldForReview,
    Scheduled,
    Skip,
    advance,
    resume,
)
from shared.contracts.flows import Predicate
from tests.unit.flow_executor.flows import alert, flow

CTX = {
    "event": {"score": 3},
    "person": {"id": "p-1", "first_name": "Ada", "properties": {"tier": "gold"}},
}


def never(_step):
    return None


def test_f3_zero_delay_passes_and_longer_delay_schedules() -> None:
    f = flow(
        [
            {"id": "now", "type": "delay", "seconds": 0, "next": "later"},
            {"id": "later", "type": "delay", "seconds": 3600, "next": "alert"},
            alert(),
        ]
    )
    assert advance(f, "now", CTX, never) == [Scheduled("later", 3600)]
    [execute, done] = resume(f, "later", CTX, never)
    assert isinstance(execute, Execute) and execute.step.id == "alert"
    assert done == Exit("completed")


def test_f3_waiting_run_follows_the_new_version_or_exits_if_its_delay_is_gone() -> None:
    v2 = flow(
        [{"id": "later", "type": "delay", "seconds": 60, "next": "other"}, alert("other")],
        version=2,
    )
    assert [d.step.id for d in resume(v2, "later", CTX, never) if isinstance(d, Execute)] == [
        "other"
    ]
    v3 = flow([alert("other")], version=3)
    assert resume(v3, "later", CTX, never) == [Exit("Exited: step 'later' is not in version 3")]


def test_f3_split_on_event_and_profile_properties_with_all_and_any() -> None:
    cond = {
        "all": [
            {"property": "event.score", "op": "lte", "value": 6},
            {
                "any": [
                    {"property": "person.tier", "op": "in", "value": ["gold"]},
                    {"property": "person.first_name", "op": "eq", "value": "Bob"},
                ]
            },
        ]
    }
    f = flow(
        [
            {"id": "s", "type": "split", "condition": cond, "yes": "y", "no": "n"},
            alert("y"),
            alert("n"),
        ]
    )
    yes = advance(f, "s", CTX, never)
    assert [d.step.id for d in yes if isinstance(d, Execute)] == ["y"]
    silver = {**CTX, "person": {"id": "p", "properties": {"tier": "silver"}}}
    assert [d.step.id for d in advance(f, "s", silver, never) if isinstance(d, Execute)] == ["n"]


def test_f3_missing_and_mistyped_properties_compare_false() -> None:
    assert not evaluate(Predicate(property="event.nope", op="eq", value=1), CTX)
    assert evaluate(Predicate(property="event.nope", op="ne", value=1), CTX)
    assert not evaluate(Predicate(property="event.score", op="lt", value="x"), CTX)
    assert evaluate(Predicate(property="person.tier", op="exists"), CTX)


def test_f3_profile_filter_is_checked_again_before_each_action() -> None:
    f = flow(
        [alert("a", "b"), alert("b")],
        profile_filter={"property": "tier", "op": "eq", "value": "gold"},
    )
    assert len([d for d in advance(f, "a", CTX, never) if isinstance(d, Execute)]) == 2
    lapsed = {**CTX, "person": {"id": "p-1", "properties": {"tier": "silver"}}}
    assert advance(f, "a", lapsed, never) == [Skip("a", SKIPPED_FILTER), Exit(SKIPPED_FILTER)]


def test_f5_modes_live_manual_draft() -> None:
    f = flow(
        [
            alert("live", "manual"),
            alert("manual", "draft", mode="manual"),
            alert("draft", mode="draft"),
        ]
    )
    decisions = advance(f, "live", CTX, never)
    assert isinstance(decisions[0], Execute)
    assert isinstance(decisions[1], HoldForReview) and decisions[1].step.id == "manual"
    assert decisions[2] == Skip("draft", SKIPPED_DRAFT)
    assert decisions[3] == Exit("completed")


def test_f6_blocked_message_is_skipped_with_reason_and_walk_goes_on() -> None:
    f = flow(
        [{"id": "mail", "type": "email", "next": "sms"}, {"id": "sms", "type": "sms", "next": None}]
    )

    def blocked(step):
        return "Skipped: no email address" if step.type == "email" else None

    decisions = advance(f, "mail", CTX, blocked)
    assert decisions[0] == Skip("mail", "Skipped: no email address")
    assert isinstance(decisions[1], Execute) and decisions[1].step.id == "sms"
