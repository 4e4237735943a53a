"""F2, F3: the batch's entry index and compiled conditions (`triggers.EntryIndex`,
`conditions.compile_condition`) are held to the general path, `may_enter` and
`evaluate`, over wide filters (every operator, `all`/`any` nesting, `event.`,
`person.`, bare and dotted paths) and wide contexts (nested values, values of unlike
types, profiles whose custom properties are not a mapping, Unicode keys)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.flow_executor.domain.conditions import compile_condition, evaluate
from services.flow_executor.domain.triggers import EntryIndex, may_enter
from shared.contracts import FlowDefinition
from shared.contracts.flows import Condition
from tests.unit.flow_executor.flows import alert, event, flow

KEYS = ["score", "tier", "vip", "a", "Zoë", "Zoe\u0308", "ｔｉｅｒ", "a\u200bb", "properties", ""]
PATHS = st.one_of(
    st.sampled_from(KEYS[:-1]),
    st.builds(
        lambda root, parts: ".".join([root, *parts]),
        st.sampled_from(["event", "person", "other", ""]),
        st.lists(st.sampled_from(KEYS), min_size=1, max_size=3),
    ),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 10),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["gold", "Ada", "", "6", "Zoë"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)
    ),
    max_leaves=6,
)
PREDICATES = st.builds(
    lambda path, op, value: {"property": path, "op": op, "value": value},
    PATHS,
    st.sampled_from(["eq", "ne", "lt", "lte", "gt", "gte", "in", "exists"]),
    VALUES,
)
CONDITIONS = st.recursive(
    PREDICATES,
    lambda inner: st.one_of(
        st.builds(lambda cs: {"all": cs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda cs: {"any": cs}, st.lists(inner, min_size=1, max_size=3)),
    ),
    max_leaves=6,
)
PERSONS = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4),
    st.builds(
        lambda own, props: {**own, "properties": props},
        st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=3),
        st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=3) | st.sampled_from(["ab", []]),
    ),
)
CONTEXTS = st.fixed_dictionaries(
    {},
    optional={
        "event": st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4),
        "person": PERSONS,
    },
)


def _condition(raw: dict[str, Any]) -> Condition:
    trigger = {"type": "metric", "metric": "m", "filter": raw}
    return flow([alert()], trigger=trigger).trigger.filter  # type: ignore[union-attr,return-value]


def _same(condition: Condition, context: dict[str, Any], root: str) -> None:
    try:
        expected: Any = evaluate(condition, context, root)
    except Exception as exc:  # the general path's error is the compiled one's
        expected = type(exc)
    try:
        got: Any = compile_condition(condition, root)(context)
    except Exception as exc:
        got = type(exc)
    assert got == expected


@settings(max_examples=400, deadline=None)
@given(CONDITIONS, CONTEXTS, st.sampled_from(["event", "person"]))
def test_f2_f3_a_compiled_condition_is_evaluate(
    raw: dict[str, Any], context: dict[str, Any], root: str
) -> None:
    _same(_condition(raw), context, root)


METRICS = ["Left NPS Score", "Viewed Page", "Ｌｅｆｔ NPS Score", "Left NPS Score\u200b"]


@settings(max_examples=300, deadline=None)
@given(
    triggers=st.lists(
        st.tuples(
            st.sampled_from(["acme", "other"]),
            st.sampled_from(METRICS),
            st.one_of(st.none(), CONDITIONS),
        ),
        max_size=4,
    ),
    listed=st.booleans(),
    account=st.sampled_from(["acme", "other", "none"]),
    metric=st.sampled_from(METRICS),
    properties=st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4),
    historical=st.booleans(),
)
def test_f2_the_entry_index_is_may_enter(
    triggers: list[tuple[str, str, dict[str, Any] | None]],
    listed: bool,
    account: str,
    metric: str,
    properties: dict[str, Any],
    historical: bool,
) -> None:
    flows: dict[str, list[FlowDefinition]] = {}
    for i, (acct, m, c) in enumerate(triggers):
        trigger = {"type": "metric", "metric": m, **({"filter": c} if c else {})}
        flows.setdefault(acct, []).append(
            flow([alert()], account_id=acct, flow_id=f"f{i}", trigger=trigger)
        )
    if listed:
        flows.setdefault("acme", []).append(
            flow([alert()], flow_id="listed", trigger={"type": "list", "list_id": "vip"})
        )
    e = event(historical=historical).model_copy(
        update={"account_id": account, "metric": metric, "properties": properties}
    )
    general = account in flows and may_enter(flows[account], e)
    index = EntryIndex(flows)
    assert index.may_enter(account, metric, properties, historical) == general
