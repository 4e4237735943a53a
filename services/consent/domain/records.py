"""A cheaper `__init__` for the frozen slotted dataclasses built on every consent act.

A frozen dataclass's generated `__init__` sets each field with
`object.__setattr__(self, name, value)`: a generic attribute lookup by name per field,
because the class's own `__setattr__` refuses. Every command builds a dozen such records
(its act of 20 fields, the history entry of 15, the slot, state, log entry, outcome,
receipt, ...), and that way of setting fields cost about 6 % of a command's CPU, as much
as making its state's JSON. `quick_init` replaces the generated `__init__` of a frozen
class with `__slots__` by one with the same signature and the same effect that writes
each field through its slot's own descriptor (`Cls.field.__set__`, bound once): no
lookup by name, and the class stays frozen (the descriptor writes the slot; assigning
an attribute afterwards still raises `FrozenInstanceError`). Equality, hashing, `repr`,
`replace` and `fields` are the dataclass's own; `replace` and every construction get
cheaper alike.

`tests/unit/consent/test_records.py` holds every class built this way equal, field by
field, to what the dataclass's generated `__init__` makes, with every field given or left
to its default, by position and by keyword."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")

GENERATED: dict[type, Any] = {}
"""Each class given `quick_init`, with the `__init__` the dataclass generated for it (the
reference its tests compare with)."""


def quick_init(cls: type[T]) -> type[T]:
    """Decorate a `@dataclass(frozen=True, slots=True)` class (apply it above the
    `@dataclass` line): its `__init__` sets the fields through their slot descriptors."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__}: quick_init is for frozen dataclasses with slots")
    names: dict[str, Any] = {"_MISSING": dataclasses.MISSING}
    args: list[str] = []
    body: list[str] = []
    for i, f in enumerate(dataclasses.fields(cls)):
        if f.kw_only:
            raise TypeError(f"{cls.__name__}.{f.name}: keyword-only fields are not supported")
        names[f"_set{i}"] = cls.__dict__[f.name].__set__
        if not f.init:
            # Set by `__post_init__` (the dataclass leaves it unset too) or to its default.
            if f.default is not dataclasses.MISSING:
                names[f"_default{i}"] = f.default
                body.append(f"    _set{i}(self, _default{i})")
            elif f.default_factory is not dataclasses.MISSING:
                names[f"_factory{i}"] = f.default_factory
                body.append(f"    _set{i}(self, _factory{i}())")
            continue
        if f.default is not dataclasses.MISSING:
            names[f"_default{i}"] = f.default
            args.append(f"{f.name}=_default{i}")
            body.append(f"    _set{i}(self, {f.name})")
        elif f.default_factory is not dataclasses.MISSING:
            names[f"_factory{i}"] = f.default_factory
            args.append(f"{f.name}=_MISSING")
            body.append(f"    _set{i}(self, _factory{i}() if {f.name} is _MISSING else {f.name})")
        else:
            args.append(f.name)
            body.append(f"    _set{i}(self, {f.name})")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    source = f"def __init__(self, {', '.join(args)}) -> None:\n" + "\n".join(body or ["    pass"])
    exec(source, names)
    init = names["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    GENERATED[cls] = cls.__init__
    cls.__init__ = init  # type: ignore[misc]
    return cls
