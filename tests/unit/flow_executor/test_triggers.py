"""F2: which flows an event enters."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.flow_executor.domain.triggers import (
    list_flows,
    may_enter,
    merged_person,
    metric_flows,
)
from tests.unit.flow_executor.flows import alert, event, flow, list_change

NPS = flow([alert()])


def test_f2_metric_and_trigger_filter_decide_entry() -> None:
    assert metric_flows([NPS], event(score=3)) == [NPS]
    assert metric_flows([NPS], event(score=9)) == []
    other = NPS.model_copy(update={"trigger": NPS.trigger.model_copy(update={"metric": "X"})})
    assert metric_flows([other], event(score=3)) == []


def test_f2_historical_import_never_enters() -> None:
    assert metric_flows([NPS], event(score=3, historical=True)) == []
    listed = flow([alert()], trigger={"type": "list", "list_id": "vip"})
    assert list_flows([listed], list_change(historical_import=True)) == []


def test_f2_subscribed_to_list_enters_list_flows_of_that_list() -> None:
    listed = flow([alert()], trigger={"type": "list", "list_id": "vip"})
    assert list_flows([listed, NPS], list_change("vip")) == [listed]
    assert list_flows([listed], list_change("other")) == []
    assert list_flows([listed], list_change("vip", type_="Unsubscribed from List")) == []


def test_f3_profile_filter_is_checked_at_entry() -> None:
    gold = flow([alert()], profile_filter={"property": "tier", "op": "eq", "value": "gold"})
    assert metric_flows([gold], event(properties={"tier": "gold"})) == [gold]
    assert metric_flows([gold], event(properties={"tier": "silver"})) == []
    assert metric_flows([gold], event()) == []


def test_f3_entry_filter_sees_the_merged_profile_the_executor_keeps() -> None:
    gold = flow([alert()], profile_filter={"property": "tier", "op": "eq", "value": "gold"})
    ev = event()  # the event itself carries no tier
    known = {"id": ev.profile.id, "email": "a@example.test", "properties": {"tier": "gold"}}
    person = merged_person(known, ev.profile.model_dump(mode="json"))
    assert metric_flows([gold], ev) == []
    assert metric_flows([gold], ev, person) == [gold]
    assert person["email"] == "ada@example.com"  # the event's own fields win


METRICS = ("Left NPS Score", "Placed Order", "Viewed Page")


PATHS = ("score", "event.score", "person.vip", "person.first_name", "tier")


def _predicates() -> st.SearchStrategy[dict]:
    return st.builds(
        lambda path, op, value: {"property": path, "op": op, "value": value},
        st.sampled_from(PATHS),
        st.sampled_from(["eq", "ne", "lte", "gt", "exists", "in"]),
        st.one_of(st.integers(0, 10), st.sampled_from(["Ada", True, [1, 3, "Ada"]])),
    )


CONDITIONS = st.recursive(
    _predicates(),
    lambda inner: st.one_of(
        st.builds(lambda cs: {"all": cs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda cs: {"any": cs}, st.lists(inner, min_size=1, max_size=3)),
    ),
    max_leaves=5,
)

PEOPLE = st.fixed_dictionaries(
    {},
    optional={
        "first_name": st.sampled_from(["Ada", "Grace"]),
        "properties": st.dictionaries(
            st.sampled_from(["vip", "tier", "score"]),
            st.one_of(st.booleans(), st.integers(0, 10), st.sampled_from(["gold", "Ada"])),
            max_size=3,
        ),
    },
)


@settings(max_examples=300, deadline=None)
@given(
    triggers=st.lists(
        st.tuples(st.sampled_from(METRICS), st.one_of(st.none(), CONDITIONS)), max_size=3
    ),
    listed=st.booleans(),
    metric=st.sampled_from(METRICS),
    properties=st.dictionaries(
        st.sampled_from(["score", "tier", "vip"]),
        st.one_of(st.integers(0, 10), st.sampled_from(["gold", "Ada", True])),
        max_size=3,
    ),
    historical=st.booleans(),
    people=st.lists(PEOPLE, max_size=4),
)
def test_f2_an_event_may_enter_refuses_enters_nothing_whatever_the_profile(
    triggers, listed, metric, properties, historical, people
) -> None:
    """F2, F3: the executor reads the stored profile only for events `may_enter` lets
    through, and decides on the event alone where a trigger filter reads only the event.
    That is sound only if every event it refuses enters no flow, whatever the profile it
    would have been merged with (filters on the event, on the profile, on both)."""
    flows = [
        flow(
            [alert()],
            flow_id=f"f{i}",
            trigger={"type": "metric", "metric": m, **({"filter": c} if c else {})},
        )
        for i, (m, c) in enumerate(triggers)
    ]
    if listed:
        flows.append(flow([alert()], trigger={"type": "list", "list_id": "vip"}))
    e = event(historical=historical).model_copy(update={"metric": metric, "properties": properties})
    if not may_enter(flows, e):
        for person in [None, *people]:
            assert metric_flows(flows, e, person) == []
    else:
        assert any(f.trigger.type == "metric" and f.trigger.metric == metric for f in flows)


def test_f2_a_filter_on_the_event_alone_is_decided_without_the_profile() -> None:
    """An NPS score above the threshold enters nothing, so its profile is not read."""
    assert may_enter([NPS], event(score=3))
    assert not may_enter([NPS], event(score=9))
    on_person = flow(
        [alert()],
        trigger={
            "type": "metric",
            "metric": "Left NPS Score",
            "filter": {"property": "person.vip", "op": "eq", "value": True},
        },
    )
    assert may_enter([on_person], event(score=9))  # needs the stored profile to decide


@settings(max_examples=200, deadline=None)
@given(
    flow_metrics=st.lists(st.sampled_from(METRICS), max_size=3),
    listed=st.booleans(),
    metric=st.sampled_from(METRICS),
    score=st.integers(0, 10),
    historical=st.booleans(),
)
def test_f2_an_event_no_flow_listens_to_enters_nothing(
    flow_metrics, listed, metric, score, historical
) -> None:
    """F2, F3: the executor reads the stored profile only for events `may_enter` lets
    through; that is sound only if every other event enters no flow, whatever the
    profile it would have been merged with."""
    flows = [
        NPS.model_copy(update={"trigger": NPS.trigger.model_copy(update={"metric": m})})
        for m in flow_metrics
    ]
    if listed:
        flows.append(flow([alert()], trigger={"type": "list", "list_id": "vip"}))
    e = event(score=score, historical=historical).model_copy(update={"metric": metric})
    if not may_enter(flows, e):
        for person in (None, {"first_name": "Ada", "properties": {"vip": True}}):
            assert metric_flows(flows, e, person) == []
    else:
        assert any(f.trigger.type == "metric" and f.trigger.metric == metric for f in flows)
