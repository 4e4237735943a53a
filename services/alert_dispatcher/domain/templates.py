"""Rendering alert subjects and bodies (A7): Jinja2 in a budgeted sandbox, with
`person.*` and, for metric flows, `event.*`. Missing values render as nothing rather
than failing, and values are HTML-escaped in the HTML part."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import TemplateError

from shared.contracts import AlertRequested
from shared.templates import BudgetSandbox, TemplateBudgetExceeded, render_capped

__all__ = ["TemplateBudgetExceeded", "render", "rendered"]

_html = BudgetSandbox(autoescape=True)
_text = BudgetSandbox(autoescape=False)


@lru_cache(maxsize=4096)
def _compile(env_name: str, source: str) -> Any:
    env = _html if env_name == "html" else _text
    return env.from_string(source)


def _person(profile: dict[str, Any]) -> dict[str, Any]:
    # Custom properties are reachable as person.<name> as well as person.properties.<name>.
    return {**profile.get("properties", {}), **{k: v for k, v in profile.items() if v is not None}}


def render(
    source: str,
    profile: dict[str, Any],
    event: dict[str, Any],
    *,
    html: bool,
    metric_flow: bool = True,
) -> str:
    """Render `source`; `event.*` is empty unless the flow is metric-triggered. A template
    that fails at render time yields the source unrendered: the alert still goes out and
    shows what was saved. One over its budget raises TemplateBudgetExceeded instead (the
    alert fails with that reason: mailing a bomb's source is no help to anyone)."""
    try:
        template = _compile("html" if html else "text", source)
        context = {"person": _person(profile), "event": event if metric_flow else {}}
        return render_capped(template, **context)
    except TemplateBudgetExceeded:
        raise
    except (TemplateError, ArithmeticError, TypeError, ValueError, LookupError):
        return source


def rendered(request: AlertRequested) -> tuple[str, str, str]:
    """(subject, text, html) of an alert: the same for every recipient, so rendered once.
    Raises TemplateBudgetExceeded for a template over its budget (A7)."""
    action = request.action
    profile = request.profile.model_dump()
    metric = request.trigger_type == "metric"
    return (
        render(action.subject, profile, request.event, html=False, metric_flow=metric),
        render(action.body, profile, request.event, html=False, metric_flow=metric),
        render(action.body, profile, request.event, html=True, metric_flow=metric),
    )
