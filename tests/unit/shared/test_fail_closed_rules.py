"""Pure parts of failing closed: addresses and phones checked by their libraries, header
values that cannot add headers (checked by the standard mail parser), templates in a
budget (A7), outputs over the size cap dead-lettered, and masking in logs (X4)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from email import message_from_bytes
from email.policy import default

import phonenumbers
import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.contracts import topics
from shared.contracts.base import Profile
from shared.contracts.flows import FlowDefinition
from shared.db.uow import UnitOfWork
from shared.domain.flow_rules import alert_action_errors as flow_errors
from shared.limits import MAX_OUTPUT_BYTES
from shared.logging import mask
from shared.mail import compose
from shared.templates import (
    BudgetSandbox,
    TemplateBudgetExceeded,
    render_capped,
    run_sync_with_budget,
)

# --- addresses (item 1) ------------------------------------------------------------------


@pytest.mark.parametrize(
    "email", ["john doe@example.com", "a@b", "x\n@example.com", "Name: value", "a@@b.test"]
)
def test_x1_profile_email_is_checked_by_email_validator(email: str) -> None:
    with pytest.raises(ValidationError, match="email"):
        Profile(id="p", email=email)


@given(st.emails())
@settings(max_examples=60, deadline=None)
def test_x1_every_address_email_validator_accepts_is_kept(email: str) -> None:
    try:
        validate_email(email, check_deliverability=False, test_environment=True)
    except EmailNotValidError:
        return
    assert Profile(id="p", email=email).email == email


@given(st.from_regex(r"\+1[2-9][0-9]{2}[2-9][0-9]{6}", fullmatch=True))
@settings(max_examples=60, deadline=None)
def test_x1_phones_are_stored_in_e164(number: str) -> None:
    spaced = f"{number[:2]} ({number[2:5]}) {number[5:8]}-{number[8:]}"
    stored = Profile(id="p", phone_number=spaced).phone_number
    assert stored == number
    parsed = phonenumbers.parse(stored, None)
    assert phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == stored


@pytest.mark.parametrize("phone", ["5555550100", "+1555", "phone", "+0 123"])
def test_x1_phone_without_country_or_impossible_is_refused(phone: str) -> None:
    with pytest.raises(ValidationError, match="phone"):
        Profile(id="p", phone_number=phone)


def test_x1_blank_address_means_none_given() -> None:
    assert Profile(id="p", email=" ", phone_number="").email is None


# --- header injection (item 6) -----------------------------------------------------------

HEADERISH = st.text(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(["\n", "\r", "\x0b", "\x0c", "\x00", "\x85", "\u2028", ":", " "]),
    ),
    max_size=60,
)
EXPECTED = {
    "from",
    "to",
    "subject",
    "message-id",
    "date",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "reply-to",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "auto-submitted",
}


@given(name=HEADERISH, subject=HEADERISH, pad=HEADERISH)
@settings(max_examples=200, deadline=None)
def test_header_values_never_add_a_header(name: str, subject: str, pad: str) -> None:
    msg = compose(
        mail_from="alerts@acme.test",
        to="lead@acme.test",
        subject=subject + "\nX-Injected: " + pad,
        text="body",
        html="<p>body</p>",
        msg_id="<x@consentflow.local>",
        from_name=name + "\r\nBcc: thief@evil.test",
        reply_to="reply@acme.test",
        unsubscribe_url="http://127.0.0.1/u?token=t",
    )
    parsed = message_from_bytes(msg.as_bytes(), policy=default)
    assert {k.lower() for k in parsed} <= EXPECTED
    assert parsed.get_all("Bcc") is None and parsed.get_all("X-Injected") is None
    assert parsed["To"] == "lead@acme.test"


# --- templates (item 3, A7) --------------------------------------------------------------


def _flow(body: str) -> FlowDefinition:
    return FlowDefinition.model_validate(
        {
            "account_id": "acme",
            "flow_id": "f",
            "version": 1,
            "name": "n",
            "trigger": {"type": "metric", "metric": "m"},
            "steps": [
                {
                    "id": "alert",
                    "type": "internal_alert",
                    "recipients": ["lead@acme.test"],
                    "from_email": "alerts@acme.test",
                    "subject": "s",
                    "body": body,
                }
            ],
        }
    )


@pytest.mark.parametrize(
    ("body", "tag"),
    [
        ("{% include 'x' %}", "include"),
        ("{% import 'x' as y %}", "import"),
        ("{% from 'x' import y %}", "from … import"),
        ("{% extends 'x' %}", "extends"),
        ("{{ person.name|safe }}", "|safe"),
        ("{{ 10**10000000 }}", "**"),
        ("{{ 'x' * 60000000 }}", "*"),
    ],
)
def test_a7_save_refuses_tags_and_constant_bombs_naming_them(body: str, tag: str) -> None:
    errors = flow_errors(_flow(body))
    assert errors and tag in errors[0] and "step 'alert'" in errors[0]


def test_a7_ordinary_templates_still_save() -> None:
    assert flow_errors(_flow("{{ person.first_name }} scored {{ event.score * 2 }}")) == []


@pytest.mark.parametrize(
    "source",
    [
        "{{ n ** e }}",
        "{{ 'x' * e }}",
        "{{ '%099999999d' % 1 }}",
        "{{ '{:>99999999}'.format(1) }}",
        "{{ 'x'|center(e) }}",
        "{{ 'x'.ljust(e) }}",
        "{% for a in range(n) %}{% for b in range(n) %}{% endfor %}{% endfor %}",
        "{% for a in range(n) %}{% for b in range(n) %}xy{% endfor %}{% endfor %}",
    ],
)
def test_a7_render_over_budget_stops_quickly_with_a_reason(source: str) -> None:
    env = BudgetSandbox()
    started = time.monotonic()
    with pytest.raises(TemplateBudgetExceeded) as exc:
        run_sync_with_budget(
            lambda: render_capped(env.from_string(source), n=100_000, e=10_000_000), 1.0
        )
    assert str(exc.value)
    assert time.monotonic() - started < 5


@given(
    st.lists(
        st.sampled_from(
            ["{{ n ** e }}", "{{ 'ab' * n }}", "{{ n * n }}", "x", "{{ n }}", "{{ e|string }}"]
        ),
        max_size=6,
    ).map("".join),
    st.integers(0, 10**7),
    st.integers(0, 10**7),
)
@settings(max_examples=60, deadline=None)
def test_a7_any_render_ends_in_budget_or_with_the_reason(source: str, n: int, e: int) -> None:
    env = BudgetSandbox()
    started = time.monotonic()
    try:
        out = run_sync_with_budget(lambda: render_capped(env.from_string(source), n=n, e=e), 1.0)
        assert len(out) <= 256 * 1024
    except TemplateBudgetExceeded:
        pass
    assert time.monotonic() - started < 5


# --- size caps (item 2) ------------------------------------------------------------------


def test_x_size_an_output_over_the_cap_becomes_a_dead_letter_with_the_reason() -> None:
    uow = UnitOfWork(None, "alert_dispatcher")  # type: ignore[arg-type]
    uow.publish(topics.ALERT_REQUESTS, "p-1", b"x" * (MAX_OUTPUT_BYTES + 1))
    uow.publish(topics.ALERT_REQUESTS, "p-2", b"{}")
    (topic, key, value, _), (small_topic, *_) = uow._outbox
    assert topic == topics.dlq(topics.ALERT_REQUESTS) and key == b"p-1"
    letter = json.loads(value)
    assert "over the limit" in letter["error"] and letter["original_size"] == MAX_OUTPUT_BYTES + 1
    assert len(value) < MAX_OUTPUT_BYTES
    assert small_topic == topics.ALERT_REQUESTS


# --- masking (item 7, X4) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("call 5555550100 now", "5555550100"),
        ("call (555) 555-0100", "555-0100"),
        ("call 0044 20 7946 0958", "7946"),
        ("mail jürgen@bücher.de", "jürgen"),
        ("mail ü.x@xn--bcher-kva.de", "ü.x"),
        ("mail 山田@例え.jp", "山田"),
    ],
)
def test_x4_masks_phones_without_plus_and_non_ascii_and_idn_emails(line: str, secret: str) -> None:
    assert secret not in mask(line)


@given(st.from_regex(r"\+?1?[2-9][0-9]{2}[2-9][0-9]{6}", fullmatch=True))
def test_x4_any_phone_in_a_line_is_masked(number: str) -> None:
    assert number not in mask(f"sms from {number} received")


def test_x4_timestamps_and_ids_stay_readable() -> None:
    line = "at 2026-11-23T10:00:00Z offset 12345 id 123e4567-e89b-12d3-a456-426614174000"
    assert mask(line) == line


def test_x4_library_own_lines_are_json_and_masked() -> None:
    code = (
        "import logging, aiokafka\n"
        "from shared.logging import configure_logging\n"
        "configure_logging('t')\n"
        "logging.getLogger('aiokafka').error('handler failed for +15555550100')\n"
        "logging.getLogger('aiokafka.consumer.fetcher').error('lost a@example.com')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 2, result.stderr
    assert "+15555550100" not in result.stderr and "a@example.com" not in result.stderr
