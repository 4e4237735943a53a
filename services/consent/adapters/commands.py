"""`consent-commands` records validated into slim command records: plain dicts of the
fields of `ConsentCommand`, without the model objects.

Decoding a command into a `ConsentCommand` built three frozen models (the command, its
profile, its scope), each with its field set, and the use case then dumped the profile
back into a dict: about a third of a command's decoding, and six more objects per
command held for the whole batch (which the garbage collector walks while the batch is
decided). A record is validated in full, exactly as the model validates (X1): its type
is derived from the model field by field (annotation, constraints, validators, defaults
and the model's validation settings), so it holds what the model would,
`record == ConsentCommand.model_validate_json(raw).model_dump()`, for every input the
model accepts, and a field added to the contract is in the record too. A record the slim
validation refuses is validated again by the model, so its dead letter carries exactly
the error the model gives (and should the two ever disagree, the model's answer is
used: its `ConsentCommand` goes on, and the use case takes both forms).

`tests/unit/consent/test_command_records.py` holds records equal to the model's dump and
the use case's output (payload bytes, history, receipts, dead letters) equal for records
and models.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from aiokafka import ConsumerRecord
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from typing_extensions import TypedDict

from services.consent.ports import CommandRecord
from shared.contracts import ConsentCommand
from shared.contracts.base import Profile
from shared.contracts.inputs import Scope

# What a model may declare as methods: none of it is a field a record type would keep.
_METHOD_KINDS = (
    "validators",
    "field_validators",
    "root_validators",
    "model_validators",
    "field_serializers",
    "model_serializers",
    "computed_fields",
)
# Settings of a model that are about the Python object, not about what is valid.
_OBJECT_ONLY = {"frozen", "title"}


def _dumped_factory(model: type[BaseModel]) -> Any:
    """A default factory giving what `model().model_dump()` gives, a new dict each time:
    copied from one dump when its values are plain (most commands leave their scope out,
    and building a model to dump it cost as much as validating the rest of the command)."""
    dumped = model().model_dump()
    if all(v is None or isinstance(v, (str, int, float, bool)) for v in dumped.values()):
        return dumped.copy
    return lambda: model().model_dump()


def record_type(model: type[BaseModel], name: str, nested: Mapping[str, Any] | None = None) -> Any:
    """A TypedDict that validates as `model` does, field for field: each field keeps its
    annotation and its `FieldInfo` (constraints, validators, default), and the type keeps
    the model's validation settings. `nested` maps a field to the record type of its
    model; a default made by that model (`default_factory=Scope`) makes its dump.

    Validators and serialisers declared on the model as methods (and `model_post_init`)
    are not fields and would be left out, so a model with any is refused here, when the
    service starts, rather than validated by halves."""
    decorators = model.__pydantic_decorators__
    methods = [kind for kind in _METHOD_KINDS if getattr(decorators, kind)]
    if methods or model.model_post_init is not BaseModel.model_post_init:
        raise TypeError(f"{model.__name__} has {methods or 'model_post_init'}: no record type")
    nested = nested or {}
    fields: dict[str, Any] = {}
    for field, info in model.model_fields.items():
        if field in nested:
            factory = info.default_factory
            if isinstance(factory, type) and issubclass(factory, BaseModel):
                info = FieldInfo.merge_field_infos(info, default_factory=_dumped_factory(factory))
            fields[field] = Annotated[nested[field], info]  # type: ignore[valid-type]
        else:
            fields[field] = Annotated[info.annotation, info]  # type: ignore[name-defined]
    record = TypedDict(name, fields)  # type: ignore[operator]
    config = {k: v for k, v in model.model_config.items() if k not in _OBJECT_ONLY}
    record.__pydantic_config__ = ConfigDict(**config)  # type: ignore[attr-defined,typeddict-item]
    return record


SCOPE_RECORD = record_type(Scope, "ScopeRecord")
PROFILE_RECORD = record_type(Profile, "ProfileRecord")
COMMAND_RECORD = record_type(
    ConsentCommand, "CommandRecord", {"profile": PROFILE_RECORD, "scope": SCOPE_RECORD}
)
_validate_json = TypeAdapter(COMMAND_RECORD).validate_json


def parse_command(record: ConsumerRecord) -> CommandRecord | ConsentCommand:
    """The command a record carries, as a record; raises the model's error if invalid."""
    value = record.value
    if value is None:
        raise ValueError("message has no value")
    try:
        return _validate_json(value)  # type: ignore[no-any-return]
    except ValidationError:
        return ConsentCommand.model_validate_json(value)
