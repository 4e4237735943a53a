"""`quick_init` (`services/consent/domain/records.py`) builds every consent record exactly
as the dataclass's generated `__init__` does: the same value in every field, with each
field given or left to its default (a default factory called afresh), by position and by
keyword; `__post_init__` runs; the record stays frozen; and a call the generated
`__init__` refuses (a missing or unknown argument) is refused too."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.consent import handlers  # noqa: F401 - every decorated class is imported
from services.consent.domain.model import ActLog, ProfileConsent
from services.consent.domain.records import GENERATED, quick_init

CLASSES = sorted(GENERATED, key=lambda c: c.__qualname__)

# Values of the shapes the fields hold; a field's type is not checked by either `__init__`.
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=5),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.tuples(st.integers(), st.text(max_size=3)),
)


def _reference(cls: type, *args: Any, **kwargs: Any) -> Any:
    """The record as the dataclass's own `__init__` makes it."""
    obj = object.__new__(cls)
    GENERATED[cls](obj, *args, **kwargs)
    return obj


def _values(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name, "<unset>") for f in dataclasses.fields(obj)}


def _kwargs(cls: type, draw: st.DrawFn) -> dict[str, Any]:
    """A value for each required field, and for each field with a default, sometimes."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if cls is ProfileConsent and f.name == "log":
            value: Any = draw(st.sampled_from(((), ActLog())))
        else:
            value = draw(VALUES)
        if required or draw(st.booleans()):
            out[f.name] = value
    return out


def test_every_hot_record_is_built_by_quick_init() -> None:
    names = {c.__name__ for c in CLASSES}
    assert {
        "Act", "Slot", "ProfileConsent", "Logged", "Policy", "Event", "HistoryEntry",
        "Outcome", "Head", "Personal", "Receipt", "HistoryRow", "Request",
    } <= names  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_quick_init_builds_what_the_generated_init_builds(data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from(CLASSES))
    kwargs = _kwargs(cls, data.draw)
    fast, slow = cls(**kwargs), _reference(cls, **kwargs)
    assert _values(fast) == _values(slow)
    # Positionally, in field order, as far as the fields given are a prefix of them.
    given_in_order = []
    for f in dataclasses.fields(cls):
        if not f.init or f.name not in kwargs:
            break
        given_in_order.append(kwargs[f.name])
    assert _values(cls(*given_in_order)) == _values(_reference(cls, *given_in_order))


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_quick_init_keeps_the_record_frozen_and_refuses_what_the_dataclass_refuses(
    cls: type,
) -> None:
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    obj = cls(**{name: None for name in required})
    first = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, first, "changed")
    with pytest.raises(TypeError):
        cls(**{name: None for name in required}, not_a_field=1)
    if required:
        with pytest.raises(TypeError):
            cls()


def test_default_factories_make_a_fresh_value_for_each_record() -> None:
    assert ProfileConsent().slots is not ProfileConsent().slots
    assert ProfileConsent().log is not ProfileConsent().log


def test_quick_init_is_only_for_frozen_slotted_dataclasses() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclasses.dataclass(slots=True)
    class NotFrozen:
        a: int

    for cls in (NoSlots, NotFrozen):
        with pytest.raises(TypeError):
            quick_init(cls)
