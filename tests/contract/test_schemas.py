"""The published JSON Schemas and AsyncAPI documents match the code, and a payload's
schema only breaks compatibility together with a raised `schema_version`."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from pydantic import SecretStr, create_model

from shared.contracts import ConsentChanged, ConsentCommand, DeadLetter, topics
from shared.health import Health
from shared.messaging.batches import dead_letter
from shared.runtime import Runtime
from shared.settings import Settings
from tools import contracts_gen as contracts

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema comes with the dev extras")

COMMITTED = contracts.DEFAULT_DIR


def _committed(rel: str) -> dict[str, Any]:
    return json.loads((COMMITTED / rel).read_text())


def test_committed_contracts_match_the_code() -> None:
    """Fails when a model changed and `python -m tools.contracts_gen` was not run."""
    generated = contracts.documents()
    on_disk = {
        p.relative_to(COMMITTED).as_posix()
        for sub in ("schemas", "asyncapi")
        for p in (COMMITTED / sub).glob("*.json")
    }
    assert on_disk == set(generated), "run: python -m tools.contracts_gen"
    stale = [
        rel
        for rel, doc in generated.items()
        if (COMMITTED / rel).read_text() != contracts.render(doc)
    ]
    assert not stale, f"stale contracts {stale}; run: python -m tools.contracts_gen"


def test_committed_schemas_evolve_compatibly() -> None:
    """A removed or retyped field needs a raised schema_version (see the module docstring)."""
    problems = {
        rel: contracts.unversioned_breaks(_committed(rel), doc)
        for rel, doc in contracts.json_schemas().items()
        if (COMMITTED / rel).exists()
    }
    assert not {k: v for k, v in problems.items() if v}


def test_every_topic_payload_has_a_schema() -> None:
    names = {Path(rel).name for rel in contracts.json_schemas()}
    for topic in topics.INPUT_TOPICS + topics.OUTPUT_TOPICS:
        assert f"{contracts.BY_TOPIC[topic].model.__name__}.schema.json" in names
    assert "DeadLetter.schema.json" in names


@pytest.mark.parametrize("rel", sorted(contracts.json_schemas()))
def test_schemas_are_valid_json_schema(rel: str) -> None:
    jsonschema.Draft202012Validator.check_schema(_committed(rel))


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [
            r for v in node.values() for r in _refs(v)
        ]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(action, topic) -> operation of an AsyncAPI document."""
    found = {}
    for op in doc["operations"].values():
        channel = doc["channels"][op["channel"]["$ref"].rsplit("/", 1)[1]]
        found[(op["action"], channel["address"])] = op
    return found


def _published(service: str) -> dict[str, Any]:
    return _committed(contracts.asyncapi_path(service))


@pytest.mark.parametrize("service", contracts.SERVICES)
def test_asyncapi_documents_resolve_and_cover_the_service(service: str) -> None:
    """Every reference resolves, and the operations are exactly what the service's code
    declares: a receive per subscription, a send per publisher (a topic it both reads and
    writes keeps both) and a send to the dead-letter topic of each topic it reads (X1)."""
    doc = _published(service)
    assert doc["asyncapi"].startswith("3.")
    for ref in _refs(doc):
        node: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
    consumes, produces = contracts.consumed(service), contracts.produced(service)
    assert set(_operations(doc)) == (
        {("receive", t) for t in consumes}
        | {("send", t) for t in produces}
        | {("send", topics.dlq(t)) for t in consumes}
    )


@pytest.mark.parametrize("service", contracts.SERVICES)
def test_a_record_carries_one_payload_keyed_as_documented(service: str) -> None:
    """A batch subscriber's handler takes a list, but each record is one payload: the
    message of every operation is the topic's payload model (DeadLetter on `.dlq`), with
    the record key `topics.ABOUT` names."""
    doc = _published(service)
    code = contracts.consumed(service) | contracts.produced(service)
    for (_, topic), op in _operations(doc).items():
        (message_ref,) = op["messages"]
        channel = doc["channels"][op["channel"]["$ref"].rsplit("/", 1)[1]]
        name = message_ref["$ref"].rsplit("/", 1)[1]
        message = doc["components"]["messages"][name]
        model = code.get(topic, DeadLetter)
        assert channel["messages"][name]["$ref"] == f"#/components/messages/{model.__name__}"
        assert message["payload"] == {"$ref": f"#/components/schemas/{model.__name__}"}
        assert doc["components"]["schemas"][model.__name__].get("type") == "object"
        key = message["bindings"]["kafka"]["key"]["description"]
        assert key == f"The {topics.about(topic).key}."


@pytest.mark.parametrize("service", contracts.SERVICES)
def test_asyncapi_payloads_are_the_published_json_schemas(service: str) -> None:
    """FastStream's schema of a payload and the JSON Schema file say the same."""
    doc = _published(service)
    schemas = doc["components"]["schemas"]
    for rel, schema in contracts.json_schemas().items():
        name = schema["title"]
        if name not in schemas:
            continue
        text = json.dumps(schema).replace('"#/$defs/', '"#/components/schemas/')
        expected = contracts.asyncapi_schema(json.loads(text))
        defs = expected.pop("$defs", {})
        for key in ("$schema", "$id", "x-direction"):
            expected.pop(key)
        assert schemas[name] == expected, rel
        for nested, body in defs.items():
            assert schemas[nested] == body, f"{rel}: {nested}"


@pytest.mark.parametrize("service", contracts.SERVICES)
def test_services_subscribe_only_to_their_published_topics(service: str) -> None:
    """What `build(rt)` subscribes to is in the service's published AsyncAPI document, in
    the consumer group the document names, and every receive there is a subscription.
    Group names stay `consentflow.<service>.<topic>`: a renamed group would start over
    from the earliest retained offset."""
    import importlib

    # A service starts only with secrets of its own (X6); these are throwaway ones.
    keys = {k: SecretStr(secrets.token_hex(32)) for k in ("link_secret", "privacy_hash_secret")}
    rt = Runtime(service, Settings(**keys, kafka_group_prefix=""), Health())
    importlib.import_module(f"services.{service}.app").build(rt)
    receives = {
        topic: op["bindings"]["kafka"]["groupId"]["enum"]
        for (action, topic), op in _operations(_published(service)).items()
        if action == "receive"
    }
    assert rt.kafka.subscriptions
    assert {s.topic for s in rt.kafka.subscriptions} == set(receives)
    for sub in rt.kafka.subscriptions:
        assert sub.subscriber is not None
        assert receives[sub.topic] == [sub.subscriber.group_id]
        assert sub.subscriber.group_id == f"consentflow.{service}.{sub.topic}"


def test_x1_dead_letter_matches_its_published_schema() -> None:
    """X1: what the consumers publish to `<topic>.dlq` is what the schema promises."""
    published: list[Any] = []

    class _Uow:
        def publish(self, topic: str, key: str | None, message: Any) -> None:
            published.append((topic, key, message))

    record = ConsumerRecord(
        topic="consent-commands",
        partition=2,
        offset=41,
        timestamp=0,
        timestamp_type=0,
        key=b"p-1",
        value=b'{"not": "a command"}',
        checksum=None,
        serialized_key_size=3,
        serialized_value_size=20,
        headers=(),
    )
    dead_letter(_Uow(), "consent.consent-commands", record, "invalid message: command_id")  # type: ignore[arg-type]
    ((topic, key, letter),) = published
    assert (topic, key) == ("consent-commands.dlq", "p-1")
    body = json.loads(letter.to_bytes())
    jsonschema.validate(body, _committed("schemas/DeadLetter.schema.json"))
    assert base64.b64decode(body["original"]) == record.value
    assert (body["source_partition"], body["source_offset"]) == (2, 41)


def test_x1_schema_rejects_what_the_consumer_dead_letters() -> None:
    """A message missing a required field fails the published input schema too, so a
    producer can check before publishing what the consumer would dead-letter."""
    schema = _committed("schemas/ConsentCommand.schema.json")
    good = ConsentCommand.model_validate(
        {
            "command_id": "c-1",
            "account_id": "acme",
            "profile": {"id": "p-1"},
            "action": "subscribe",
            "channel": "email",
            "consented_at": "2026-01-01T00:00:00Z",
        }
    )
    jsonschema.validate(json.loads(good.to_bytes()), schema)
    bad = json.loads(good.to_bytes())
    del bad["command_id"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


# --- schema evolution ---------------------------------------------------------------


def _variant(**fields: Any) -> dict[str, Any]:
    model = create_model("ConsentChanged", __base__=ConsentChanged, **fields)
    return contracts.json_schema(model, "output")


def _drop(schema: dict[str, Any], name: str) -> dict[str, Any]:
    new = json.loads(json.dumps(schema))
    del new["properties"][name]
    new["required"] = [r for r in new.get("required", []) if r != name]
    return new


BASE = contracts.json_schema(ConsentChanged, "output")


def test_evolution_allows_a_new_optional_field() -> None:
    assert contracts.unversioned_breaks(BASE, _variant(region=(str | None, None))) == []


def test_evolution_rejects_a_removed_field() -> None:
    assert contracts.unversioned_breaks(BASE, _drop(BASE, "channel")) == ["channel: removed"]


def test_evolution_rejects_a_retyped_field() -> None:
    problems = contracts.unversioned_breaks(BASE, _variant(consented_at=(int, ...)))
    assert problems == ["consented_at: type changed"]


def test_evolution_rejects_a_retyped_nested_field() -> None:
    retyped = json.loads(json.dumps(BASE))
    retyped["$defs"]["ChannelState"]["properties"]["method"] = {"type": "integer"}
    assert contracts.unversioned_breaks(BASE, retyped) == ["ChannelState.method: type changed"]


def test_evolution_rejects_a_new_required_input_field() -> None:
    base = contracts.json_schema(ConsentCommand, "input")
    model = create_model("ConsentCommand", __base__=ConsentCommand, tenant=(str, ...))
    assert contracts.unversioned_breaks(base, contracts.json_schema(model, "input")) == [
        "tenant: now required from producers"
    ]


def test_evolution_accepts_a_break_with_a_raised_schema_version() -> None:
    raised = _drop(BASE, "channel")
    raised["properties"]["schema_version"]["default"] = contracts.schema_version_of(BASE) + 1
    assert contracts.breaking_changes(BASE, raised)
    assert contracts.unversioned_breaks(BASE, raised) == []


def test_regenerating_refuses_an_unversioned_break(tmp_path: Path) -> None:
    contracts.write_contracts(tmp_path)
    target = tmp_path / "schemas" / "ConsentChanged.schema.json"
    widened = json.loads(target.read_text())
    widened["properties"]["legacy_field"] = {"type": "string"}
    target.write_text(json.dumps(widened))
    with pytest.raises(contracts.BreakingChange, match="legacy_field: removed"):
        contracts.write_contracts(tmp_path)
    assert contracts.write_contracts(tmp_path, allow_breaking=True) == [
        "schemas/ConsentChanged.schema.json"
    ]
    assert contracts.write_contracts(tmp_path) == []


def test_committed_schema_examples_parse_with_the_models() -> None:
    """The schema and the model agree on a real output message."""
    change = ConsentChanged(
        type="Subscribed to Email Marketing",
        change_id="ch-1",
        account_id="acme",
        profile_id="p-1",
        profile={"id": "p-1", "email": "ada@example.com"},
        channel="email",
        consented_at=datetime(2026, 1, 1, tzinfo=UTC),
        state={"email": {"status": "subscribed"}},
    )
    jsonschema.validate(
        json.loads(change.to_bytes()), _committed("schemas/ConsentChanged.schema.json")
    )


def test_c15_receipts_match_their_published_schema() -> None:
    """C15: the receipt schema is valid 2020-12 JSON Schema, a real receipt validates
    against it, and one with a field of the wrong type does not."""
    from services.consent.domain.model import Act, HistoryEntry
    from services.consent.domain.receipts import Head, Personal, receipt

    schema = _committed("schemas/ConsentReceipt.schema.json")
    jsonschema.Draft202012Validator.check_schema(schema)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    act = Act("c-1", "subscribe", "sms", at, evidence="form 7", notice="form-v3", jurisdiction="EU")
    entry = HistoryEntry(
        "sms_marketing", "subscribe", "applied", "subscribed", at, at, "form", "c-1"
    )
    made = receipt(
        account_id="acme", account_name="Acme", profile_id="p-1", act=act, entries=[entry],
        personal=Personal("ada@example.com", "+15555550100", "form 7"), head=Head(),
        recorded_at=at, keyed=lambda kind, value: f"{kind}-hash",
    )  # fmt: skip
    document = json.loads(json.dumps(made.document()))
    jsonschema.validate(document, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**document, "sequence": "one"}, schema)
