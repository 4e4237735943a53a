"""F1: a definition is validated as a graph; every error names its step."""

from __future__ import annotations

from shared.domain.flow_rules import flow_problems as validate
from tests.unit.flow_executor.flows import alert, flow


def test_f1_valid_flow_has_no_errors() -> None:
    f = flow(
        [
            {"id": "wait", "type": "delay", "seconds": 60, "next": "split"},
            {
                "id": "split",
                "type": "split",
                "yes": "alert",
                "no": None,
                "condition": {
                    "all": [
                        {"property": "person.tier", "op": "eq", "value": "gold"},
                        {
                            "any": [
                                {"property": "event.score", "op": "lt", "value": 3},
                                {"property": "person.vip", "op": "exists"},
                            ]
                        },
                    ]
                },
            },
            alert(),
        ]
    )
    assert validate(f) == []


def test_f1_unknown_next_step_is_named() -> None:
    errors = validate(flow([{"id": "wait", "type": "delay", "seconds": 0, "next": "nope"}]))
    assert errors == ["step 'wait': next step 'nope' does not exist"]


def test_f1_split_branch_to_unknown_step_and_missing_branches() -> None:
    errors = validate(
        flow(
            [
                {
                    "id": "s1",
                    "type": "split",
                    "condition": {"property": "event.score", "op": "eq", "value": 1},
                    "yes": "ghost",
                },
                {
                    "id": "s2",
                    "type": "split",
                    "condition": {"property": "event.score", "op": "eq", "value": 1},
                },
            ]
        )
    )
    assert "step 's1': next step 'ghost' does not exist" in errors
    assert "step 's2': split needs a 'yes' or 'no' branch" in errors


def test_f1_cycle_is_rejected_naming_the_step() -> None:
    errors = validate(
        flow(
            [
                {"id": "a", "type": "delay", "seconds": 1, "next": "b"},
                {"id": "b", "type": "delay", "seconds": 1, "next": "a"},
            ]
        )
    )
    assert errors == ["step 'b': going to 'a' makes a cycle"]
    assert validate(flow([{"id": "a", "type": "delay", "seconds": 1, "next": "a"}])) == [
        "step 'a': leads to itself (a cycle)"
    ]


def test_f1_duplicate_and_unreachable_steps() -> None:
    assert validate(flow([alert("x"), alert("x")])) == ["step 'x': duplicate step id"]
    errors = validate(flow([alert("first"), alert("orphan")]))
    assert errors == ["step 'orphan': no path from the first step reaches it"]


def test_f1_bad_conditions_are_named() -> None:
    errors = validate(
        flow(
            [
                {
                    "id": "s",
                    "type": "split",
                    "yes": "a",
                    "no": "a",
                    "condition": {
                        "any": [
                            {"property": "event.score", "op": "in", "value": 3},
                            {"property": "event.", "op": "eq", "value": 1},
                            {"property": "person.tier", "op": "gt", "value": {"x": 1}},
                            {"property": "person.tier", "op": "eq"},
                        ]
                    },
                },
                alert("a"),
            ],
            profile_filter={"property": "tier", "op": "in", "value": "gold"},
        )
    )
    assert errors == [
        "step 's': 'in' needs a list value",
        "step 's': property 'event.' is not a property path",
        "step 's': 'gt' needs a number or string value",
        "step 's': 'eq' on 'person.tier' needs a value",
        "profile_filter: 'in' needs a list value",
    ]


def test_f1_alert_recipients_are_checked_like_the_dispatcher_does() -> None:
    six = [f"r{i}@acme.test" for i in range(6)]
    assert validate(flow([alert(recipients=six)])) == [
        "step 'alert': an internal alert needs 1 to 5 recipients, got 6"
    ]
    assert validate(flow([alert(recipients=[])])) == [
        "step 'alert': an internal alert needs 1 to 5 recipients, got 0"
    ]
    folded = [
        "A@acme.test",
        "a@acme.test",
        "b@acme.test",
        "c@acme.test",
        "d@acme.test",
        "e@acme.test",
    ]
    assert validate(flow([alert(recipients=folded)])) == []
    [bad] = validate(flow([alert(recipients=["not-an-address"])]))
    assert bad.startswith("step 'alert': recipient 'not-an-address' is not a valid email")


def test_a7_flow_with_forbidden_tag_is_refused_by_the_executor_too() -> None:
    errors = validate(flow([alert(body="Click {{ unsubscribe_link }}")]))
    assert errors == [
        "step 'alert': tag 'unsubscribe_link' (unsubscribe link) is not allowed in an"
        " internal alert body"
    ]
    [broken] = validate(flow([alert(subject="{{ person.email")]))
    assert broken.startswith("step 'alert': the subject template is not valid")
