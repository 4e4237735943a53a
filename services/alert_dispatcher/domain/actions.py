"""Checking an internal alert action when its flow is saved (A1, A7). Pure."""

from __future__ import annotations

import re

from shared.contracts.flows import FlowDefinition, InternalAlertStep
from shared.mail import email_error

MAX_RECIPIENTS = 5

# Tags that make no sense in a mail to a team member, or would leak the profile's own
# links (A7): dynamic coupons, data and product feeds, web view, preference page and
# unsubscribe links. Matched as identifiers inside `{{ … }}` or `{% … %}`.
FORBIDDEN_TAGS = {
    "coupon": "dynamic coupon",
    "coupon_code": "dynamic coupon",
    "feeds": "data feed",
    "feed": "data feed",
    "catalog": "product feed",
    "product_feed": "product feed",
    "web_view": "web view link",
    "web_view_link": "web view link",
    "view_in_browser": "web view link",
    "manage_preferences": "preference page link",
    "preference_page": "preference page link",
    "preferences_link": "preference page link",
    "unsubscribe": "unsubscribe link",
    "unsubscribe_link": "unsubscribe link",
    "unsubscribe_url": "unsubscribe link",
}
_TAG = re.compile(r"({{.*?}}|{%.*?%})", re.S)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def fold(email: str) -> str:
    """Recipients compare case-insensitively (A1)."""
    return email.strip().lower()


def normalise_recipients(recipients: list[str]) -> tuple[list[str], list[str]]:
    """(folded unique recipients in order, errors)."""
    errors = []
    seen: dict[str, None] = {}
    for raw in recipients:
        if problem := email_error(raw):
            errors.append(f"recipient {raw!r} is not a valid email address ({problem})")
            continue
        seen.setdefault(fold(raw), None)
    return list(seen), errors


def forbidden_tags(template: str) -> list[str]:
    found = []
    for tag in _TAG.findall(template):
        for ident in _IDENT.findall(tag[2:-2]):
            if ident.lower() in FORBIDDEN_TAGS:
                found.append(f"'{ident}' ({FORBIDDEN_TAGS[ident.lower()]})")
    return found


def step_errors(step: InternalAlertStep) -> list[str]:
    """Every problem with one alert action, each naming the step."""
    errors = []
    recipients, bad = normalise_recipients(step.recipients)
    errors += [f"step '{step.id}': {e}" for e in bad]
    if not bad and not 1 <= len(recipients) <= MAX_RECIPIENTS:
        errors.append(
            f"step '{step.id}': an internal alert needs 1 to {MAX_RECIPIENTS} recipients,"
            f" got {len(recipients)}"
        )
    for field in ("subject", "body"):
        for tag in forbidden_tags(getattr(step, field)):
            errors.append(f"step '{step.id}': tag {tag} is not allowed in an internal alert {field}")
    if email_error(step.from_email):
        errors.append(f"step '{step.id}': from_email {step.from_email!r} is not a valid address")
    return errors


def alert_steps(flow: FlowDefinition) -> list[InternalAlertStep]:
    return [s for s in flow.steps if isinstance(s, InternalAlertStep)]


def flow_errors(flow: FlowDefinition) -> list[str]:
    """A1/A7 problems of every alert action in `flow`; empty when it may be saved."""
    return [e for s in alert_steps(flow) for e in step_errors(s)]
