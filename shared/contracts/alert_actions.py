"""What makes an internal alert action acceptable when its flow is saved (A1, A7). Pure.

Both services that read `flow-definitions` apply these checks, so a version the alert
dispatcher refuses is never run by the flow executor either.
"""

from __future__ import annotations

import re

from jinja2 import TemplateSyntaxError

from shared.addresses import email_error
from shared.contracts.flows import FlowDefinition, InternalAlertStep
from shared.templates import BudgetSandbox, refused_tags

_PARSER = BudgetSandbox()

MAX_RECIPIENTS = 5

# Tags that make no sense in a mail to a team member, or would leak the profile's own
# links (A7): dynamic coupons, data and product feeds, web view, preference page and
# unsubscribe links. A name counts when it starts an expression or names a block tag
# (`{{ unsubscribe_link }}`, `{% coupon_code 'X' %}`, `{{ feeds.stock }}`); a property
# that happens to share the name (`{{ event.coupon }}`) is data and stays allowed.
FORBIDDEN_TAGS = {
    "coupon": "dynamic coupon",
    "coupon_code": "dynamic coupon",
    "coupons": "dynamic coupon",
    "feeds": "data feed",
    "feed": "data feed",
    "data_feed": "data feed",
    "catalog": "product feed",
    "product_feed": "product feed",
    "products": "product feed",
    "web_view": "web view link",
    "web_view_link": "web view link",
    "web_view_url": "web view link",
    "view_in_browser": "web view link",
    "manage_preferences": "preference page link",
    "preference_page": "preference page link",
    "preference_page_link": "preference page link",
    "preferences_link": "preference page link",
    "unsubscribe": "unsubscribe link",
    "unsubscribe_link": "unsubscribe link",
    "unsubscribe_url": "unsubscribe link",
}
_TAG = re.compile(r"({{.*?}}|{%.*?%})", re.S)
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_ROOT_IDENT = re.compile(r"(?<![\w.])[A-Za-z_][A-Za-z0-9_]*")


def syntax_error(source: str) -> str | None:
    """Why `source` is not a valid template, or None; checked when a flow is saved so that
    a broken template is rejected then rather than mailed unrendered later."""
    try:
        _PARSER.parse(source)
    except TemplateSyntaxError as exc:
        return f"line {exc.lineno}: {exc.message}"
    return None


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
    """The forbidden tags used in `template`, each as "'name' (what it is)"."""
    found: dict[str, None] = {}
    for tag in _TAG.findall(template):
        inner = _STRING.sub("''", tag[2:-2].strip("-+ \t\r\n"))
        for ident in _ROOT_IDENT.findall(inner):
            if ident.lower() in FORBIDDEN_TAGS:
                found.setdefault(f"'{ident}' ({FORBIDDEN_TAGS[ident.lower()]})", None)
    return list(found)


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
        source = getattr(step, field)
        tags = forbidden_tags(source)
        for tag in tags:
            errors.append(
                f"step '{step.id}': tag {tag} is not allowed in an internal alert {field}"
            )
        for tag in refused_tags(_PARSER, source):
            tags.append(tag)
            errors.append(
                f"step '{step.id}': '{tag}' is not allowed in an internal alert {field}"
                " (templates are self-contained and values are always escaped, A7)"
            )
        if not tags and (problem := syntax_error(source)):
            errors.append(f"step '{step.id}': the {field} template is not valid ({problem})")
    if email_error(step.from_email):
        errors.append(f"step '{step.id}': from_email {step.from_email!r} is not a valid address")
    if step.reply_to and email_error(step.reply_to):
        errors.append(f"step '{step.id}': reply_to {step.reply_to!r} is not a valid address")
    return errors


def alert_steps(flow: FlowDefinition) -> list[InternalAlertStep]:
    return [s for s in flow.steps if isinstance(s, InternalAlertStep)]


def flow_errors(flow: FlowDefinition) -> list[str]:
    """A1/A7 problems of every alert action in `flow`; empty when it may be saved."""
    return [e for s in alert_steps(flow) for e in step_errors(s)]


def alert_recipients(recipients: list[str]) -> list[str]:
    """The recipients an alert request may go to: valid, folded, unique, at most five (a
    request from a version this service rejected cannot widen the list)."""
    folded, _ = normalise_recipients(recipients)
    return folded[:MAX_RECIPIENTS]
