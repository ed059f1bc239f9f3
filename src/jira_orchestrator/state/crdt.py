"""Conflict-free replicated data types: LWW register, PN-counter, add-wins set. Pure, no I/O.

These are delta-state CRDTs: a local operation changes the object in place and returns a
*delta*, a small object of the same class that carries only the change. Shipping either
the delta or the whole state to another replica and calling ``merge`` there converges; a
delta lost on the way is repaired by merging full state later (anti-entropy). ``merge`` is
commutative, associative and idempotent, so order, duplicates and drops do not matter.

Every CRDT has a JSON-serialisable dict form (``to_dict`` / `crdt_from_dict`) tagged with
``"type"``, used on the wire and in the SQLite store.

Values are JSON: ``None``, ``bool``, ``int``, finite ``float``, ``str``, ``list`` and
``dict`` with ``str`` keys. Their identity is their canonical JSON text (sorted keys, no
spaces), so ``{"path": "/a", "method": "GET"}`` is one set element whatever the key order.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Any, ClassVar, Self, TypeAlias

from jira_orchestrator._core.hlc import InvalidTimestamp, Timestamp
from jira_orchestrator.state.errors import InvalidDelta, InvalidStateValue, StateTypeMismatch

__all__ = [
    "CRDT",
    "JSON",
    "LWWRegister",
    "ORSet",
    "PNCounter",
    "canonical_json",
    "crdt_from_dict",
]

JSON: TypeAlias = Any
"""A JSON value as Python holds it (see the module docstring)."""

Dot: TypeAlias = tuple[str, int]

_MAX_DEPTH = 100


def _check_json(value: object, path: str, depth: int, what: str) -> None:
    if depth > _MAX_DEPTH:
        raise InvalidStateValue(f"{what} at {path} is nested deeper than {_MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if not _writable_int(value):
            raise InvalidStateValue(
                f"{what} at {path} is an int too large to write as JSON "
                f"(over {sys.get_int_max_str_digits()} digits)"
            )
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidStateValue(f"{what} at {path} is {value!r}, which JSON cannot hold")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]", depth + 1, what)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidStateValue(
                    f"{what} at {path} has key {key!r} of type {type(key).__name__}; "
                    "JSON object keys must be str"
                )
            _check_json(item, f"{path}.{key}", depth + 1, what)
        return
    hint = "; use a list" if isinstance(value, tuple | set | frozenset) else ""
    raise InvalidStateValue(f"{what} at {path} is a {type(value).__name__}, not JSON{hint}")


def _writable_int(value: int) -> bool:
    """Whether ``str(value)`` works (Python refuses ints over a number of digits)."""
    if value.bit_length() < 2_000:  # under 603 digits, below the lowest limit Python allows
        return True
    try:
        str(value)
    except ValueError:
        return False
    return True


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _over_limit(what: str, size: int, max_bytes: int) -> InvalidStateValue:
    return InvalidStateValue(f"{what} is {size} bytes as JSON, over the limit of {max_bytes}")


def canonical_json(value: object, *, max_bytes: int | None = None, what: str = "value") -> str:
    """The canonical JSON text of ``value`` (sorted keys, no spaces), its identity.

    Raises `InvalidStateValue` naming the JSON path of the first part that is not JSON
    (tuples and sets included: they would come back as lists), or if the UTF-8 text is
    longer than ``max_bytes``.
    """
    _check_json(value, "$", 0, what)
    text = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidStateValue(f"{what} holds a str that is not valid Unicode: {exc}") from None
    if max_bytes is not None and size > max_bytes:
        raise _over_limit(what, size, max_bytes)
    return text


@functools.lru_cache(maxsize=4096)
def _parse_scalar(text: str) -> JSON:
    return json.loads(text)


def _element(text: str) -> JSON:
    """The value of an element's canonical text: fresh for containers, cached for scalars."""
    # Scalars are immutable, so sharing them is safe; sets are mostly of ids, so this
    # keeps a set's to_dict (once per mutation, for the store row) from parsing them all.
    return json.loads(text) if text[0] in "[{" else _parse_scalar(text)


def _check_replica(replica: object) -> str:
    if not isinstance(replica, str) or not replica:
        raise ValueError(f"replica must be a non-empty str, got {replica!r}")
    return replica


class CRDT(ABC):
    """Base of the CRDTs: ``merge``, ``value``, ``copy`` and the dict form."""

    TYPE: ClassVar[str]
    KIND: ClassVar[str]  # what a user calls it: register, counter, set

    @property
    @abstractmethod
    def value(self) -> JSON:
        """The current value, as a caller sees it."""

    @abstractmethod
    def merge(self, other: Self) -> bool:
        """Merge another replica's state or delta into this one; True if this one changed.

        Raises `StateTypeMismatch` if ``other`` is another kind of CRDT.
        """

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The JSON-serialisable dict form, tagged with ``"type"``."""

    @classmethod
    @abstractmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Parse the dict form; raises `InvalidDelta` naming the bad field."""

    @abstractmethod
    def copy(self) -> Self:
        """An independent copy."""

    @abstractmethod
    def check_size(self, max_bytes: int) -> None:
        """Raise `InvalidStateValue` if a value it holds is over ``max_bytes`` as JSON.

        The same limit a local write gets: a register's value, each set element, each
        counter total (its digits).
        """

    def _same_type(self, other: object) -> None:
        if type(other) is not type(self):
            got = getattr(other, "KIND", type(other).__name__)
            raise StateTypeMismatch(f"cannot merge a {got} into a {self.KIND}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CRDT):
            return NotImplemented
        return canonical_json(self.to_dict()) == canonical_json(other.to_dict())

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()!r})"


def _field(data: Mapping[str, Any], name: str, kind: type | tuple[type, ...], crdt: str) -> Any:
    if name not in data:
        raise InvalidDelta(f"{crdt}: missing field {name!r}")
    found = data[name]
    if not isinstance(found, kind):
        raise InvalidDelta(f"{crdt}.{name}: expected {_kind_name(kind)}, got {found!r}")
    return found


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _check_type_tag(data: object, expected: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidDelta(f"{expected}: expected a dict, got {type(data).__name__}")
    if data.get("type") != expected:
        raise InvalidDelta(f"{expected}: field 'type' is {data.get('type')!r}, not {expected!r}")
    return data


class LWWRegister(CRDT):
    """Last-writer-wins register stamped with a hybrid logical clock.

    The greater timestamp wins; timestamps order by (wall ms, counter, node), so equal wall
    times are broken by the replica id. An empty register holds ``None``.
    """

    TYPE = "lww"
    KIND = "register"

    def __init__(self, value: JSON = None, timestamp: Timestamp | None = None) -> None:
        if timestamp is None and value is not None:
            raise ValueError("a register value needs a timestamp")
        self._text = canonical_json(value)
        self.timestamp = timestamp

    @property
    def value(self) -> JSON:
        return json.loads(self._text)

    def set(self, value: JSON, timestamp: Timestamp) -> LWWRegister:
        """Assign ``value`` at ``timestamp``; returns the delta.

        Like any merge, the write loses if ``timestamp`` is not greater than the current
        one; take it from `HybridLogicalClock.now` so that it always wins locally.
        """
        if not isinstance(timestamp, Timestamp):
            raise TypeError(f"timestamp must be a Timestamp, got {type(timestamp).__name__}")
        delta = LWWRegister(value, timestamp)
        self.merge(delta)
        return delta

    def _key(self) -> tuple[Timestamp, str] | None:
        return None if self.timestamp is None else (self.timestamp, self._text)

    def merge(self, other: LWWRegister) -> bool:
        self._same_type(other)
        theirs, mine = other._key(), self._key()
        if theirs is None or (mine is not None and theirs <= mine):
            return False
        self._text, self.timestamp = other._text, other.timestamp
        return True

    def copy(self) -> LWWRegister:
        twin = LWWRegister()
        twin._text, twin.timestamp = self._text, self.timestamp
        return twin

    def check_size(self, max_bytes: int) -> None:
        size = _utf8_size(self._text)
        if size > max_bytes:
            raise _over_limit("value", size, max_bytes)

    def to_dict(self) -> dict[str, Any]:
        ts = None if self.timestamp is None else self.timestamp.to_json()
        return {"type": self.TYPE, "ts": ts, "value": self.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LWWRegister:
        data = _check_type_tag(data, cls.TYPE)
        raw_ts = _field(data, "ts", (str, type(None)), cls.TYPE)
        if "value" not in data:
            raise InvalidDelta(f"{cls.TYPE}: missing field 'value'")
        try:
            ts = None if raw_ts is None else Timestamp.parse(raw_ts)
        except InvalidTimestamp as exc:
            raise InvalidDelta(f"{cls.TYPE}.ts: {exc}") from None
        if ts is None and data["value"] is not None:
            raise InvalidDelta(f"{cls.TYPE}: a value without a timestamp")
        try:
            return cls(data["value"], ts)
        except InvalidStateValue as exc:
            raise InvalidDelta(f"{cls.TYPE}.value: {exc}") from None


class PNCounter(CRDT):
    """Counter that can go up and down: per replica, a grow-only total of each direction."""

    TYPE = "pncounter"
    KIND = "counter"

    def __init__(
        self, p: Mapping[str, int] | None = None, n: Mapping[str, int] | None = None
    ) -> None:
        # zero totals are left out so that equal values have one form
        self.p: dict[str, int] = {r: total for r, total in (p or {}).items() if total}
        self.n: dict[str, int] = {r: total for r, total in (n or {}).items() if total}

    @property
    def value(self) -> int:
        return sum(self.p.values()) - sum(self.n.values())

    def increment(self, replica: str, amount: int = 1) -> PNCounter:
        """Add ``amount`` (an int, may be negative) as ``replica``; returns the delta."""
        _check_replica(replica)
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise InvalidStateValue(f"counter amount must be an int, got {amount!r}")
        if amount == 0:
            return PNCounter()
        side = self.p if amount > 0 else self.n
        side[replica] = side.get(replica, 0) + abs(amount)
        if amount > 0:
            return PNCounter(p={replica: side[replica]})
        return PNCounter(n={replica: side[replica]})

    def decrement(self, replica: str, amount: int = 1) -> PNCounter:
        """Subtract ``amount`` as ``replica``; returns the delta."""
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise InvalidStateValue(f"counter amount must be an int, got {amount!r}")
        return self.increment(replica, -amount)

    def merge(self, other: PNCounter) -> bool:
        self._same_type(other)
        changed = False
        for mine, theirs in ((self.p, other.p), (self.n, other.n)):
            for replica, total in theirs.items():
                if total > mine.get(replica, 0):
                    mine[replica] = total
                    changed = True
        return changed

    def copy(self) -> PNCounter:
        return PNCounter(self.p, self.n)

    def check_size(self, max_bytes: int) -> None:
        for side in (self.p, self.n):
            for replica, total in side.items():
                if total.bit_length() > 3 * max_bytes:  # fewer digits than bits / 3.3
                    digits = len(str(total))
                    if digits > max_bytes:
                        raise InvalidStateValue(
                            f"counter total of replica {replica!r} is {digits} digits, "
                            f"over the limit of {max_bytes}"
                        )

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, "p": dict(self.p), "n": dict(self.n)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PNCounter:
        data = _check_type_tag(data, cls.TYPE)
        sides = []
        for name in ("p", "n"):
            side = _field(data, name, Mapping, cls.TYPE)
            for replica, total in side.items():
                if not isinstance(replica, str) or not replica:
                    raise InvalidDelta(f"{cls.TYPE}.{name}: replica {replica!r} is not a str")
                if isinstance(total, bool) or not isinstance(total, int) or total < 0:
                    raise InvalidDelta(f"{cls.TYPE}.{name}.{replica}: {total!r} is not an int >= 0")
                if not _writable_int(total):
                    raise InvalidDelta(
                        f"{cls.TYPE}.{name}.{replica}: a total too large to write as JSON "
                        f"(over {sys.get_int_max_str_digits()} digits)"
                    )
            sides.append(side)
        return cls(sides[0], sides[1])


class _Context:
    """Causal context: the dots a replica has seen, as a version vector plus stray dots."""

    __slots__ = ("cloud", "vv")

    def __init__(self, vv: Mapping[str, int] | None = None, cloud: Iterable[Dot] = ()) -> None:
        self.vv: dict[str, int] = {r: seq for r, seq in (vv or {}).items() if seq}
        self.cloud: set[Dot] = set(cloud)
        self._compact()

    def __contains__(self, dot: Dot) -> bool:
        return dot[1] <= self.vv.get(dot[0], 0) or dot in self.cloud

    def size(self) -> int:
        return sum(self.vv.values()) + len(self.cloud)

    def dots(self) -> Iterator[Dot]:
        for replica, top in self.vv.items():
            for seq in range(1, top + 1):
                yield replica, seq
        yield from self.cloud

    def next_dot(self, replica: str) -> Dot:
        top = max((seq for r, seq in self.cloud if r == replica), default=0)
        return replica, max(self.vv.get(replica, 0), top) + 1

    def merge(self, other: _Context) -> None:
        for replica, seq in other.vv.items():
            if seq > self.vv.get(replica, 0):
                self.vv[replica] = seq
        self.cloud |= other.cloud
        self._compact()

    def _compact(self) -> None:
        for dot in sorted(self.cloud):
            replica, seq = dot
            top = self.vv.get(replica, 0)
            if seq == top + 1:
                self.vv[replica] = seq
            if seq <= self.vv.get(replica, 0):
                self.cloud.discard(dot)


def _dots_to_json(dots: Collection[Dot]) -> list[list[Any]]:
    if len(dots) == 1:  # the common case: an element added once
        ((replica, seq),) = dots
        return [[replica, seq]]
    return [[replica, seq] for replica, seq in sorted(dots)]


def _dots_from_json(raw: object, where: str) -> set[Dot]:
    if not isinstance(raw, list):
        raise InvalidDelta(f"{where}: expected a list of [replica, seq], got {raw!r}")
    dots: set[Dot] = set()
    for item in raw:
        if (
            not isinstance(item, list | tuple)
            or len(item) != 2
            or not isinstance(item[0], str)
            or not item[0]
            or isinstance(item[1], bool)
            or not isinstance(item[1], int)
            or item[1] < 1
        ):
            raise InvalidDelta(f"{where}: {item!r} is not a [replica, seq >= 1] dot")
        dots.add((item[0], item[1]))
    return dots


class ORSet(CRDT):
    """Add-wins observed-remove set of JSON values.

    Each add is tagged with a unique dot (replica, sequence); a remove drops only the dots
    it has seen, so an add concurrent with a remove survives. No tombstones per element:
    what was removed is known from the causal context.
    """

    TYPE = "orset"
    KIND = "set"

    def __init__(self) -> None:
        # canonical JSON text of each element -> the dots of the adds that keep it alive
        self._entries: dict[str, set[Dot]] = {}
        self._owner: dict[Dot, str] = {}  # reverse index, so a small delta merges fast
        self._context = _Context()

    @property
    def value(self) -> list[JSON]:
        """The elements, sorted by canonical JSON text."""
        return [_element(text) for text in sorted(self._entries)]

    def __contains__(self, element: object) -> bool:
        try:
            return canonical_json(element) in self._entries
        except InvalidStateValue:
            return False

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, element: JSON, replica: str) -> ORSet:
        """Add ``element`` as ``replica``; returns the delta. Raises `InvalidStateValue`."""
        delta = self.add_delta(element, replica)
        self.merge(delta)
        return delta

    def add_delta(self, element: JSON, replica: str) -> ORSet:
        """The delta `add` would make, leaving this set as it is (cost: the delta's)."""
        _check_replica(replica)
        text = canonical_json(element, what="element")
        dot = self._context.next_dot(replica)
        delta = ORSet()
        delta._entries[text] = {dot}
        delta._owner[dot] = text
        delta._context = _Context(cloud={*self._entries.get(text, ()), dot})
        return delta

    def remove(self, element: JSON) -> ORSet:
        """Remove the adds of ``element`` seen so far; returns the delta (empty if absent)."""
        delta = self.remove_delta(element)
        self.merge(delta)
        return delta

    def remove_delta(self, element: JSON) -> ORSet:
        """The delta `remove` would make, leaving this set as it is."""
        text = canonical_json(element, what="element")
        delta = ORSet()
        delta._context = _Context(cloud=self._entries.get(text, ()))
        return delta

    def merge(self, other: ORSet) -> bool:
        self._same_type(other)
        changed = False
        empty: set[Dot] = set()
        # An element of ours changes only if other has it or other's context covers one
        # of its dots; when that context is small (a delta), find those through the index.
        touched = set(other._entries)
        if other._context.size() < len(self._entries):
            touched.update(self._owner[d] for d in other._context.dots() if d in self._owner)
        else:
            touched.update(self._entries)
        for text in touched:
            mine = self._entries.get(text, empty)
            theirs = other._entries.get(text, empty)
            kept = (
                (mine & theirs)
                | {d for d in mine if d not in other._context}
                | {d for d in theirs if d not in self._context}
            )
            if kept == mine:
                continue
            changed = True
            for dot in mine - kept:
                del self._owner[dot]
            for dot in kept - mine:
                self._owner[dot] = text
            if kept:
                self._entries[text] = kept
            else:
                del self._entries[text]
        before = (dict(self._context.vv), set(self._context.cloud))
        self._context.merge(other._context)
        return changed or before != (self._context.vv, self._context.cloud)

    def check_size(self, max_bytes: int) -> None:
        for text in self._entries:
            size = _utf8_size(text)
            if size > max_bytes:
                raise _over_limit("element", size, max_bytes)

    def copy(self) -> ORSet:
        twin = ORSet()
        twin._entries = {text: set(dots) for text, dots in self._entries.items()}
        twin._owner = dict(self._owner)
        twin._context = _Context(self._context.vv, self._context.cloud)
        return twin

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "entries": [
                [_element(text), _dots_to_json(self._entries[text])]
                for text in sorted(self._entries)
            ],
            "context": {
                "vv": dict(sorted(self._context.vv.items())),
                "dots": _dots_to_json(self._context.cloud),
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ORSet:
        data = _check_type_tag(data, cls.TYPE)
        entries = _field(data, "entries", list, cls.TYPE)
        context = _field(data, "context", Mapping, cls.TYPE)
        vv = _field(context, "vv", Mapping, f"{cls.TYPE}.context")
        for replica, seq in vv.items():
            if (
                not isinstance(replica, str)
                or not replica
                or isinstance(seq, bool)
                or not isinstance(seq, int)
                or seq < 0
            ):
                raise InvalidDelta(f"{cls.TYPE}.context.vv: {replica!r}: {seq!r} is not a seq")
        result = cls()
        dots_field = _field(context, "dots", list, f"{cls.TYPE}.context")
        result._context = _Context(vv, _dots_from_json(dots_field, f"{cls.TYPE}.context.dots"))
        for index, entry in enumerate(entries):
            where = f"{cls.TYPE}.entries[{index}]"
            if not isinstance(entry, list | tuple) or len(entry) != 2:
                raise InvalidDelta(f"{where}: expected [element, dots], got {entry!r}")
            try:
                text = canonical_json(entry[0], what="element")
            except InvalidStateValue as exc:
                raise InvalidDelta(f"{where}: {exc}") from None
            dots = _dots_from_json(entry[1], where)
            if not dots:
                raise InvalidDelta(f"{where}: an element with no dots")
            if text in result._entries:
                raise InvalidDelta(f"{where}: element {text} appears twice")
            if any(dot not in result._context for dot in dots):
                raise InvalidDelta(f"{where}: a dot missing from the causal context")
            if any(dot in result._owner for dot in dots):
                raise InvalidDelta(f"{where}: a dot that tags another element too")
            result._entries[text] = dots
            result._owner.update(dict.fromkeys(dots, text))
        return result


_TYPES: dict[str, type[CRDT]] = {c.TYPE: c for c in (LWWRegister, PNCounter, ORSet)}


def crdt_from_dict(data: object) -> CRDT:
    """Parse any CRDT's dict form by its ``"type"``; raises `InvalidDelta`."""
    if not isinstance(data, Mapping):
        raise InvalidDelta(f"a CRDT must be a dict, got {type(data).__name__}")
    kind = _TYPES.get(data.get("type"))  # type: ignore[arg-type]
    if kind is None:
        raise InvalidDelta(f"unknown CRDT type {data.get('type')!r}; known: {sorted(_TYPES)}")
    return kind.from_dict(data)
