"""Evaluating trigger filters, splits and profile filters (F2, F3). Pure.

A property path is `event.<name>` or `person.<name>`; in a metric trigger's filter a bare
name means an event property. `person.<name>` looks at the profile's own fields first
(email, first_name, …) and then at its custom properties. A missing property makes every
comparison false except `ne` (true) and `exists` (false); comparing values of unlike types
is false rather than an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shared.contracts.flows import AllOf, AnyOf, Condition, Predicate

_MISSING = object()


def lookup(path: str, context: Mapping[str, Any], default_root: str = "event") -> Any:
    """The value at `path` in `context`, or a marker for a missing one."""
    return _resolve(*_path(path, default_root), context)


def _path(path: str, default_root: str) -> tuple[str, list[str]]:
    """(root, parts) of a property path, as `lookup` reads it: `event.a.b` ->
    ("event", ["a", "b"]) (`compile_condition`: split once, not per context)."""
    root, _, rest = path.partition(".")
    if root not in ("event", "person") or not rest:
        root, rest = default_root, path
    return root, rest.split(".")


def _resolve(root: str, parts: list[str], context: Mapping[str, Any]) -> Any:
    """`lookup` of a path already split by `_path`."""
    value: Any = context.get(root, {})
    for part in parts:
        if (type(value) is dict or isinstance(value, Mapping)) and part in value:
            value = value[part]
        elif (
            root == "person" and isinstance(value, Mapping) and part in value.get("properties", {})
        ):
            value = value["properties"][part]
        else:
            return _MISSING
    return value


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op == "exists":
        return actual is not _MISSING and actual is not None
    if actual is _MISSING:
        return op == "ne"
    try:
        match op:
            case "eq":
                return bool(actual == expected)
            case "ne":
                return bool(actual != expected)
            case "lt":
                return bool(actual < expected)
            case "lte":
                return bool(actual <= expected)
            case "gt":
                return bool(actual > expected)
            case "gte":
                return bool(actual >= expected)
            case "in":
                return isinstance(expected, list | tuple) and actual in expected
    except TypeError:
        return False
    return False


def evaluate(condition: Condition, context: Mapping[str, Any], default_root: str = "event") -> bool:
    """Whether `condition` holds for `context` (`{"event": {...}, "person": {...}}`)."""
    if isinstance(condition, AllOf):
        return all(evaluate(c, context, default_root) for c in condition.all)
    if isinstance(condition, AnyOf):
        return any(evaluate(c, context, default_root) for c in condition.any)
    assert isinstance(condition, Predicate)
    return _compare(
        condition.op, lookup(condition.property, context, default_root), condition.value
    )


def reads_person(condition: Condition, default_root: str = "event") -> bool:
    """Whether `condition` looks at the profile (a `person.` path, or a bare name where
    bare names mean the profile): if not, it can be decided on the event alone."""
    if isinstance(condition, AllOf):
        return any(reads_person(c, default_root) for c in condition.all)
    if isinstance(condition, AnyOf):
        return any(reads_person(c, default_root) for c in condition.any)
    root, _, rest = condition.property.partition(".")
    if root not in ("event", "person") or not rest:
        root = default_root
    return root == "person"


Compiled = Callable[[Mapping[str, Any]], bool]


def compile_condition(condition: Condition, default_root: str = "event") -> Compiled:
    """`evaluate` with `condition` worked out once: its paths split, its combinators
    resolved. For a condition tried against many contexts (a trigger filter against
    every event of a batch); `compiled(context) == evaluate(condition, context)`."""
    if isinstance(condition, AllOf):
        every = [compile_condition(c, default_root) for c in condition.all]
        return lambda context: all(c(context) for c in every)
    if isinstance(condition, AnyOf):
        some = [compile_condition(c, default_root) for c in condition.any]
        return lambda context: any(c(context) for c in some)
    assert isinstance(condition, Predicate)
    resolve = _resolver(*_path(condition.property, default_root))
    op, expected = condition.op, condition.value
    return lambda context: _compare(op, resolve(context), expected)


def _resolver(root: str, parts: list[str]) -> Callable[[Mapping[str, Any]], Any]:
    """`_resolve` bound to one path; an event property's own name (`score`, the usual
    trigger filter) is read without the loop."""
    if root != "event" or len(parts) != 1:
        return lambda context: _resolve(root, parts, context)
    part = parts[0]

    def event_property(context: Mapping[str, Any]) -> Any:
        value = context.get("event", {})
        if (type(value) is dict or isinstance(value, Mapping)) and part in value:
            return value[part]
        return _MISSING

    return event_property
