"""Model-based test: replicas exchange deltas over a lossy, reordering, duplicating network.

Three replicas each hold a register, a counter and a set. Every local op broadcasts its
delta (through JSON, as on the wire); the network delivers in any order, duplicates and
drops; replicas also push full state at random. At the end a full exchange must leave
every replica equal, with the value the semantics promise:

- counter: the sum of every increment, lost messages or not;
- register: the value written with the greatest HLC timestamp;
- set: a naive add-wins OR-set that keeps every add tag and every removed tag (trivially
  correct, unoptimised) fed the same messages; it is also checked after every step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from jira_orchestrator._core.hlc import HybridLogicalClock, Timestamp
from jira_orchestrator.state.crdt import (
    CRDT,
    LWWRegister,
    ORSet,
    PNCounter,
    canonical_json,
    crdt_from_dict,
)

N = 3
replicas = st.integers(0, N - 1)
elements = st.sampled_from(
    ["a", "b", 7, {"path": "/a", "method": "GET"}, {"method": "GET", "path": "/a"}, [1, "x"]]
)
values = st.one_of(
    st.integers(), st.text(max_size=4), st.dictionaries(st.text(max_size=2), st.booleans())
)


@dataclass
class NaiveSet:
    """Add-wins OR-set with tombstones: ``adds`` tag -> element, ``removed`` tags."""

    adds: dict[int, str] = field(default_factory=dict)
    removed: set[int] = field(default_factory=set)

    def alive(self, element: str) -> set[int]:
        return {t for t, e in self.adds.items() if e == element and t not in self.removed}

    def merge(self, other: NaiveSet) -> None:
        self.adds.update(other.adds)
        self.removed |= other.removed

    def value(self) -> list[str]:
        return sorted({e for t, e in self.adds.items() if t not in self.removed})


@dataclass
class Message:
    dst: int
    kind: str
    data: dict[str, Any]
    model: NaiveSet | None


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Replicas(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clocks = [Clock(1000.0 + 0.003 * i) for i in range(N)]
        self.hlc = [
            HybridLogicalClock(f"r{i}", clock=self.clocks[i], max_drift=3600) for i in range(N)
        ]
        self.crdts: list[dict[str, CRDT]] = [
            {"reg": LWWRegister(), "cnt": PNCounter(), "set": ORSet()} for _ in range(N)
        ]
        self.models = [NaiveSet() for _ in range(N)]
        self.network: list[Message] = []
        self.total = 0
        self.writes: list[tuple[Timestamp, str]] = []
        self.next_tag = 0

    def broadcast(self, src: int, kind: str, delta: CRDT, model: NaiveSet | None) -> None:
        data = json.loads(json.dumps(delta.to_dict()))
        for dst in range(N):
            if dst != src:
                self.network.append(Message(dst, kind, data, model))

    def receive(self, dst: int, kind: str, data: dict[str, Any], model: NaiveSet | None) -> None:
        remote = crdt_from_dict(json.loads(json.dumps(data)))
        if isinstance(remote, LWWRegister) and remote.timestamp is not None:
            self.hlc[dst].update(remote.timestamp)
        self.crdts[dst][kind].merge(remote)
        if model is not None:
            self.models[dst].merge(model)

    @rule(r=replicas, ms=st.integers(0, 3))
    def tick(self, r: int, ms: int) -> None:
        self.clocks[r].now += ms / 1000

    @rule(r=replicas, value=values)
    def set_register(self, r: int, value: Any) -> None:
        ts = self.hlc[r].now()
        reg = self.crdts[r]["reg"]
        assert isinstance(reg, LWWRegister)
        self.writes.append((ts, canonical_json(value)))
        self.broadcast(r, "reg", reg.set(value, ts), None)

    @rule(r=replicas, n=st.integers(-3, 5))
    def increment(self, r: int, n: int) -> None:
        cnt = self.crdts[r]["cnt"]
        assert isinstance(cnt, PNCounter)
        self.total += n
        self.broadcast(r, "cnt", cnt.increment(f"r{r}", n), None)

    @rule(r=replicas, element=elements)
    def add(self, r: int, element: Any) -> None:
        s = self.crdts[r]["set"]
        assert isinstance(s, ORSet)
        text = canonical_json(element)
        self.next_tag += 1
        # an add replaces the adds of that element it has seen, as the delta's context says
        model = NaiveSet({self.next_tag: text}, self.models[r].alive(text))
        self.models[r].merge(model)
        self.broadcast(r, "set", s.add(element, f"r{r}"), model)

    @rule(r=replicas, element=elements)
    def remove(self, r: int, element: Any) -> None:
        s = self.crdts[r]["set"]
        assert isinstance(s, ORSet)
        model = NaiveSet({}, self.models[r].alive(canonical_json(element)))
        self.models[r].merge(model)
        self.broadcast(r, "set", s.remove(element), model)

    @precondition(lambda self: self.network)
    @rule(data=st.data(), keep=st.booleans())
    def deliver(self, data: st.DataObject, keep: bool) -> None:
        index = data.draw(st.integers(0, len(self.network) - 1))
        message = self.network[index] if keep else self.network.pop(index)
        self.receive(message.dst, message.kind, message.data, message.model)

    @precondition(lambda self: self.network)
    @rule(data=st.data())
    def drop(self, data: st.DataObject) -> None:
        self.network.pop(data.draw(st.integers(0, len(self.network) - 1)))

    @rule(src=replicas, dst=replicas)
    def push_full_state(self, src: int, dst: int) -> None:
        for kind, state in self.crdts[src].items():
            model = self.models[src] if kind == "set" else None
            copy = None if model is None else NaiveSet(dict(model.adds), set(model.removed))
            self.receive(dst, kind, state.to_dict(), copy)

    @invariant()
    def each_set_matches_its_model(self) -> None:
        for r in range(N):
            real = [canonical_json(e) for e in self.crdts[r]["set"].value]
            assert real == self.models[r].value()

    def teardown(self) -> None:
        for _ in range(2):
            for src in range(N):
                for dst in range(N):
                    self.push_full_state(src, dst)
        first = self.crdts[0]
        for other in self.crdts[1:]:
            for kind in first:
                assert other[kind] == first[kind], kind
        assert first["cnt"].value == self.total
        if self.writes:
            assert canonical_json(first["reg"].value) == max(self.writes)[1]
        else:
            assert first["reg"].value is None
        self.each_set_matches_its_model()
        assert all(m.value() == self.models[0].value() for m in self.models)


Replicas.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestReplicasConverge = Replicas.TestCase
