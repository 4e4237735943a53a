"""I1, C6: what a batch's locks and ledger reads are about is worked out once per request
(`handlers._carried`): the identities an act names by itself stand for those of its
stored profile whenever that profile adds nothing, and are what `_identities` gives with
the stored row for every request, row, spelling and number."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from services.consent.domain.model import ProfileConsent, normalize_phone
from services.consent.handlers import Request, _carried, _identities
from services.consent.ports import Key, Stored
from tests.unit.consent.test_first_act import PHONES, wide_acts

EMAILS = st.sampled_from(
    (None, "", " ", "ada@example.com", "Ada@Bücher.DE", " ada@xn--bcher-kva.de ", "not an address")
)
PROFILES = st.none() | st.fixed_dictionaries(
    {}, optional={"email": EMAILS, "phone_number": PHONES, "first_name": st.just("Ada")}
)


@st.composite
def rows(draw: st.DrawFn) -> Stored | None:
    if draw(st.booleans()):
        return None
    number = normalize_phone(draw(PHONES))
    profile = draw(st.fixed_dictionaries({}, optional={"email": EMAILS, "phone_number": PHONES}))
    return Stored(ProfileConsent(phone_number=number), profile)


@settings(max_examples=1000, deadline=None)
@given(
    act=wide_acts(),
    phone=PHONES,
    profile=PROFILES,
    profile_id=st.sampled_from(("p-1", "p-2")),
    row=rows(),
)
def test_i1_c6_identities_named_once_are_those_of_the_stored_profile(
    act, phone, profile, profile_id, row
) -> None:
    req = Request("acme", profile_id, replace(act, phone_number=phone), profile)
    stored = {} if row is None else {Key("acme", "p-1"): row}  # another profile's row too
    named = {id(req): _identities(req, {})}
    assert _carried(req, stored, named) == _identities(req, stored)
