"""The fast payload check accepts exactly what the strict one accepts, never more."""

from __future__ import annotations

import datetime
import decimal
import enum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jira_orchestrator import InvalidMessage
from jira_orchestrator._core.message import (
    MAX_PAYLOAD_DEPTH,
    _check,
    _PayloadError,
    is_plain_json,
    validate_payload,
)


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Shape(enum.Enum):
    SQUARE = "square"


class Text(str):
    pass


class Number(float):
    pass


class Mapping(dict[Any, Any]):
    pass


class Items(list[Any]):
    pass


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**64, max_value=2**80)
    | st.floats()  # nan and infinities included
    | st.text(max_size=5)
    | st.sampled_from([Colour.RED, Level.HIGH, Shape.SQUARE, Text("t"), Number(1.5)])
    | st.sampled_from([Number("nan"), Number("inf"), decimal.Decimal("1.5"), b"bytes"])
    | st.just(datetime.datetime(2025, 1, 1))
    | st.builds(object)
)
KEYS = (
    st.text(max_size=5)
    | st.integers()
    | st.none()
    | st.sampled_from([Colour.RED, Text("k"), Level.HIGH, 1.5, True])
)
VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(KEYS, children, max_size=4)
        | st.lists(children, max_size=3).map(tuple)
        | st.lists(children, max_size=3).map(Items)
        | st.dictionaries(KEYS, children, max_size=3).map(Mapping)
        | st.frozensets(st.integers(), max_size=3)
    ),
    max_leaves=25,
)


def strict_accepts(value: Any) -> bool:
    try:
        _check(value, 0)
    except _PayloadError:
        return False
    return True


@settings(max_examples=1000)
@given(VALUES)
def test_the_fast_check_accepts_only_what_the_strict_check_accepts(value: Any) -> None:
    if is_plain_json(value):
        assert strict_accepts(value)


@settings(max_examples=300)
@given(VALUES)
def test_validate_payload_decides_as_the_strict_check_does(value: Any) -> None:
    if strict_accepts(value):
        validate_payload(value)
    else:
        with pytest.raises(InvalidMessage, match=r"^payload"):
            validate_payload(value)


REFUSED = [
    float("nan"),
    float("inf"),
    -float("inf"),
    Number("nan"),
    (1, 2),
    {1, 2},
    frozenset(),
    datetime.datetime(2025, 1, 1),
    decimal.Decimal("1.5"),
    b"bytes",
    Shape.SQUARE,
    object(),
    {1: "int key"},
    {None: "null key"},
    {("a",): "tuple key"},
]


def _id(value: Any) -> str:
    """A test id that is the same in every process (an object's repr holds its address)."""
    return "object()" if type(value) is object else repr(value)


@pytest.mark.parametrize("bad", REFUSED, ids=_id)
@pytest.mark.parametrize(
    "place",
    [lambda bad: bad, lambda bad: {"a": {"b": bad}}, lambda bad: [1, [2.5, bad]]],
    ids=["top", "in a dict", "in a list"],
)
def test_what_the_strict_check_refuses_never_takes_the_fast_path(bad: Any, place: Any) -> None:
    value = place(bad)
    assert not strict_accepts(value)
    assert not is_plain_json(value)
    with pytest.raises(InvalidMessage, match=r"^payload"):
        validate_payload(value)


PLAIN = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=25,
)


@given(PLAIN)
def test_plain_json_data_takes_the_fast_path(value: Any) -> None:
    assert is_plain_json(value)


def nested(containers: int) -> Any:
    value: Any = 1
    for level in range(containers):
        value = [value] if level % 2 else {"k": value}
    return value


def test_the_deepest_allowed_nesting_is_fast_and_one_more_level_is_refused() -> None:
    deepest = nested(MAX_PAYLOAD_DEPTH)
    assert strict_accepts(deepest)
    assert is_plain_json(deepest)
    too_deep = nested(MAX_PAYLOAD_DEPTH + 1)
    assert not is_plain_json(too_deep)
    with pytest.raises(InvalidMessage, match=f"nested deeper than {MAX_PAYLOAD_DEPTH} levels"):
        validate_payload(too_deep)
