"""F6/F7: whether an email or SMS may reach the profile, from the executor's read model."""

from __future__ import annotations

from services.flow_executor.domain.reachability import blocked_reason
from shared.contracts import ConsentState
from shared.contracts.flows import EmailStep, SmsStep

PERSON = {"id": "p-1", "email": "ada@example.com", "phone_number": "+15555550100"}


def state(**channels) -> dict:
    return ConsentState.model_validate(channels).model_dump(mode="json")


def email(**kw) -> EmailStep:
    return EmailStep(id="mail", type="email", **kw)


def sms(purpose: str = "marketing") -> SmsStep:
    return SmsStep(id="text", type="sms", purpose=purpose)


def test_f6_email_allowed_when_never_subscribed_or_subscribed() -> None:
    assert blocked_reason(email(), None, [], PERSON) is None
    assert blocked_reason(email(), state(email={"status": "subscribed"}), [], PERSON) is None


def test_f6_email_blocked_by_unsubscribe_suppression_and_missing_address() -> None:
    unsub = state(email={"status": "unsubscribed"})
    assert blocked_reason(email(), unsub, [], PERSON) == "Skipped: unsubscribed from email"
    hard = [{"reason": "hard_bounce", "list_id": None}]
    assert blocked_reason(email(), None, hard, PERSON) == "Skipped: suppressed (hard_bounce)"
    assert blocked_reason(email(), None, [], {"id": "p"}) == "Skipped: no email address"


def test_f6_list_suppression_blocks_only_that_list() -> None:
    listed = [{"reason": "manual", "list_id": "news"}]
    assert blocked_reason(email(), None, listed, PERSON) is None
    assert blocked_reason(email(list_id="news"), None, listed, PERSON) == (
        "Skipped: suppressed from list news (manual)"
    )
    unsub = state(lists={"news": "unsubscribed"})
    assert blocked_reason(email(list_id="news"), unsub, [], PERSON) == (
        "Skipped: unsubscribed from list news"
    )


def test_f6_scoped_opt_outs_follow_c10() -> None:
    user = state(opt_outs=["user:events/bob"])
    assert blocked_reason(email(client_id="events", user_id="bob"), user, [], PERSON) == (
        "Skipped: opted out (user:events/bob)"
    )
    assert blocked_reason(email(client_id="events", user_id="amy"), user, [], PERSON) is None
    client = state(opt_outs=["client:events"])
    assert blocked_reason(email(client_id="events", user_id="amy"), client, [], PERSON) == (
        "Skipped: opted out (client:events)"
    )
    assert blocked_reason(email(client_id="tax"), client, [], PERSON) is None
    group = state(opt_outs=["group"])
    assert blocked_reason(email(client_id="tax"), group, [], PERSON) == "Skipped: opted out (group)"


def test_f6_sms_needs_consent_and_marketing_implies_transactional() -> None:
    assert blocked_reason(sms(), None, [], PERSON) == "Skipped: not subscribed to SMS marketing"
    marketing = state(sms_marketing={"status": "subscribed"})
    assert blocked_reason(sms("transactional"), marketing, [], PERSON) is None
    transactional = state(sms_transactional={"status": "subscribed"})
    assert blocked_reason(sms("transactional"), transactional, [], PERSON) is None
    assert blocked_reason(sms(), transactional, [], PERSON) == (
        "Skipped: not subscribed to SMS marketing"
    )
    held = [{"reason": "manual", "channel": "sms"}]
    assert blocked_reason(sms(), marketing, held, PERSON) == "Skipped: suppressed (manual)"


def test_f6_sms_consent_belongs_to_the_phone_number() -> None:
    given = state(sms_marketing={"status": "subscribed", "phone_number": "+15555550100"})
    assert blocked_reason(sms(), given, [], PERSON) is None
    moved = {**PERSON, "phone_number": "+15555550199"}
    assert blocked_reason(sms(), given, [], moved) == "Skipped: not subscribed to SMS marketing"
    assert blocked_reason(sms(), given, [], {"id": "p"}) == "Skipped: no phone number"
