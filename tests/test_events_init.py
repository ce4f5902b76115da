"""The events a run publishes are built by an __init__ that sets each slot directly (events.py's
_set_by_slot, issue 14): a subscriber must see the same events as the dataclass's own __init__
would build, as frozen as before."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from jobtui.engine import events
from jobtui.engine.events import Event

EVENT_TYPES = [
    cls
    for cls in vars(events).values()
    if isinstance(cls, type) and issubclass(cls, Event) and cls is not Event
]


def _values(cls: type[Event]) -> dict[str, object]:
    return {f.name: f"{f.name} of {cls.__name__}" for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda cls: cls.__name__)
def test_every_event_takes_its_fields_in_order_with_their_defaults(cls):
    fields = dataclasses.fields(cls)
    params = list(inspect.signature(cls).parameters.values())
    assert [p.name for p in params] == [f.name for f in fields]
    for param, field in zip(params, fields, strict=True):
        expected = (
            inspect.Parameter.empty if field.default is dataclasses.MISSING else field.default
        )
        assert param.default == expected


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda cls: cls.__name__)
def test_every_event_built_by_position_or_keyword_holds_its_values_and_stays_frozen(cls):
    values = _values(cls)
    by_keyword = cls(**values)
    by_position = cls(*values.values())
    assert by_keyword == by_position
    assert hash(by_keyword) == hash(by_position)
    assert dataclasses.asdict(by_keyword) == values
    for name in values:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(by_keyword, name, "changed")


def test_an_event_field_left_out_is_its_default_and_one_missing_is_an_error():
    changed = events.JobStateChanged(1.0, "backup", "finished")
    assert changed.reason == ""
    with pytest.raises(TypeError):
        events.RunFinished(1.0)  # type: ignore[call-arg]


def test_the_events_a_run_publishes_are_built_without_object_setattr():
    """What the hot path is for: a frozen dataclass's own __init__ sets each field through
    object.__setattr__; these set each slot, and nothing else."""
    for cls in (events.RunStarted, events.RunFinished, events.JobStateChanged):
        names = cls.__init__.__code__.co_names
        assert names == tuple(f"_set_{f.name}" for f in dataclasses.fields(cls))
    assert "__setattr__" in events.ClockJumped.__init__.__code__.co_names  # not on a run's path
