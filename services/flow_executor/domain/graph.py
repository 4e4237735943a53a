"""Validating a flow definition as a graph (F1). Pure.

Errors name the step: unknown `next`/`yes`/`no` targets, duplicate ids, cycles (a flow
must end), steps nothing reaches, and bad conditions. The first step is the entry.
"""

from __future__ import annotations

from shared.contracts.flows import FlowDefinition, SplitStep
from services.flow_executor.domain.conditions import condition_errors


def successors(step: object) -> list[str]:
    if isinstance(step, SplitStep):
        return [s for s in (step.yes, step.no) if s]
    nxt = getattr(step, "next", None)
    return [nxt] if nxt else []


def validate(flow: FlowDefinition) -> list[str]:
    """Every problem with `flow`, each naming its step; empty when valid."""
    errors: list[str] = []
    ids = [s.id for s in flow.steps]
    seen: set[str] = set()
    for sid in ids:
        if sid in seen:
            errors.append(f"step '{sid}': duplicate step id")
        seen.add(sid)
    by_id = {s.id: s for s in flow.steps}
    for step in flow.steps:
        for target in successors(step):
            if target not in by_id:
                errors.append(f"step '{step.id}': next step '{target}' does not exist")
        if isinstance(step, SplitStep):
            if not step.yes and not step.no:
                errors.append(f"step '{step.id}': split needs a 'yes' or 'no' branch")
            errors += condition_errors(step.condition, f"step '{step.id}'")
    if flow.profile_filter is not None:
        errors += condition_errors(flow.profile_filter, "profile_filter")
    if flow.trigger.type == "metric" and flow.trigger.filter is not None:
        errors += condition_errors(flow.trigger.filter, "trigger filter")
    if errors:
        return errors
    # Cycles and unreachable steps, by depth-first search from the entry step.
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(sid: str) -> None:
        state[sid] = 1
        for target in successors(by_id[sid]):
            if state.get(target) == 1:
                errors.append(f"step '{sid}': going to '{target}' makes a cycle")
            elif target not in state:
                visit(target)
        state[sid] = 2

    visit(flow.steps[0].id)
    for sid in ids:
        if sid not in state:
            errors.append(f"step '{sid}': no path from the first step reaches it")
    return errors
