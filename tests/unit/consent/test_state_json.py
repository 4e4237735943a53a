"""X3, C2: the act log and the state are stored as they always were. `Act.to_json`
(field by field), `ProfileConsent.to_json` and the remembered `isoformat` of `iso` write
what writing every field generically writes, for every act and every state acts reach,
in every arrival order; and a stored state reads back as it was."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.consent.domain.model import (
    _ACT_DEFAULTS,
    Act,
    ProfileConsent,
    Slot,
    iso,
)
from services.consent.domain.rules import decide
from tests.unit.consent.test_consent_properties import T0
from tests.unit.consent.test_first_act import POLICIES, wide_acts


def _generic_act(act: Act) -> dict[str, Any]:
    """`Act.to_json` as it was written before: every field that differs from its
    default, in field order."""
    out: dict[str, Any] = {
        "act_id": act.act_id,
        "action": act.action,
        "channel": act.channel,
        "act_at": act.act_at.isoformat(),
    }
    for name, default in _ACT_DEFAULTS:
        value = getattr(act, name)
        if value != default:
            out[name] = value
    if act.claimed_at is not None:
        out["claimed_at"] = act.claimed_at.isoformat()
    return out


def _version(v: Any) -> Any:
    return [v[0].isoformat(), v[2], v[1]] if v else None


def _slot(s: Slot) -> dict[str, Any]:
    return {
        "status": s.status,
        "consented_at": s.consented_at.isoformat() if s.consented_at else None,
        "method": s.method,
        "phone_number": s.phone_number,
        "version": _version(s.version),
    }


def _generic_state(state: ProfileConsent) -> dict[str, Any]:
    return {
        "slots": {k: _slot(s) for k, s in sorted(state.slots.items())},
        "phone_number": state.phone_number,
        "phone_version": _version(state.phone_version),
        "log": [
            {
                "act": _generic_act(e.act),
                "received_at": e.received_at.isoformat(),
                "doi": e.policy.email_double_opt_in,
                "manual": e.policy.manually_suppressed,
                "spam": e.policy.spam_suppressed,
            }
            for e in state.log
        ],
        "opted_out_numbers": sorted(state.opted_out_numbers),
    }


EXTRA = st.fixed_dictionaries(
    {},
    optional={
        "clicked": st.booleans(),
        "number_only": st.booleans(),
        "confirmed": st.booleans(),
        "actor": st.none() | st.text(max_size=5),
        "notice": st.none() | st.text(max_size=5),
        "jurisdiction": st.none() | st.sampled_from(("EU", "US-CA")),
        "claimed_at": st.none() | st.just(T0 + timedelta(days=3)),
        "method": st.sampled_from(("api", "form", "link")),
        "purpose": st.sampled_from(("marketing", "transactional")),
    },
)


@settings(max_examples=500, deadline=None)
@given(act=wide_acts(), extra=EXTRA)
def test_x3_an_act_is_logged_as_every_field_off_its_default(act: Act, extra) -> None:
    act = replace(act, **extra)
    assert act.to_json() == _generic_act(act)
    assert list(act.to_json()) == list(_generic_act(act))
    assert Act.from_json(act.to_json()) == act


@settings(max_examples=150, deadline=None)
@given(
    acts=st.lists(wide_acts(), min_size=1, max_size=4, unique_by=lambda a: a.act_id),
    policy=POLICIES,
)
def test_x3_states_are_stored_as_written_field_by_field_in_every_arrival_order(
    acts: list[Act], policy
) -> None:
    """Equal timestamps included (two acts received at the same time)."""
    for order in itertools.permutations(acts):
        state = ProfileConsent()
        for n, act in enumerate(order):
            state = decide(state, act, policy, T0 + timedelta(seconds=n // 2)).state
            stored = state.to_json()
            assert stored == _generic_state(state)
            again = ProfileConsent.from_json(stored)
            assert again == state and again.to_json() == stored


ZONES = st.sampled_from((UTC, timezone(timedelta(hours=5, minutes=30)), None))


@settings(max_examples=300, deadline=None)
@given(
    moments=st.lists(
        st.tuples(st.datetimes(min_value=datetime(1990, 1, 1)), ZONES), min_size=1, max_size=80
    ),
    repeats=st.lists(st.integers(0, 79), max_size=40),
)
def test_x3_a_remembered_isoformat_is_the_datetimes_own(moments, repeats) -> None:
    """Whatever datetimes are written, in whatever order and however often (more than
    are remembered, equal values in other objects, objects freed and made again)."""
    made = [d.replace(tzinfo=z) for d, z in moments]
    for d in [*made, *(made[i % len(made)] for i in repeats)]:
        assert iso(d) == d.isoformat()
        fresh = d + timedelta(0)  # an equal value, another object
        assert iso(fresh) == fresh.isoformat()
    del made
    for d, z in reversed(moments):
        again = (d + timedelta(microseconds=1)).replace(tzinfo=z)
        assert iso(again) == again.isoformat()
