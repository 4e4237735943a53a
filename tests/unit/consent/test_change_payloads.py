"""C9: the bytes the consent service publishes on `consent-changes` are the
`ConsentChanged` messages the model would write: for any sequence of acts, each change
payload of the general writing (`general_payloads.change_payload`) is the bytes of the
model `change_messages` reads back, and validates against the published JSON Schema;
the service's fast writing gives the same bytes."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from services.consent.domain.model import Event, Policy, ProfileConsent
from services.consent.domain.receipts import receipt_id
from services.consent.domain.rules import decide
from services.consent.handlers import change_messages, consent_state
from services.consent.outputs import change_id, change_payloads, short_digest, state_payload
from shared.contracts import ConsentChanged, ConsentState
from shared.domain.identity import derived_id
from tests.unit.consent.general_payloads import _state, change_documents, change_payload
from tests.unit.consent.test_consent_properties import ACTS, T0
from tests.unit.consent.test_first_act import POLICIES, wide_acts

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
WIDE_PROFILES = st.fixed_dictionaries(
    {"id": st.just("p-1")},
    optional={
        "email": st.sampled_from(("ada@example.com", "Zoë@bücher.example")),
        "phone_number": st.sampled_from(("+15550001", "+4915112345678")),
        "first_name": st.text(max_size=20) | st.none(),
        "last_name": st.text(max_size=20) | st.none(),
        # Floats of every kind (NaN and infinities too: a JSON input may carry them).
        "properties": st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=4),
    },
)
PROFILES = WIDE_PROFILES | st.sampled_from(
    (
        {"id": "p-1", "email": "ada@example.com"},
        {"id": "p-1", "email": "ada@bücher.example", "phone_number": "+15550001"},
        {"id": "p-1", "first_name": "Zoë", "properties": {"tier": "gold", "n": [1, 2.5]}},
        # A kept profile holds keys that are not part of `Profile` (P2's holds).
        {"id": "p-1", "erased_subjects": ["h1"], "last_name": None, "properties": {}},
    )
)
SCHEMA = ConsentChanged.model_json_schema(mode="serialization")


@settings(max_examples=300, deadline=None)
@given(acts=st.lists(ACTS, max_size=6, unique_by=lambda a: a.act_id), profile=PROFILES)
def test_c9_change_payloads_are_the_consent_changed_messages_byte_for_byte(acts, profile) -> None:
    state = ProfileConsent()
    for n, act in enumerate(acts):
        now = T0 + timedelta(minutes=n)
        outcome = decide(state, act, Policy(email_double_opt_in=False), now)
        state = outcome.state
        rid = f"r-{n}" if n % 2 else None
        docs = change_documents("acme", "p-1", profile, act, outcome, now, rid)
        models = change_messages("acme", "p-1", profile, act, outcome, now, rid)
        assert len(docs) == len(models) == len(outcome.events)
        for doc, model in zip(docs, models, strict=True):
            payload = change_payload(doc)
            # The model's own bytes, whatever the profile holds (a NaN or infinite
            # property is written as null, as the model writes it).
            assert payload == model.to_bytes()
            assert ConsentChanged.model_validate_json(payload).to_bytes() == payload
            assert payload == model.to_bytes()
            jsonschema.validate(json.loads(payload), SCHEMA)


IDS = st.sampled_from(("acme", "p-1", "a:b", "50%:x", "\x1f", "Zoë"))


@settings(max_examples=200, deadline=None)
@given(
    acts=st.lists(wide_acts(), min_size=1, max_size=4, unique_by=lambda a: a.act_id),
    profile=PROFILES,
    policy=POLICIES,
    account=IDS,
    profile_id=IDS,
)
def test_c9_x2_payloads_written_once_per_outcome_are_the_documents_payloads(
    acts, profile, policy, account, profile_id
) -> None:
    """`outputs.change_payloads` (profile and state written once per outcome, ids from
    one prefix) gives the bytes of `change_payload` of each document and of the model,
    for every arrival order, phone spelling, policy, equal timestamps and ids that need
    escaping."""
    for order in itertools.permutations(acts):
        state = ProfileConsent()
        for n, act in enumerate(order):
            now = T0 + timedelta(seconds=n // 2)  # two acts received at the same time
            outcome = decide(state, act, policy, now)
            state = outcome.state
            rid = f"r-{n}" if n % 2 else None
            prefix = derived_id(account, profile_id, act.act_id)
            fast = change_payloads(prefix, account, profile_id, profile, act, outcome, now, rid)
            docs = change_documents(account, profile_id, profile, act, outcome, now, rid)
            models = change_messages(account, profile_id, profile, act, outcome, now, rid)
            assert fast == [change_payload(d) for d in docs] == [m.to_bytes() for m in models]


@settings(max_examples=300, deadline=None)
@given(acts=st.lists(wide_acts(), max_size=6, unique_by=lambda a: a.act_id), policy=POLICIES)
def test_c9_the_state_payload_is_the_state_view_in_the_payload_shape(acts, policy) -> None:
    state = ProfileConsent()
    for n, act in enumerate(acts):
        state = decide(state, act, policy, T0 + timedelta(minutes=n)).state
        assert state_payload(state) == _state(state.view())
        assert ConsentState.model_validate(state_payload(state)) == consent_state(state)


@settings(max_examples=300, deadline=None)
@given(
    account=IDS | st.text(max_size=6),
    profile_id=IDS | st.text(max_size=6),
    act_id=IDS | st.text(max_size=6),
    event=st.builds(
        Event,
        st.sampled_from(("Subscribed to List", "Unsubscribed from Email Marketing")),
        st.sampled_from(("email", "sms", "push")),
        st.none() | st.text(max_size=6),
        st.none() | st.text(max_size=6),
    ),
)
def test_x2_ids_made_from_one_prefix_are_the_derived_ids(account, profile_id, act_id, event):
    """The change and receipt ids of an act, made from `derived_id(account, profile,
    act)` once, are the ids made part by part (ids of acts already handled stay)."""
    prefix = derived_id(account, profile_id, act_id)
    digest = short_digest(event.type, event.list_id or "", event.scope or "")
    assert change_id(prefix, event) == derived_id(account, profile_id, act_id, digest)
    assert f"{prefix}:receipt" == receipt_id(account, profile_id, act_id)
