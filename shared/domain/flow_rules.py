"""Whether a flow version may be saved (F1, A1, A7): the one rule both services that read
`flow-definitions` decide by. Pure.

The flow executor runs a version only if `flow_problems` finds nothing, and the alert
dispatcher registers its recipients (and mails their confirmations, A3) only then too,
so the two accept and reject exactly the same versions: a version with a cycle is not
run by one while the other asks its recipients to confirm.

Every problem names its step (or `profile_filter` / `trigger filter`):

- graph (F1): duplicate ids, unknown `next`/`yes`/`no` targets, a split with no branch,
  cycles (a flow must end), steps nothing reaches from the first step;
- conditions (F1): shapes pydantic cannot see (a path that is not a path, a comparison
  without a value, `in` without a list);
- internal alert actions (A1, A7): 1 to 5 valid recipients after folding, valid sender
  addresses, templates that parse and use no forbidden or refused tag.

Template checks parse with the same sandbox that renders (`shared.templates`), so what
passes here also compiles at send time.
"""

from __future__ import annotations

import re

from jinja2 import TemplateSyntaxError

from shared.addresses import email_error
from shared.contracts.flows import (
    AllOf,
    AnyOf,
    Condition,
    FlowDefinition,
    InternalAlertStep,
    SplitStep,
    Step,
)
from shared.domain.identity import email_identity
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


# --- the whole version ------------------------------------------------------------------


def flow_problems(flow: FlowDefinition) -> list[str]:
    """Every problem with `flow` (F1, A1, A7), each naming its step; empty when the
    version may be saved. Cycles and unreachable steps are looked for only once every
    step's own shape is right (a walk over unknown targets would say nothing useful)."""
    errors = _step_problems(flow)
    errors += alert_action_errors(flow)
    if flow.profile_filter is not None:
        errors += condition_errors(flow.profile_filter, "profile_filter")
    if flow.trigger.type == "metric" and flow.trigger.filter is not None:
        errors += condition_errors(flow.trigger.filter, "trigger filter")
    if errors:
        return errors
    return _cycles_and_unreachable(flow)


# --- the graph (F1) ---------------------------------------------------------------------


def successors(step: Step) -> list[str]:
    """The step ids a step can lead to (both branches of a split)."""
    if isinstance(step, SplitStep):
        return [s for s in (step.yes, step.no) if s]
    return [step.next] if step.next else []


def _step_problems(flow: FlowDefinition) -> list[str]:
    errors: list[str] = []
    seen: set[str] = set()
    for step in flow.steps:
        if step.id in seen:
            errors.append(f"step '{step.id}': duplicate step id")
        seen.add(step.id)
    for step in flow.steps:
        for target in successors(step):
            if target not in seen:
                errors.append(f"step '{step.id}': next step '{target}' does not exist")
            elif target == step.id:
                errors.append(f"step '{step.id}': leads to itself (a cycle)")
        if isinstance(step, SplitStep):
            if not step.yes and not step.no:
                errors.append(f"step '{step.id}': split needs a 'yes' or 'no' branch")
            errors += condition_errors(step.condition, f"step '{step.id}'")
    return errors


def _cycles_and_unreachable(flow: FlowDefinition) -> list[str]:
    """By an iterative depth-first search from the entry (the first step)."""
    by_id = {s.id: s for s in flow.steps}
    errors: list[str] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    first = flow.steps[0].id
    stack: list[tuple[str, list[str]]] = [(first, successors(by_id[first]))]
    state[first] = 1
    while stack:
        sid, pending = stack[-1]
        if not pending:
            state[sid] = 2
            stack.pop()
            continue
        target = pending.pop(0)
        if state.get(target) == 1:
            errors.append(f"step '{sid}': going to '{target}' makes a cycle")
        elif target not in state:
            state[target] = 1
            stack.append((target, successors(by_id[target])))
    for step in flow.steps:
        if step.id not in state:
            errors.append(f"step '{step.id}': no path from the first step reaches it")
    return errors


# --- conditions (F1) --------------------------------------------------------------------


def condition_errors(condition: Condition, where: str) -> list[str]:
    """Problems with a condition's shape that pydantic cannot see (F1)."""
    if isinstance(condition, AllOf | AnyOf):
        items = condition.all if isinstance(condition, AllOf) else condition.any
        return [e for c in items for e in condition_errors(c, where)]
    errors = []
    root, _, rest = condition.property.partition(".")
    parts = condition.property.split(".")
    if any(not part.strip() for part in parts) or (root in ("event", "person") and not rest):
        errors.append(f"{where}: property {condition.property!r} is not a property path")
    if condition.op != "exists" and condition.value is None:
        errors.append(f"{where}: '{condition.op}' on {condition.property!r} needs a value")
    if condition.op == "in" and not isinstance(condition.value, list):
        errors.append(f"{where}: 'in' needs a list value")
    if condition.op in ("lt", "lte", "gt", "gte") and not isinstance(
        condition.value, int | float | str
    ):
        errors.append(f"{where}: '{condition.op}' needs a number or string value")
    return errors


# --- internal alert actions (A1, A7) ----------------------------------------------------


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
    """(folded unique recipients in order, errors). I1: spellings of one address (case,
    NFC/NFD, punycode or Unicode domain) are one recipient, kept as first written."""
    errors = []
    seen: dict[str, str] = {}
    for raw in recipients:
        if problem := email_error(raw):
            errors.append(f"recipient {raw!r} is not a valid email address ({problem})")
            continue
        seen.setdefault(email_identity(raw) or fold(raw), fold(raw))
    return list(seen.values()), errors


def forbidden_tags(template: str) -> list[str]:
    """The forbidden tags used in `template`, each as "'name' (what it is)"."""
    found: dict[str, None] = {}
    for tag in _TAG.findall(template):
        inner = _STRING.sub("''", tag[2:-2].strip("-+ \t\r\n"))
        for ident in _ROOT_IDENT.findall(inner):
            if ident.lower() in FORBIDDEN_TAGS:
                found.setdefault(f"'{ident}' ({FORBIDDEN_TAGS[ident.lower()]})", None)
    return list(found)


def _template_errors(step: InternalAlertStep, field: str) -> list[str]:
    source = getattr(step, field)
    errors = []
    tags = forbidden_tags(source)
    for tag in tags:
        errors.append(f"step '{step.id}': tag {tag} is not allowed in an internal alert {field}")
    for tag in refused_tags(_PARSER, source):
        tags.append(tag)
        errors.append(
            f"step '{step.id}': '{tag}' is not allowed in an internal alert {field}"
            " (templates are self-contained and values are always escaped, A7)"
        )
    if not tags and (problem := syntax_error(source)):
        errors.append(f"step '{step.id}': the {field} template is not valid ({problem})")
    return errors


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
    errors += _template_errors(step, "subject")
    errors += _template_errors(step, "body")
    if email_error(step.from_email):
        errors.append(f"step '{step.id}': from_email {step.from_email!r} is not a valid address")
    if step.reply_to and email_error(step.reply_to):
        errors.append(f"step '{step.id}': reply_to {step.reply_to!r} is not a valid address")
    return errors


def alert_steps(flow: FlowDefinition) -> list[InternalAlertStep]:
    """The internal alert actions of `flow`, in step order."""
    return [s for s in flow.steps if isinstance(s, InternalAlertStep)]


def alert_action_errors(flow: FlowDefinition) -> list[str]:
    """A1/A7 problems of every alert action in `flow` (part of `flow_problems`)."""
    return [e for s in alert_steps(flow) for e in step_errors(s)]


def alert_recipients(recipients: list[str]) -> list[str]:
    """The recipients an alert request may go to: valid, folded, unique, at most five (a
    request from a version the services rejected cannot widen the list)."""
    folded, _ = normalise_recipients(recipients)
    return folded[:MAX_RECIPIENTS]
