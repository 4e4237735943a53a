"""The dispatcher's pure rules: action checks (A1, A7), the recipient lifecycle (A2–A4),
outcomes (A5, A9), templates (A7) and the sending-limit window (A8)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.alert_dispatcher.domain.limits import admissible, window_at
from services.alert_dispatcher.domain.outcomes import ALL_REFUSED, NO_CONFIRMED, decide
from services.alert_dispatcher.domain.recipients import (
    Recipient,
    added_to_actions,
    on_added,
    on_confirm,
    on_unsubscribe,
)
from services.alert_dispatcher.domain.templates import render
from shared.contracts import FlowDefinition
from shared.domain.flow_rules import (
    alert_action_errors as flow_errors,
)
from shared.domain.flow_rules import (
    alert_recipients,
    forbidden_tags,
    normalise_recipients,
)


def _flow(
    recipients: list[str], subject: str = "Hi {{ person.email }}", body: str = "x"
) -> FlowDefinition:
    return FlowDefinition.model_validate(
        {
            "account_id": "acme",
            "flow_id": "nps",
            "version": 1,
            "name": "NPS",
            "trigger": {"type": "metric", "metric": "Left NPS Score"},
            "steps": [
                {
                    "id": "notify-cx",
                    "type": "internal_alert",
                    "recipients": recipients,
                    "from_email": "alerts@acme.test",
                    "subject": subject,
                    "body": body,
                    "next": None,
                }
            ],
        }
    )


def test_a1_recipients_are_folded_and_deduplicated() -> None:
    folded, errors = normalise_recipients([" Lead@Acme.test", "lead@acme.TEST", "ops@acme.test"])
    assert folded == ["lead@acme.test", "ops@acme.test"]
    assert errors == []
    assert flow_errors(_flow(["A@acme.test", "a@acme.test"])) == []


@pytest.mark.parametrize("count", [0, 6])
def test_a1_zero_or_more_than_five_recipients_is_rejected_naming_the_step(count: int) -> None:
    errors = flow_errors(_flow([f"r{i}@acme.test" for i in range(count)]))
    assert len(errors) == 1
    assert "step 'notify-cx'" in errors[0]
    assert f"got {count}" in errors[0]


def test_a1_five_after_folding_is_accepted() -> None:
    six_raw = [f"r{i}@acme.test" for i in range(5)] + ["R0@ACME.test"]
    assert flow_errors(_flow(six_raw)) == []


def test_a1_bad_address_is_rejected_naming_the_step_and_address() -> None:
    errors = flow_errors(_flow(["lead@acme.test", "not-an-address"]))
    assert len(errors) == 1
    assert "step 'notify-cx'" in errors[0] and "'not-an-address'" in errors[0]


def test_a1_requests_never_widen_the_recipient_list() -> None:
    assert alert_recipients(["x", "A@a.test", "a@a.test"] + [f"{i}@a.test" for i in range(9)]) == [
        "a@a.test",
        "0@a.test",
        "1@a.test",
        "2@a.test",
        "3@a.test",
    ]


@pytest.mark.parametrize(
    ("template", "tag"),
    [
        ("{% coupon_code 'WELCOME' %}", "coupon_code"),
        ("{{ feeds.stock.items }}", "feeds"),
        ("{% catalog 'x' %}", "catalog"),
        ("see {{ web_view }}", "web_view"),
        ("{% manage_preferences %}", "manage_preferences"),
        ("{{ unsubscribe_link }}", "unsubscribe_link"),
        ("{%- unsubscribe -%}", "unsubscribe"),
    ],
)
def test_a7_forbidden_tags_are_named(template: str, tag: str) -> None:
    errors = flow_errors(_flow(["lead@acme.test"], body=f"Hello {template}"))
    assert len(errors) == 1
    assert f"'{tag}'" in errors[0] and "step 'notify-cx'" in errors[0] and "body" in errors[0]


def test_a7_properties_and_strings_that_share_a_tag_name_are_data() -> None:
    assert forbidden_tags("{{ event.coupon }} {{ person.unsubscribe }} {{ 'unsubscribe' }}") == []


def test_a7_broken_template_is_rejected_when_saved() -> None:
    errors = flow_errors(_flow(["lead@acme.test"], subject="{{ person.email "))
    assert len(errors) == 1 and "subject template is not valid" in errors[0]


def test_a3_new_recipient_is_asked_once_confirmed_never_again() -> None:
    new = on_added(None, "a@x.test")
    assert new.send_confirmation and new.recipient == Recipient("a@x.test", "unconfirmed", 1)
    confirmed = Recipient("a@x.test", "confirmed", 1)
    assert on_added(confirmed, "a@x.test").send_confirmation is False
    assert on_added(confirmed, "a@x.test").recipient == confirmed


def test_a3_disabled_or_unconfirmed_re_added_gets_a_new_generation() -> None:
    for status in ("disabled", "unconfirmed"):
        change = on_added(Recipient("a@x.test", status, 3), "a@x.test")  # type: ignore[arg-type]
        assert change.send_confirmation
        assert change.recipient == Recipient("a@x.test", "unconfirmed", 4)


def test_a3_a_save_asks_each_added_recipient_once() -> None:
    changes = added_to_actions(
        {"kept@x.test": Recipient("kept@x.test", "unconfirmed", 1)},
        {"s1": {"kept@x.test"}},
        [("s1", ["kept@x.test", "new@x.test"]), ("s2", ["new@x.test", "kept@x.test"])],
    )
    # new@ is asked once although two steps add it; kept@ was already in s1 but s2 adds it.
    assert [(c.recipient.email, c.send_confirmation) for c in changes] == [
        ("new@x.test", True),
        ("kept@x.test", True),
    ]


def test_a4_confirm_is_idempotent_and_old_links_expire() -> None:
    r = Recipient("a@x.test", "unconfirmed", 2)
    assert on_confirm(r, 2).recipient == Recipient("a@x.test", "confirmed", 2)
    assert on_confirm(Recipient("a@x.test", "confirmed", 2), 2).outcome == "unchanged"
    assert on_confirm(r, 1).outcome == "expired"
    assert on_confirm(None, 1).outcome == "unknown"
    # A disabled recipient cannot come back through an old confirmation link.
    assert on_confirm(Recipient("a@x.test", "disabled", 2), 2).outcome == "expired"


def test_a4_unsubscribe_disables_from_any_earlier_mail() -> None:
    r = Recipient("a@x.test", "confirmed", 3)
    assert on_unsubscribe(r, 1).recipient == Recipient("a@x.test", "disabled", 3)
    assert on_unsubscribe(Recipient("a@x.test", "disabled", 3), 3).outcome == "unchanged"
    assert on_unsubscribe(r, 4).outcome == "unknown"


def test_a5_outcome_from_deliveries() -> None:
    assert decide({"a@x": "pending", "b@x": "sent"}) is None
    sent = decide({"b@x": "sent", "a@x": "failed", "c@x": "skipped"})
    assert sent is not None and (sent.type, sent.recipients, sent.failed_recipients) == (
        "sent",
        ["b@x"],
        ["a@x"],
    )
    skipped = decide({"a@x": "skipped"})
    assert skipped is not None and (skipped.type, skipped.reason) == ("skipped", NO_CONFIRMED)


def test_a9_every_recipient_refused_is_failed() -> None:
    failed = decide({"a@x": "failed", "b@x": "skipped"})
    assert failed is not None and (failed.type, failed.reason) == ("failed", ALL_REFUSED)


def test_a7_person_and_event_render_escaped_and_missing_is_empty() -> None:
    profile = {"id": "p1", "first_name": "<b>Ada</b>", "properties": {"tier": "gold"}}
    event = {"comment": 'fast & "cheap"'}
    src = "{{ person.first_name }}|{{ person.tier }}|{{ event.comment }}|{{ person.x.y }}|"
    assert render(src, profile, event, html=True) == (
        "&lt;b&gt;Ada&lt;/b&gt;|gold|fast &amp; &#34;cheap&#34;||"
    )
    assert render(src, profile, event, html=False) == '<b>Ada</b>|gold|fast & "cheap"||'
    assert render("{{ event.comment }}", profile, event, html=False, metric_flow=False) == ""


def test_a7_sandbox_blocks_attribute_escapes() -> None:
    src = "{{ person.__class__.__mro__ }}{{ ''.__class__ }}"
    assert "class" not in render(src, {"id": "p"}, {}, html=False).replace(src, "")


def test_a8_window_and_admission() -> None:
    w = window_at(datetime(2026, 1, 1, 10, 59, 59, tzinfo=UTC), 3600)
    assert (w.start.hour, w.end.hour) == (10, 11)
    assert admissible(used=8, limit=10, wanted=5) == 2
    assert admissible(used=10, limit=10, wanted=1) == 0
    assert admissible(used=0, limit=10, wanted=3) == 3
