"""C9: the bytes the consent service publishes on `consent-changes` are the
`ConsentChanged` messages the model would write: for any sequence of acts, each change
payload (`outputs.change_payload`) parses to the model `change_messages` validates from
the same document, and validates against the published JSON Schema."""

from __future__ import annotations

import json
from datetime import timedelta

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from services.consent.domain.model import Policy, ProfileConsent
from services.consent.domain.rules import decide
from services.consent.handlers import change_documents, change_messages
from services.consent.outputs import change_payload
from shared.contracts import ConsentChanged
from tests.unit.consent.test_consent_properties import ACTS, T0

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
