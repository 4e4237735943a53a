"""Validating a flow definition as a graph (F1). Pure.

Errors name the step: unknown `next`/`yes`/`no` targets, duplicate ids, cycles (a flow
must end), steps nothing reaches, bad conditions, and internal alert actions the alert
dispatcher would refuse (A1, A7: the same shared checks, so such a version runs nowhere).
The first step is the entry.
"""

from __future__ import annotations

from services.flow_executor.domain.conditions import condition_errors
from shared.contracts.alert_actions import flow_errors as alert_action_errors
from shared.contracts.flows import FlowDefinition, SplitStep, Step


def successors(step: Step) -> list[str]:
    """The step ids a step can lead to (both branches of a split)."""
    if isinstance(step, SplitStep):
        return [s for s in (step.yes, step.no) if s]
    return [step.next] if step.next else []


def validate(flow: FlowDefinition) -> list[str]:
    """Every problem with `flow`, each naming its step; empty when valid."""
    errors: list[str] = []
    seen: set[str] = set()
    for step in flow.steps:
        if step.id in seen:
            errors.append(f"step '{step.id}': duplicate step id")
        seen.add(step.id)
    by_id = {s.id: s for s in flow.steps}
    for step in flow.steps:
        for target in successors(step):
            if target not in by_id:
                errors.append(f"step '{step.id}': next step '{target}' does not exist")
            elif target == step.id:
                errors.append(f"step '{step.id}': leads to itself (a cycle)")
        if isinstance(step, SplitStep):
            if not step.yes and not step.no:
                errors.append(f"step '{step.id}': split needs a 'yes' or 'no' branch")
            errors += condition_errors(step.condition, f"step '{step.id}'")
    errors += alert_action_errors(flow)
    if flow.profile_filter is not None:
        errors += condition_errors(flow.profile_filter, "profile_filter")
    if flow.trigger.type == "metric" and flow.trigger.filter is not None:
        errors += condition_errors(flow.trigger.filter, "trigger filter")
    if errors:
        return errors
    # Cycles and unreachable steps, by an iterative depth-first search from the entry.
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
