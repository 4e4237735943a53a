"""X2: every id the executor derives from free-text parts is unique by construction:
no two different inputs give the same id, and the same inputs always give the same one."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from services.flow_executor import handlers
from services.flow_executor.domain import messages as mapping
from services.flow_executor.domain.messages import DefinitionRecord
from services.flow_executor.domain.planning import Activity
from services.flow_executor.domain.runs import action_id, run_id_for
from shared.contracts import topics
from shared.received import Received, Trace
from tests.unit.flow_executor.fakes import FakeWork
from tests.unit.flow_executor.flows import alert, event, flow

RUN = uuid.UUID("00000000-0000-4000-8000-000000000001")
TEXT = st.text(alphabet=st.sampled_from("a:%3A-"), min_size=1, max_size=6)


def received(message: Any) -> Received[Any]:
    return Received(message, None, Trace("test"))  # type: ignore[arg-type]


def _id(a: Activity) -> str:
    return mapping.activity_message(a).activity_id


def test_x2_a_colon_in_a_flow_or_event_id_does_not_make_two_runs_one() -> None:
    assert run_id_for("acme", "fx", "q:1E") != run_id_for("acme", "fx:q", "1E")
    assert run_id_for("ac:me", "fx", "1E") != run_id_for("ac", "me:fx", "1E")


async def test_x2_both_runs_start_when_their_old_ids_were_the_same() -> None:
    work = FakeWork()
    for flow_id in ("fx", "fx:q"):
        definition = flow([alert()], flow_id=flow_id)
        await handlers.save_definitions([received(DefinitionRecord(definition, "0:0:x"))], work)
    events = [event().model_copy(update={"event_id": e}) for e in ("q:1E", "1E")]
    await handlers.enter_from_events([received(e) for e in events], work)
    entered = {(a.flow_id, a.run_id) for a in work.on(topics.FLOW_ACTIVITY) if a.type == "entered"}
    assert len(entered) == 4
    assert len({run for _, run in entered}) == 4
    assert len(work.on(topics.ALERT_REQUESTS)) == 4


def test_x2_an_activity_without_a_step_never_shares_the_id_of_a_step_named_dash() -> None:
    no_step = Activity("exited", "acme", "nps", RUN, "p-1", None, "completed")
    dash = Activity("exited", "acme", "nps", RUN, "p-1", "-", "completed")
    assert _id(no_step) != _id(dash)


@given(TEXT, TEXT, TEXT)
def test_x2_moving_a_separator_between_flow_and_event_id_gives_another_run(
    a: str, b: str, c: str
) -> None:
    assert run_id_for("acme", f"{a}:{b}", c) != run_id_for("acme", a, f"{b}:{c}")
    assert run_id_for("acme", a, c) == run_id_for("acme", a, c)


@given(TEXT, TEXT, TEXT, TEXT)
def test_x2_action_ids_differ_whenever_their_step_ids_differ(
    f1: str, e1: str, f2: str, e2: str
) -> None:
    assert (action_id(RUN, f1 + e1) == action_id(RUN, f2 + e2)) == (f1 + e1 == f2 + e2)


@given(TEXT, TEXT, st.sampled_from(["executed", "skipped", "scheduled"]))
def test_x2_activity_ids_differ_whenever_step_or_kind_differ(s1: str, s2: str, kind: str) -> None:
    a = Activity(kind, "acme", "nps", RUN, "p-1", s1)
    b = Activity("exited" if s1 == s2 else kind, "acme", "nps", RUN, "p-1", s2)
    assert _id(a) != _id(b)


def test_x2_ids_of_parts_without_separators_stay_as_they_were() -> None:
    old = uuid.uuid5(uuid.UUID("6f1c2b1e-7d1a-4c47-9f0e-0c7f3b1f5a10"), "acme:nps:e-1")
    assert run_id_for("acme", "nps", "e-1") == old
    assert action_id(RUN, "alert") == f"{RUN}:alert"
    assert run_id_for("acme", "nps", "e-1") == run_id_for("acme", "nps", "e-1")
