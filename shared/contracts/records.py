"""Contract payloads validated into slim records: plain dicts of a model's fields,
validated exactly as the model validates, without the model objects (X1).

A service that decodes every message of a busy topic into frozen pydantic models builds
several objects per message (the payload and each nested model), holds them for the
whole batch and usually dumps some back into dicts. Where most messages change nothing,
the flow executor's profile events and the consent service's commands take records
instead: `record_type` derives a TypedDict from the model field by field (annotation,
constraints, validators, defaults and the model's validation settings), so a record
holds what the model would, `record == Model.model_validate_json(raw).model_dump()` for
every input the model accepts, and a field added to the contract is in the record too.
`SlimParser` validates a Kafka record into such a record; one the slim validation
refuses is validated again by the model, so its dead letter carries exactly the error
the model gives (and should the two ever disagree, the model's answer is used).

The services' property tests hold records equal to the models' dumps and their use
cases' outputs equal for records and models.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from typing_extensions import TypedDict

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

M = TypeVar("M", bound=BaseModel)

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
    copied from one dump when its values are plain (most consent commands leave their
    scope out, and building a model to dump it cost as much as validating the rest)."""
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


class SlimParser(Generic[M]):
    """A subscriber's `parse=`: the payload a Kafka record carries as a record of
    `record` (a `record_type` of `model`), or, when that validation refuses it, as the
    model validates it, which raises the model's own error if it is invalid."""

    def __init__(self, model: type[M], record: Any) -> None:
        self.model = model
        # The compiled validator itself: `TypeAdapter.validate_json` is a frame around it.
        self.validate_json = TypeAdapter(record).validator.validate_json

    def __call__(self, message: ConsumerRecord) -> dict[str, Any] | M:
        value = message.value
        if value is None:
            raise ValueError("message has no value")
        try:
            return self.validate_json(value)  # type: ignore[no-any-return]
        except ValidationError:
            return self.model.model_validate_json(value)
