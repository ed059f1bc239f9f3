"""CRDTs: semantics, the dict form, bad input, and the merge laws (hypothesis)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jira_orchestrator._core.hlc import Timestamp
from jira_orchestrator.state import crdt
from jira_orchestrator.state.crdt import (
    CRDT,
    LWWRegister,
    ORSet,
    PNCounter,
    canonical_json,
    crdt_from_dict,
)
from jira_orchestrator.state.errors import InvalidDelta, InvalidStateValue, StateTypeMismatch

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def wire(value: CRDT) -> CRDT:
    """Through JSON text and back, as a delta travels."""
    return crdt_from_dict(json.loads(json.dumps(value.to_dict())))


def test_all_exports_exist() -> None:
    for name in crdt.__all__:
        assert getattr(crdt, name) is not None


# canonical identity and JSON checks


def test_objects_are_the_same_element_whatever_the_key_order() -> None:
    a = {"path": "/a", "method": "GET"}
    b = {"method": "GET", "path": "/a"}
    assert canonical_json(a) == canonical_json(b) == '{"method":"GET","path":"/a"}'
    s = ORSet()
    s.add(a, "r1")
    s.add(b, "r1")
    assert s.value == [b]
    assert len(s) == 1
    s.remove({"method": "GET", "path": "/a"})
    assert s.value == []


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ((1, 2), r"at \$ is a tuple, not JSON; use a list"),
        ({1, 2}, r"at \$ is a set"),
        ({"a": [1, float("nan")]}, r"at \$\.a\[1\] is nan"),
        ({"a": float("inf")}, r"at \$\.a is inf"),
        ({"a": {1: "x"}}, r"at \$\.a has key 1 of type int"),
        ([object()], r"at \$\[0\] is a object"),
        (b"bytes", r"is a bytes"),
        ("\ud800", "not valid Unicode"),
    ],
)
def test_non_json_values_are_rejected_naming_where(value: object, where: str) -> None:
    with pytest.raises(InvalidStateValue, match=where):
        canonical_json(value)


def test_deep_nesting_and_size_limits() -> None:
    deep: list[Any] = []
    for _ in range(150):
        deep = [deep]
    with pytest.raises(InvalidStateValue, match="nested deeper than 100"):
        canonical_json(deep)
    with pytest.raises(InvalidStateValue, match="is 12 bytes as JSON, over the limit of 10"):
        canonical_json("x" * 10, max_bytes=10)
    assert canonical_json("x" * 8, max_bytes=10) == '"xxxxxxxx"'


@given(json_values)
def test_canonical_json_round_trips(value: Any) -> None:
    text = canonical_json(value)
    assert canonical_json(json.loads(text)) == text


# LWW register


def test_register_greater_timestamp_wins_in_any_order() -> None:
    old, new = LWWRegister(), LWWRegister()
    d_old = old.set({"v": 1}, Timestamp(10, 0, "a"))
    d_new = new.set({"v": 2}, Timestamp(10, 1, "a"))
    assert old.merge(d_new) is True
    assert old.value == {"v": 2}
    assert new.merge(d_old) is False
    assert new.value == {"v": 2}


def test_register_ties_on_time_are_broken_by_replica_id() -> None:
    a, b = LWWRegister(), LWWRegister()
    a.set("from a", Timestamp(10, 0, "a"))
    b.set("from b", Timestamp(10, 0, "b"))
    a.merge(b.copy())
    b.merge(a.copy())
    assert a.value == b.value == "from b"


def test_register_same_timestamp_different_values_still_converges() -> None:
    ts = Timestamp(10, 0, "a")
    a, b = LWWRegister("x", ts), LWWRegister("y", ts)
    a2, b2 = a.copy(), b.copy()
    a.merge(b2)
    b.merge(a2)
    assert a == b
    assert a.value == "y"


def test_register_empty_and_bad_input() -> None:
    assert LWWRegister().value is None
    assert LWWRegister().merge(LWWRegister()) is False
    with pytest.raises(TypeError, match="Timestamp"):
        LWWRegister().set(1, "10:0:a")  # type: ignore[arg-type]
    with pytest.raises(InvalidStateValue, match="tuple"):
        LWWRegister().set((1,), Timestamp(1, 0, "a"))
    with pytest.raises(ValueError, match="needs a timestamp"):
        LWWRegister("x")


def test_register_value_is_a_copy() -> None:
    reg = LWWRegister()
    reg.set({"a": [1]}, Timestamp(1, 0, "a"))
    reg.value["a"].append(2)
    assert reg.value == {"a": [1]}


# PN-counter


def test_counter_increments_and_decrements_per_replica() -> None:
    a, b = PNCounter(), PNCounter()
    a.increment("a")
    a.increment("a", 5)
    b.decrement("b", 2)
    b.increment("b", -1)
    delta = a.decrement("a", -4)
    assert delta.to_dict() == {"type": "pncounter", "p": {"a": 10}, "n": {}}
    a.merge(b)
    b.merge(a)
    assert a.value == b.value == 7


@pytest.mark.parametrize("amount", [1.5, True, "1", None])
def test_counter_rejects_non_int_amounts(amount: object) -> None:
    c = PNCounter()
    with pytest.raises(InvalidStateValue, match="must be an int"):
        c.increment("a", amount)  # type: ignore[arg-type]
    with pytest.raises(InvalidStateValue, match="must be an int"):
        c.decrement("a", amount)  # type: ignore[arg-type]
    assert c.value == 0


@pytest.mark.parametrize("replica", ["", None, 3])
def test_ops_reject_bad_replica_ids(replica: object) -> None:
    with pytest.raises(ValueError, match="replica"):
        PNCounter().increment(replica)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="replica"):
        ORSet().add("x", replica)  # type: ignore[arg-type]


# add-wins set


def test_concurrent_add_survives_a_remove() -> None:
    a, b = ORSet(), ORSet()
    b.merge(a.add("task", "a"))
    remove = b.remove("task")  # b saw a's add and removes it
    readd = a.add("task", "a")  # meanwhile a adds it again
    a.merge(remove)
    b.merge(readd)
    assert a.value == b.value == ["task"]


def test_remove_of_an_observed_add_wins_over_a_late_duplicate() -> None:
    a, b = ORSet(), ORSet()
    add = a.add("x", "a")
    b.merge(add)
    remove = b.remove("x")
    a.merge(remove)
    a.merge(add)  # duplicate delivery after the remove
    assert a.value == []
    b.merge(add)
    assert b.value == []


def test_remove_of_an_absent_element_is_an_empty_delta() -> None:
    s = ORSet()
    delta = s.remove("ghost")
    assert delta.value == []
    assert s.merge(delta) is False
    assert "ghost" not in s
    assert [1] not in s
    assert (1,) not in s  # not JSON: simply not a member


def test_small_deltas_into_a_large_set_match_full_state_merges() -> None:
    a, b = ORSet(), ORSet()
    for i in range(60):
        b.merge(a.add(f"e{i}", "a"))
    b.merge(a.add("e7", "a"))  # re-add: replaces the first dot of e7
    removes = [b.remove(f"e{i}") for i in range(0, 60, 3)]
    via_deltas, via_state = a.copy(), a.copy()
    for delta in removes:
        assert via_deltas.merge(delta) is True
    via_state.merge(b.copy())
    assert via_deltas.value == via_state.value == b.value
    assert len(b) == 40
    assert "e7" in b
    assert "e6" not in b


def test_set_value_is_sorted_by_canonical_text_and_copies() -> None:
    s = ORSet()
    for element in ["b", 1, {"k": [1]}, None, "a"]:
        s.add(element, "r")
    assert s.value == ["a", "b", 1, None, {"k": [1]}]
    s.value[4]["k"].append(2)
    assert {"k": [1]} in s


def test_add_rejects_non_json_elements() -> None:
    s = ORSet()
    with pytest.raises(InvalidStateValue, match="element at"):
        s.add({"a": {1, 2}}, "r")
    with pytest.raises(InvalidStateValue, match="element at"):
        s.remove(float("nan"))
    assert s.to_dict() == ORSet().to_dict()


# types and the dict form


def test_merging_different_kinds_is_refused() -> None:
    with pytest.raises(StateTypeMismatch, match="cannot merge a counter into a set"):
        ORSet().merge(PNCounter())  # type: ignore[arg-type]
    with pytest.raises(StateTypeMismatch, match="into a register"):
        LWWRegister().merge("x")  # type: ignore[arg-type]


def test_equal_states_have_one_dict_form() -> None:
    zero = {"type": "orset", "entries": [], "context": {"vv": {"a": 0}, "dots": []}}
    assert crdt_from_dict(zero) == ORSet()
    assert crdt_from_dict({"type": "pncounter", "p": {"a": 0}, "n": {}}) == PNCounter()
    stray = {"type": "orset", "entries": [], "context": {"vv": {"a": 2}, "dots": [["a", 1]]}}
    assert crdt_from_dict(stray).to_dict()["context"] == {"vv": {"a": 2}, "dots": []}


def test_equality_and_repr() -> None:
    assert PNCounter({"a": 1}) == PNCounter({"a": 1})
    assert PNCounter({"a": 1}) != PNCounter({"a": 2})
    assert PNCounter() != ORSet()
    assert (PNCounter() == 5) is False
    assert "pncounter" in repr(PNCounter())


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([], "must be a dict"),
        ({"type": "map"}, "unknown CRDT type 'map'"),
        ({}, "unknown CRDT type None"),
        ({"type": "lww", "value": 1}, "missing field 'ts'"),
        ({"type": "lww", "ts": None}, "missing field 'value'"),
        ({"type": "lww", "ts": 5, "value": 1}, r"lww\.ts: expected str or NoneType"),
        ({"type": "lww", "ts": "x", "value": 1}, r"lww\.ts: timestamp 'x'"),
        ({"type": "lww", "ts": None, "value": 1}, "a value without a timestamp"),
        ({"type": "lww", "ts": "1:0:a", "value": [float("nan")]}, r"lww\.value"),
        ({"type": "pncounter", "p": {}}, "missing field 'n'"),
        ({"type": "pncounter", "p": [], "n": {}}, r"pncounter\.p: expected Mapping"),
        ({"type": "pncounter", "p": {"a": -1}, "n": {}}, r"pncounter\.p\.a: -1"),
        ({"type": "pncounter", "p": {"a": 1.0}, "n": {}}, "is not an int"),
        ({"type": "pncounter", "p": {}, "n": {"a": True}}, "is not an int"),
        ({"type": "pncounter", "p": {"": 1}, "n": {}}, "replica '' is not a str"),
        ({"type": "orset", "entries": []}, "missing field 'context'"),
        ({"type": "orset", "entries": {}, "context": {}}, r"orset\.entries: expected list"),
        ({"type": "orset", "entries": [], "context": {"vv": {}}}, "missing field 'dots'"),
        ({"type": "orset", "entries": [], "context": {"vv": {"a": -1}, "dots": []}}, "seq"),
        ({"type": "orset", "entries": [], "context": {"vv": {}, "dots": [["a", 0]]}}, "dot"),
        ({"type": "orset", "entries": [], "context": {"vv": {}, "dots": "x"}}, "expected list"),
        (
            {"type": "orset", "entries": [["x"]], "context": {"vv": {"a": 1}, "dots": []}},
            r"entries\[0\]: expected \[element, dots\]",
        ),
        (
            {"type": "orset", "entries": [["x", []]], "context": {"vv": {"a": 1}, "dots": []}},
            "an element with no dots",
        ),
        (
            {
                "type": "orset",
                "entries": [["x", [["a", 2]]]],
                "context": {"vv": {"a": 1}, "dots": []},
            },
            "a dot missing from the causal context",
        ),
        (
            {
                "type": "orset",
                "entries": [[{"a": 1, "b": 2}, [["a", 1]]], [{"b": 2, "a": 1}, [["a", 2]]]],
                "context": {"vv": {"a": 2}, "dots": []},
            },
            "appears twice",
        ),
        (
            {
                "type": "orset",
                "entries": [["x", [["a", 1]]], ["y", [["a", 1]]]],
                "context": {"vv": {"a": 1}, "dots": []},
            },
            "a dot that tags another element too",
        ),
        (
            {
                "type": "orset",
                "entries": [[[1, {2: 3}], [["a", 1]]]],
                "context": {"vv": {"a": 1}, "dots": []},
            },
            r"entries\[0\]: element at",
        ),
    ],
)
def test_malformed_dict_forms_are_rejected_naming_the_field(data: object, match: str) -> None:
    with pytest.raises(InvalidDelta, match=match):
        crdt_from_dict(data)


@pytest.mark.parametrize("cls", [LWWRegister, PNCounter, ORSet])
def test_from_dict_checks_the_type_tag(cls: type[CRDT]) -> None:
    with pytest.raises(InvalidDelta, match="field 'type'"):
        cls.from_dict({"type": "other"})
    with pytest.raises(InvalidDelta, match="expected a dict"):
        cls.from_dict([])  # type: ignore[arg-type]


# merge laws, on states reachable by real operations


@st.composite
def histories(draw: st.DrawFn, kind: str) -> list[CRDT]:
    """States and deltas met by three replicas doing random ops and random merges."""
    replicas: list[CRDT] = [
        {"lww": LWWRegister, "pncounter": PNCounter, "orset": ORSet}[kind]() for _ in range(3)
    ]
    seen: list[CRDT] = [r.copy() for r in replicas]
    tick = 0
    for _ in range(draw(st.integers(0, 12))):
        i = draw(st.integers(0, 2))
        action = draw(st.sampled_from(["op", "op", "merge"]))
        target = replicas[i]
        if action == "merge":
            target.merge(draw(st.sampled_from(seen)).copy())
            seen.append(target.copy())
            continue
        tick += 1
        element = draw(st.sampled_from(["a", "b", {"k": 1}, 1]))
        if isinstance(target, LWWRegister):
            wall = draw(st.integers(0, 3))
            delta: CRDT = target.set(element, Timestamp(wall, tick, f"r{i}"))
        elif isinstance(target, PNCounter):
            delta = target.increment(f"r{i}", draw(st.integers(-3, 3)))
        else:
            assert isinstance(target, ORSet)
            delta = target.add(element, f"r{i}") if draw(st.booleans()) else target.remove(element)
        seen.extend([delta, target.copy()])
    return seen


kinds = st.sampled_from(["lww", "pncounter", "orset"])


def merged(a: CRDT, b: CRDT) -> CRDT:
    out = a.copy()
    out.merge(b.copy())
    return out


@given(kinds.flatmap(histories), st.data())
def test_merge_is_commutative(seen: list[CRDT], data: st.DataObject) -> None:
    a, b = data.draw(st.sampled_from(seen)), data.draw(st.sampled_from(seen))
    assert merged(a, b) == merged(b, a)
    assert merged(a, b).value == merged(b, a).value


@given(kinds.flatmap(histories), st.data())
def test_merge_is_associative(seen: list[CRDT], data: st.DataObject) -> None:
    a, b, c = (data.draw(st.sampled_from(seen)) for _ in range(3))
    assert merged(merged(a, b), c) == merged(a, merged(b, c))


@given(kinds.flatmap(histories), st.data())
def test_merge_is_idempotent(seen: list[CRDT], data: st.DataObject) -> None:
    a, b = data.draw(st.sampled_from(seen)), data.draw(st.sampled_from(seen))
    ab = merged(a, b)
    assert merged(a, a) == a
    again = ab.copy()
    assert again.merge(b.copy()) is False
    assert again == ab


@given(kinds.flatmap(histories))
def test_dict_form_round_trips_through_json(seen: list[CRDT]) -> None:
    for state in seen:
        back = wire(state)
        assert back == state
        assert back.value == state.value
        assert type(back) is type(state)


@given(st.lists(json_values, max_size=6), st.data())
def test_register_holds_any_json_value(values: list[Any], data: st.DataObject) -> None:
    reg = LWWRegister()
    for n, value in enumerate(values):
        reg.set(value, Timestamp(n, 0, "a"))
        assert canonical_json(wire(reg).value) == canonical_json(value)
