"""The published contracts: a JSON Schema per payload and an AsyncAPI 3 document per
service, generated from the pydantic models in `shared.contracts`.

The topics and payloads are the product's public interface, so the generated files are
committed (`deploy/contracts/`) and a test fails when they differ from what the code
generates. Regenerating refuses a breaking change (a field removed or retyped, a field
newly required from producers, a field no longer guaranteed to consumers) unless the
message's `schema_version` default was raised: producers and consumers outside the
project key their parsing on it.

    python -m tools.contracts_gen [OUT_DIR]      # default deploy/contracts
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.contracts import inputs, outputs, privacy, receipts, topics
from shared.contracts.flows import FlowDefinition

Direction = Literal["input", "output"]

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "deploy" / "contracts"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True)
class TopicContract:
    """One topic: its payload, who writes it, and what its key is."""

    topic: str
    model: type[BaseModel]
    direction: Direction
    key: str
    description: str


TOPICS: tuple[TopicContract, ...] = (
    TopicContract(
        topics.PROFILE_EVENTS,
        inputs.ProfileEvent,
        "input",
        "profile_id",
        "Something a profile did; may enter the profile into metric flows.",
    ),
    TopicContract(
        topics.CONSENT_COMMANDS,
        inputs.ConsentCommand,
        "input",
        "profile_id",
        "A request to subscribe, unsubscribe or re-subscribe a profile.",
    ),
    TopicContract(
        topics.SUPPRESSION_COMMANDS,
        inputs.SuppressionCommand,
        "input",
        "profile_id",
        "A request to suppress or unsuppress a profile, or a bounce/delivery report.",
    ),
    TopicContract(
        topics.SMS_INBOUND,
        inputs.SmsInbound,
        "input",
        "phone number",
        "A text message a profile sent; keywords change SMS consent.",
    ),
    TopicContract(
        topics.FLOW_DEFINITIONS,
        FlowDefinition,
        "input",
        "account_id:flow_id",
        "A saved flow (compacted topic). A null value under the key deletes the flow;"
        " a higher version replaces a lower one.",
    ),
    TopicContract(
        topics.REVIEW_DECISIONS,
        inputs.ReviewDecision,
        "input",
        "alert_id",
        "An operator's decision on an alert held in manual review.",
    ),
    TopicContract(
        topics.CONSENT_CHANGES,
        outputs.ConsentChanged,
        "output",
        "profile_id",
        "A subscription event with the profile's full consent state after it.",
    ),
    TopicContract(
        topics.SUPPRESSION_CHANGES,
        outputs.SuppressionChanged,
        "output",
        "profile_id",
        "A change of a profile's suppressions, with every suppression in force.",
    ),
    TopicContract(
        topics.SMS_OUTBOUND,
        outputs.SmsOutbound,
        "output",
        "phone number",
        "A reply to an inbound SMS keyword, for the SMS gateway to send.",
    ),
    TopicContract(
        topics.ALERT_REQUESTS,
        outputs.AlertRequested,
        "output",
        "profile_id",
        "An internal alert to send, with the alert action as the flow version saved it.",
    ),
    TopicContract(
        topics.MESSAGE_REQUESTS,
        outputs.MessageRequested,
        "output",
        "profile_id",
        "A consent-checked email or SMS to the profile itself.",
    ),
    TopicContract(
        topics.FLOW_ACTIVITY,
        outputs.FlowActivity,
        "output",
        "profile_id",
        "What happened to a profile at a flow step.",
    ),
    TopicContract(
        topics.ALERT_OUTCOMES,
        outputs.AlertOutcome,
        "output",
        "profile_id",
        "The result of one internal alert: sent, skipped (with reason) or failed.",
    ),
    TopicContract(
        topics.PRIVACY_REQUESTS,
        privacy.PrivacyRequest,
        "input",
        "profile_id (or the email or phone number named)",
        "A data-subject request: export or erase what is held about a person (P1).",
    ),
    TopicContract(
        topics.PRIVACY_RESULTS,
        privacy.PrivacyResult,
        "output",
        "request_id",
        "One service's part of a data-subject request: the export, or what was erased.",
    ),
)
BY_TOPIC = {t.topic: t for t in TOPICS}

# SPEC "Architecture": what each service consumes and produces (besides SMTP mail).
SERVICES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "consent": (
        (
            topics.CONSENT_COMMANDS,
            topics.SMS_INBOUND,
            topics.SUPPRESSION_CHANGES,
            topics.PRIVACY_REQUESTS,
            topics.PRIVACY_RESULTS,
        ),
        (topics.CONSENT_CHANGES, topics.SMS_OUTBOUND, topics.PRIVACY_RESULTS),
    ),
    "suppression": (
        (topics.SUPPRESSION_COMMANDS, topics.CONSENT_CHANGES, topics.PRIVACY_REQUESTS),
        (topics.SUPPRESSION_CHANGES, topics.PRIVACY_RESULTS),
    ),
    "flow_executor": (
        (
            topics.FLOW_DEFINITIONS,
            topics.PROFILE_EVENTS,
            topics.CONSENT_CHANGES,
            topics.SUPPRESSION_CHANGES,
            topics.REVIEW_DECISIONS,
            topics.PRIVACY_REQUESTS,
        ),
        (
            topics.ALERT_REQUESTS,
            topics.MESSAGE_REQUESTS,
            topics.FLOW_ACTIVITY,
            topics.PRIVACY_RESULTS,
        ),
    ),
    "alert_dispatcher": (
        (topics.FLOW_DEFINITIONS, topics.ALERT_REQUESTS, topics.PRIVACY_REQUESTS),
        (topics.ALERT_OUTCOMES, topics.PRIVACY_RESULTS),
    ),
}


def group_id(service: str, topic: str) -> str:
    """The consumer group a service reads `topic` in: its replicas share the partitions."""
    return f"consentflow.{service}.{topic}"


def _mode(direction: Direction) -> Literal["validation", "serialization"]:
    # Inputs: what we accept from producers. Outputs: what we emit to consumers.
    return "validation" if direction == "input" else "serialization"


def _payloads() -> list[tuple[type[BaseModel], Direction]]:
    seen: dict[type[BaseModel], Direction] = {}
    for t in TOPICS:
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


def _message(contract: TopicContract, model: type[BaseModel]) -> dict[str, Any]:
    name = model.__name__
    return {
        "name": name,
        "title": name,
        "summary": (model.__doc__ or "").strip().splitlines()[0],
        "contentType": "application/json",
        "payload": {"$ref": f"#/components/schemas/{name}"},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": f"The {contract.key}."},
                "bindingVersion": "0.5.0",
            }
        },
    }


def asyncapi(service: str, version: str = "1") -> dict[str, Any]:
    """The AsyncAPI 3.0 document of one service: the topics it reads (in its consumer
    groups), the topics it writes, and the dead-letter topics of what it reads (X1)."""
    consumes, produces = SERVICES[service]
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    wanted: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = []

    def channel(topic: str, model: type[BaseModel], contract: TopicContract, text: str) -> str:
        cid = topic.replace(".", "_").replace("-", "_")
        messages[model.__name__] = _message(contract, model)
        mode = _mode(contract.direction if model is contract.model else "output")
        if (model, mode) not in wanted:
            wanted.append((model, mode))
        channels[cid] = {
            "address": topic,
            "description": text,
            "messages": {model.__name__: {"$ref": f"#/components/messages/{model.__name__}"}},
            "bindings": {"kafka": {"topic": topic, "bindingVersion": "0.5.0"}},
        }
        return cid

    for topic in consumes:
        c = BY_TOPIC[topic]
        cid = channel(topic, c.model, c, c.description)
        operations[f"receive_{cid}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{cid}"},
            "messages": [{"$ref": f"#/channels/{cid}/messages/{c.model.__name__}"}],
            "bindings": {
                "kafka": {
                    "groupId": {"type": "string", "enum": [group_id(service, topic)]},
                    "bindingVersion": "0.5.0",
                }
            },
        }
    for topic in produces:
        c = BY_TOPIC[topic]
        cid = channel(topic, c.model, c, c.description)
        operations[f"send_{cid}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{cid}"},
            "messages": [{"$ref": f"#/channels/{cid}/messages/{c.model.__name__}"}],
        }
    for topic in consumes:
        c = BY_TOPIC[topic]
        dead = topics.dlq(topic)
        cid = channel(
            dead,
            outputs.DeadLetter,
            c,
            f"Messages from {topic} that could not be accepted, with the original"
            " bytes (base64), the error and the source offset (X1).",
        )
        operations[f"send_{cid}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{cid}"},
            "messages": [{"$ref": f"#/channels/{cid}/messages/DeadLetter"}],
        }

    _, defs = models_json_schema(wanted, ref_template="#/components/schemas/{model}")
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": f"consentflow {service.replace('_', '-')}",
            "version": version,
            "description": "Generated from the pydantic models in shared/contracts; every"
            " payload carries `schema_version`, raised on a breaking change.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "kafka:9092",
                "protocol": "kafka",
                "description": "Set by KAFKA_BOOTSTRAP_SERVERS.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": dict(sorted(messages.items())),
            "schemas": {
                name: asyncapi_schema(schema)
                for name, schema in sorted(defs.get("$defs", {}).items())
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


def documents() -> dict[str, dict[str, Any]]:
    """Every generated file, relative path -> JSON document."""
    docs = json_schemas()
    for service in SERVICES:
        docs[f"asyncapi/{service.replace('_', '-')}.asyncapi.json"] = asyncapi(service)
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
