"""The producer quickstart: `examples/<topic>.json` is one valid payload per input topic,
valid by the published JSON Schema (what a producer checks against) and by the contract
model the consuming service parses it with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from shared.contracts import topics
from shared.contracts.flows import FlowDefinition
from shared.domain.flow_rules import flow_problems
from tools.contracts_gen import BY_TOPIC
from tools.publish import message_key

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SCHEMAS = ROOT / "deploy" / "contracts" / "schemas"


def test_there_is_one_example_per_input_topic_and_nothing_else() -> None:
    names = {p.stem for p in EXAMPLES.glob("*.json")}
    assert names == set(topics.INPUT_TOPICS)


@pytest.mark.parametrize("topic", topics.INPUT_TOPICS)
def test_each_example_is_valid_by_the_published_schema_and_the_model(topic: str) -> None:
    payload = json.loads((EXAMPLES / f"{topic}.json").read_text())
    model = BY_TOPIC[topic].model
    schema = json.loads((SCHEMAS / f"{model.__name__}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(payload)]
    assert errors == [], errors
    parsed = model.model_validate(payload)
    assert message_key(topic, parsed)


def test_the_example_flow_is_one_the_executor_saves() -> None:
    """F1, A1, A7: valid by the schema is not enough for a flow; the executor's own
    checks must accept it too, or it would be dead-lettered."""
    flow = FlowDefinition.model_validate_json((EXAMPLES / "flow-definitions.json").read_text())
    assert flow_problems(flow) == []
