"""X3, C4–C11: the shortcut for the first act on an untouched profile (`rules._first_act`)
decides exactly what the general path (`rules.decide_in_order`) decides: the same
outcome (state, act log, events, history, confirmation, rejection) for every act, every
policy and every time of receipt, and the same outcomes for every act after it, in
every arrival order."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.consent.domain.model import Act, Policy, ProfileConsent
from services.consent.domain.rules import decide, decide_in_order
from tests.unit.consent.test_consent_properties import ACTS, T0

POLICIES = st.builds(Policy, st.booleans(), st.booleans(), st.booleans())
# Every spelling of a number (I1: E.164, blanks and dashes, 00 for +, full-width
# digits), one that is not a possible number, and blanks.
PHONES = st.sampled_from(
    (
        None,
        "",
        "+15555550100",
        "+1 555-555-0100",
        "0015555550100",
        "＋１５５５５５５０１００",
        "+4915112345678",
        "+1",
        "not a number",
    )
)
RECEIVED = st.sampled_from(
    (timedelta(0), timedelta(minutes=2), timedelta(hours=-1), timedelta(days=-500))
)
EXTRAS = st.fixed_dictionaries(
    {
        "phone_number": PHONES,
        "clicked": st.booleans(),
        "number_only": st.booleans(),
        "actor": st.sampled_from((None, "ops@acme")),
        "notice": st.sampled_from((None, "form-v7")),
        "evidence": st.sampled_from((None, "", " \u200b", "signed form #7")),
    }
)


@st.composite
def wide_acts(draw: st.DrawFn) -> Act:
    """`ACTS` with every phone spelling, link clicks, number acts and blank evidence."""
    act = draw(ACTS)
    return replace(act, **{k: v for k, v in draw(EXTRAS).items() if draw(st.booleans())})


@settings(max_examples=1500, deadline=None)
@given(act=wide_acts(), policy=POLICIES, received=RECEIVED)
def test_x3_the_first_act_on_an_untouched_profile_is_decided_as_the_general_path_does(
    act: Act, policy: Policy, received: timedelta
) -> None:
    now = T0 + received
    assert decide(ProfileConsent(), act, policy, now) == decide_in_order(
        ProfileConsent(), act, policy, now
    )


@settings(max_examples=300, deadline=None)
@given(
    acts=st.lists(wide_acts(), min_size=1, max_size=4, unique_by=lambda a: a.act_id),
    policy=POLICIES,
    received=RECEIVED,
)
def test_x3_every_arrival_order_gives_what_the_general_path_gives(
    acts: list[Act], policy: Policy, received: timedelta
) -> None:
    """Equal timestamps included (`ACTS` draws them from a few offsets)."""
    for order in itertools.permutations(acts):
        fast, general = ProfileConsent(), ProfileConsent()
        for n, act in enumerate(order):
            now = T0 + received + timedelta(seconds=n)
            got, want = decide(fast, act, policy, now), decide_in_order(general, act, policy, now)
            assert got == want
            fast, general = got.state, want.state
        assert fast.to_json() == general.to_json()
