"""The published contracts: a JSON Schema per payload and an AsyncAPI 3 document per
service, both generated from the code.

**AsyncAPI.** Each service is built as it runs (`services.<name>.app.build`) on throwaway
secrets; nothing connects. FastStream's AsyncAPI Python API then describes what the
service declared on its broker (`shared.messaging.edge`): the topics it subscribes to
and publishes, with their payload models. Which service reads or writes which topic, in
which consumer group, comes from that code alone. What the code does not say of a topic
(what its key is, one line on what a record means) is beside the topic's name in
`shared.contracts.topics.ABOUT`. FastStream's document is then adjusted where it is not
what a Kafka client of ours needs; `for_kafka_clients` lists each step and its reason.

**JSON Schema.** One file per payload of those topics, plus the dead letter (X1) and the
consent receipt (C15, served over HTTP and in exports), in the payload's direction:
what we accept from producers (input topics) or what we emit to consumers.

The topics and payloads are the product's public interface, so the generated files are
committed (`deploy/contracts/`) and a test fails when they differ from what the code
generates. Regenerating refuses a breaking change (a field removed or retyped, a field
newly required from producers, a field no longer guaranteed to consumers) unless the
message's `schema_version` default was raised: producers and consumers outside the
project key their parsing on it.

    python -m tools.contracts_gen [OUT_DIR]      # default deploy/contracts
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
import secrets
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from faststream.specification import AsyncAPI
from pydantic import BaseModel, SecretStr

from shared.contracts import outputs, receipts, topics
from shared.health import Health
from shared.messaging.edge import KafkaEdge
from shared.runtime import Runtime
from shared.settings import Settings

Direction = Literal["input", "output"]

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = ROOT / "deploy" / "contracts"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# Every service is a package with a composition root `app.py` (SPEC "Architecture").
SERVICES: tuple[str, ...] = tuple(
    sorted(p.parent.name for p in (ROOT / "services").glob("*/app.py"))
)

SERVER = "kafka"
SERVER_HOST = "kafka:9092"
KAFKA_BINDING = "0.4.0"  # the Kafka binding version FastStream writes


@dataclass(frozen=True)
class TopicContract:
    """One topic as the code declares it: its payload model, and what `topics.ABOUT`
    adds (the record key, one line on what a record means)."""

    topic: str
    model: type[BaseModel]
    direction: Direction
    key: str
    description: str


# --- the services, built as they run ----------------------------------------------------


@functools.cache
def built(service: str, input_consumers: int | None = None) -> KafkaEdge:
    """The Kafka edge of `service` after its `build(rt)`: its FastStream broker with every
    subscriber and publisher declared. The settings are fixed here, not read from the
    environment, so that the documents do not depend on who generates them: no topic or
    group prefix, the compose stack's broker address, throwaway secrets (a service starts
    only with secrets of its own, X6), and `KAFKA_INPUT_CONSUMERS` as given (unset: the
    service's own choice)."""
    settings = Settings(
        link_secret=SecretStr(secrets.token_hex(32)),
        privacy_hash_secret=SecretStr(secrets.token_hex(32)),
        kafka_bootstrap_servers=SERVER_HOST,
        kafka_security_protocol="PLAINTEXT",
        kafka_topic_prefix="",
        kafka_group_prefix="",
        kafka_input_consumers=input_consumers,
    )
    rt = Runtime(service, settings, Health())
    importlib.import_module(f"services.{service}.app").build(rt)
    return rt.kafka


def consumed(service: str) -> dict[str, type[BaseModel]]:
    """Topic -> payload model of every topic `service` subscribes to, as it declared it
    (the type its FastStream handler takes a batch of)."""
    return {sub.topic: sub.payload for sub in built(service).subscriptions}


def produced(service: str) -> dict[str, type[BaseModel]]:
    """Topic -> payload model of every topic `service` declares a publisher for."""
    return {
        p.specification.config.topic: p.specification.config.schema_
        for p in built(service).broker.publishers
    }


@functools.cache
def topic_contracts() -> dict[str, TopicContract]:
    """Every topic a service reads or writes, with its payload. Refuses two services that
    disagree on a topic's payload: a topic carries one contract."""
    models: dict[str, type[BaseModel]] = {}
    for service in SERVICES:
        for topic, model in (consumed(service) | produced(service)).items():
            if models.setdefault(topic, model) is not model:
                raise TypeError(f"{topic}: {models[topic].__name__} and {model.__name__}")
    return {
        topic: TopicContract(
            topic,
            model,
            "input" if topic in topics.INPUT_TOPICS else "output",
            topics.about(topic).key,
            topics.about(topic).description,
        )
        for topic in topics.INPUT_TOPICS + topics.OUTPUT_TOPICS
        if (model := models.get(topic)) is not None
    }


def __getattr__(name: str) -> Any:
    # `BY_TOPIC` (topic -> TopicContract) is computed on first use: it builds the services.
    if name == "BY_TOPIC":
        return topic_contracts()
    raise AttributeError(name)


# --- JSON Schema per payload ------------------------------------------------------------


def _mode(direction: Direction) -> Literal["validation", "serialization"]:
    # Inputs: what we accept from producers. Outputs: what we emit to consumers.
    return "validation" if direction == "input" else "serialization"


def _payloads() -> list[tuple[type[BaseModel], Direction]]:
    seen: dict[type[BaseModel], Direction] = {}
    for t in topic_contracts().values():
        seen.setdefault(t.model, t.direction)
    seen[outputs.DeadLetter] = "output"
    seen[receipts.ConsentReceipt] = "output"  # C15: served over HTTP and in exports
    return list(seen.items())


def schema_version_of(schema: dict[str, Any]) -> int:
    """The `schema_version` a payload's schema declares (the field's default)."""
    return int(schema.get("properties", {}).get("schema_version", {}).get("default", 0))


def json_schema(model: type[BaseModel], direction: Direction) -> dict[str, Any]:
    """The JSON Schema (2020-12) of one payload, self-contained."""
    schema = model.model_json_schema(mode=_mode(direction))
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"{model.__name__}.schema.json",
        "x-direction": direction,
        **schema,
    }


def json_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema, for every payload on every topic and the dead letters."""
    return {
        f"schemas/{model.__name__}.schema.json": json_schema(model, direction)
        for model, direction in _payloads()
    }


# --- AsyncAPI per service ---------------------------------------------------------------


def faststream_document(service: str, version: str = "1") -> dict[str, Any]:
    """What FastStream's AsyncAPI Python API says of the service's broker, as is.

    FastStream keys a channel and its operation by the endpoint's title, and the edge
    titles a topic's subscriber and its publisher alike (the topic): for a topic a
    service both reads and writes (the consent service and `privacy-results`) the second
    would replace the first. On this throwaway broker each publisher is retitled
    `<topic>:send` first, and any "overwrite" FastStream still warns of is an error."""
    broker = built(service).broker
    for publisher in broker.publishers:
        config = publisher.specification.config
        config.title_ = f"{config.topic}:send"
    factory = AsyncAPI(
        broker,
        title=f"consentflow {service.replace('_', '-')}",
        version=version,
        description="Generated from the service's FastStream subscribers and publishers;"
        " the payloads are the pydantic models in shared/contracts, and every payload"
        " carries `schema_version`, raised on a breaking change.",
        schema_version="3.0.0",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        document: dict[str, Any] = factory.to_specification().to_jsonable()
    return document


def asyncapi(service: str, version: str = "1") -> dict[str, Any]:
    """The published AsyncAPI 3.0 document of one service."""
    return for_kafka_clients(faststream_document(service, version), built(service))


def _id(topic: str) -> str:
    # Channel and operation ids allow neither `.` nor `-` everywhere; these are the ids
    # the documents have always had, so generated clients keep their names.
    return topic.replace(".", "_").replace("-", "_")


def _at(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _message(name: str, schema: dict[str, Any], correlation: Any) -> dict[str, Any]:
    # What a code generator names the message by, and its model's first paragraph.
    summary = " ".join((schema.get("description") or name).split("\n\n")[0].split())
    return {
        "name": name,
        "title": name,
        "summary": summary,
        **({"correlationId": correlation} if correlation else {}),
        "payload": {"$ref": f"#/components/schemas/{name}"},
    }


def for_kafka_clients(fs: dict[str, Any], edge: KafkaEdge) -> dict[str, Any]:
    """FastStream's document of a service, adjusted where a Kafka client needs more or
    other than what it says (the topics, actions and payload schemas are FastStream's):

    1. **One record, one payload.** Our subscribers are batch subscribers: the handler
       takes `list[Payload]`, so FastStream describes the message as an array. A Kafka
       record carries one payload; the message refers to it, the array schema goes.
    2. **One channel per topic, messages named after their payload.** FastStream makes a
       channel per endpoint and names messages after endpoints (`<topic>:SubscribeMessage`);
       a topic the service reads and writes is one channel with two operations
       (`receive_<topic>`, `send_<topic>`), and its message is the payload's name.
    3. **The record key and the topic's description**, from `topics.ABOUT`: FastStream
       knows neither (a producer must key by the profile to keep a profile's records in
       order). What the code says of an endpoint stays, on its operation, as one line.
       Operations come in one order (reads, then writes, in `topics` order): FastStream
       keeps endpoints in weak sets, whose order changes from run to run.
    4. **The consumer group** of each subscription, as the Kafka operation binding
       `groupId`: FastStream writes no operation bindings, and an outside consumer must
       not join a service's group.
    5. **Dead-letter topics** (X1): each subscription publishes what it cannot accept to
       `<topic>.dlq` through the outbox, not through a declared publisher, so FastStream
       does not see them.
    6. **The server**: FastStream names its one server `development` and describes it
       with the broker's description; it is the service's cluster, set by the `KAFKA_*`
       settings, whose prefixes change every topic and group name.
    7. **Discriminators** in AsyncAPI's form (`asyncapi_schema`)."""
    groups = {s.topic: s.subscriber.group_id for s in edge.subscriptions if s.subscriber}
    schemas: dict[str, Any] = dict(fs["components"]["schemas"])
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    correlation: Any = None  # where FastStream says a record's correlation id is

    def channel(topic: str, name: str, action: str, extra: dict[str, Any]) -> None:
        cid = _id(topic)
        about = topics.about(topic)
        found = channels.setdefault(
            cid,
            {
                "address": topic,
                "description": about.description,
                "servers": [{"$ref": f"#/servers/{SERVER}"}],
                "messages": {},
                "bindings": {"kafka": {"topic": topic, "bindingVersion": KAFKA_BINDING}},
            },
        )
        found["messages"][name] = {"$ref": f"#/components/messages/{name}"}
        key = {
            "kafka": {
                "key": {"type": "string", "description": f"The {about.key}."},
                "bindingVersion": KAFKA_BINDING,
            }
        }
        if messages[name].setdefault("bindings", key) != key:
            raise ValueError(f"{name} is keyed differently on two topics")
        operations[f"{action}_{cid}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{cid}"},
            "messages": [{"$ref": f"#/channels/{cid}/messages/{name}"}],
            **extra,
        }

    def order(op: dict[str, Any]) -> tuple[bool, int]:
        # FastStream keeps endpoints in weak sets, so its order varies between runs.
        address = _at(fs, op["channel"]["$ref"])["address"]
        return op["action"] != "receive", topics.ALL_TOPICS.index(address)

    for op in sorted(fs["operations"].values(), key=order):
        endpoint = _at(fs, op["channel"]["$ref"])
        topic = endpoint["address"]
        (mref,) = op["messages"]
        message = copy.deepcopy(_at(fs, _at(fs, mref["$ref"])["$ref"]))
        name = message["payload"]["$ref"].rsplit("/", 1)[1]
        if op["action"] == "receive" and schemas[name].get("type") == "array":  # step 1
            name = schemas.pop(name)["items"]["$ref"].rsplit("/", 1)[1]
        correlation = message["correlationId"]
        messages.setdefault(name, _message(name, schemas[name], correlation))  # step 2
        text = " ".join(endpoint.get("description", "").split())
        described = {"description": text} if text else {}
        grouped: dict[str, Any] = {}
        if op["action"] == "receive":  # step 4
            grouped["bindings"] = {
                "kafka": {
                    "groupId": {
                        "type": "string",
                        "enum": [groups[topic]],
                        "description": "With KAFKA_GROUP_PREFIX before it, if set.",
                    },
                    "bindingVersion": KAFKA_BINDING,
                }
            }
        channel(topic, name, op["action"], described | grouped)

    dead = outputs.DeadLetter  # step 5
    body = dead.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(body.pop("$defs", {}))
    schemas[dead.__name__] = body
    # A dead letter carries the trace headers of the record it was made from.
    messages[dead.__name__] = _message(dead.__name__, body, correlation)
    for topic in sorted(groups, key=topics.ALL_TOPICS.index):
        channel(topics.dlq(topic), dead.__name__, "send", {})

    (server,) = fs["servers"].values()  # step 6
    server["description"] = (
        "The cluster named by KAFKA_BOOTSTRAP_SERVERS. KAFKA_TOPIC_PREFIX, if set, is put"
        " before every topic name, KAFKA_GROUP_PREFIX before every consumer group."
    )
    return {
        "asyncapi": fs["asyncapi"],
        "info": fs["info"],
        "defaultContentType": fs["defaultContentType"],
        "servers": {SERVER: server},
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": dict(sorted(messages.items())),
            "schemas": {
                name: asyncapi_schema(schema)  # step 7
                for name, schema in sorted(schemas.items())
            },
        },
    }


def asyncapi_schema(node: Any) -> Any:
    """A pydantic JSON Schema rewritten for AsyncAPI's Schema Object (X9): there,
    `discriminator` is the name of the property that tells the variants apart (a
    string), where pydantic writes OpenAPI's `{"propertyName": …, "mapping": …}`. The
    variants stay listed in `oneOf`, so nothing is lost."""
    if isinstance(node, list):
        return [asyncapi_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: asyncapi_schema(v) for k, v in node.items()}
    found = node.get("discriminator")
    if isinstance(found, dict) and "propertyName" in found:
        out["discriminator"] = found["propertyName"]
    return out


def asyncapi_path(service: str) -> str:
    """Where a service's document is published, under the contracts folder."""
    return f"asyncapi/{service.replace('_', '-')}.asyncapi.json"


def documents() -> dict[str, dict[str, Any]]:
    """Every generated file, relative path -> JSON document."""
    docs = json_schemas()
    for service in SERVICES:
        docs[asyncapi_path(service)] = asyncapi(service)
    return docs


def render(document: dict[str, Any]) -> str:
    """The committed text of a document: the models' field order, two-space indent."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# --- schema evolution ---------------------------------------------------------------

_NOT_SHAPE = {"description", "title", "default", "examples", "$id", "$schema", "x-direction"}


def _shape(node: Any) -> Any:
    """A schema node without what does not change the wire format."""
    if isinstance(node, dict):
        return {
            k: _shape(v)
            for k, v in node.items()
            if k not in _NOT_SHAPE and k not in ("properties", "required", "$defs")
        }
    if isinstance(node, list):
        return [_shape(v) for v in node]
    return node


def _compare(old: dict, new: dict, where: str, direction: Direction, out: list[str]) -> None:
    if _shape(old) != _shape(new):
        out.append(f"{where or 'message'}: type changed")
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    old_req, new_req = set(old.get("required", [])), set(new.get("required", []))
    for name, sub in old_props.items():
        path = f"{where}.{name}" if where else name
        if name not in new_props:
            out.append(f"{path}: removed")
            continue
        _compare(sub, new_props[name], path, direction, out)
    if direction == "input":
        for name in sorted(new_req - old_req):
            out.append(f"{where + '.' if where else ''}{name}: now required from producers")
    else:
        for name in sorted((old_req - new_req) & set(new_props)):
            out.append(f"{where + '.' if where else ''}{name}: no longer always present")


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What in `new` breaks a producer or consumer written against `old`.

    A new optional field is fine. Removing or retyping a field is breaking; so is a
    field newly required from producers (inputs) or no longer guaranteed to consumers
    (outputs). Nested models (`$defs`) are compared by name."""
    direction: Direction = old.get("x-direction", "input")
    out: list[str] = []
    _compare(old, new, "", direction, out)
    old_defs, new_defs = old.get("$defs", {}), new.get("$defs", {})
    for name, sub in old_defs.items():
        if name in new_defs:
            _compare(sub, new_defs[name], name, direction, out)
    return out


class BreakingChange(Exception):
    """A payload's schema broke compatibility without raising its `schema_version`."""


def unversioned_breaks(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Breaking changes from `old` to `new` that are not excused by a raised version."""
    if schema_version_of(new) > schema_version_of(old):
        return []
    return breaking_changes(old, new)


def write_contracts(
    out_dir: Path | str = DEFAULT_DIR, *, allow_breaking: bool = False
) -> list[str]:
    """Write every generated contract under `out_dir`; returns the files that changed.

    Refuses (BreakingChange) to overwrite a committed schema with a breaking change unless
    the message's `schema_version` was raised or `allow_breaking` is set."""
    out = Path(out_dir)
    docs = documents()
    if not allow_breaking:
        problems = []
        for rel, doc in docs.items():
            path = out / rel
            if rel.startswith("schemas/") and path.exists():
                old = json.loads(path.read_text())
                problems += [f"{rel}: {p}" for p in unversioned_breaks(old, doc)]
        if problems:
            raise BreakingChange(
                "raise schema_version for these payloads (or pass allow_breaking):\n  "
                + "\n  ".join(problems)
            )
    changed = []
    for rel, doc in docs.items():
        path = out / rel
        text = render(doc)
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(rel)
    generated = set(docs)
    owned = [*out.glob("schemas/*.json"), *out.glob("asyncapi/*.json")]
    for stale in sorted(owned):
        rel = stale.relative_to(out).as_posix()
        if rel not in generated:
            stale.unlink()
            changed.append(rel)
    return changed


def main(argv: list[str] | None = None) -> int:
    """CLI: regenerate the committed contracts."""
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else DEFAULT_DIR
    try:
        changed = write_contracts(target)
    except BreakingChange as exc:
        print(exc, file=sys.stderr)
        return 1
    for rel in changed:
        print(f"wrote {target / rel}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
