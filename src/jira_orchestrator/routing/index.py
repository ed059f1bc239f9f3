"""The inverted index over plugin profiles, built once, read by every decision.

Each (term, document) pair holds its whole BM25F contribution, computed at build time:
``idf(term) * tf / (k1 + tf)``, where ``tf`` sums the term's count in each field times
the field's weight, over the field's length relative to its average (``b``). Routing a
request is then a sum of dictionary lookups over its terms. Plugins' meta fields form
one collection (idf over plugins), components another (idf over components).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from jira_orchestrator.routing.profiles import ComponentDoc, FieldWeights, PluginProfile

__all__ = ["ProfileIndex"]

_K1 = 1.2
_B = 0.75
_POSTINGS_CAP = 64
_META_CAP = 256


@dataclass(frozen=True, slots=True)
class _Collection:
    postings: dict[str, tuple[tuple[int, float], ...]]
    size: int


@dataclass(frozen=True, slots=True)
class _ComplexCollection:
    postings: dict[str, tuple[tuple[int, complex], ...]]
    size: int


_FORMAT = 1


def _pack(code: str, values: list[int] | list[float]) -> bytes:
    return array(code, values).tobytes()


def _unpack(code: str, data: bytes) -> array[Any]:
    values = array(code)
    values.frombytes(data)
    return values


class _Saved(msgspec.Struct, frozen=True):
    """A built index as stored: the profiles and both collections' postings, each term's
    as packed columns (positions as ``array('l')``, values as ``array('d')``; a complex
    value as its real and imaginary parts)."""

    format: int
    profiles: list[PluginProfile]
    meta: dict[str, tuple[bytes, bytes]]
    meta_size: int
    components: dict[str, tuple[bytes, bytes, bytes]]
    component_size: int


def _build(
    docs: Sequence[Mapping[str, Mapping[str, int]]],
    lengths: Sequence[Mapping[str, int]],
    weights: Mapping[str, float],
    cap: int = 0,
) -> _Collection:
    count = len(docs)
    averages = {
        name: max(1.0, sum(length.get(name, 0) for length in lengths) / max(count, 1))
        for name in weights
    }
    frequency: dict[str, int] = {}
    for doc in docs:
        seen: set[str] = set()
        for bag in doc.values():
            seen.update(bag)
        for term in seen:
            frequency[term] = frequency.get(term, 0) + 1
    postings: dict[str, list[tuple[int, float]]] = {}
    for position, (doc, length) in enumerate(zip(docs, lengths, strict=True)):
        combined: dict[str, float] = {}
        for name, bag in doc.items():
            weight = weights.get(name, 0.0)
            if not weight:
                continue
            norm = 1 - _B + _B * length.get(name, 0) / averages[name]
            for term, tf in bag.items():
                combined[term] = combined.get(term, 0.0) + weight * tf / norm
        for term, weighted in combined.items():
            df = frequency[term]
            idf = math.log(1 + (count - df + 0.5) / (df + 0.5))
            postings.setdefault(term, []).append((position, idf * weighted / (_K1 + weighted)))
    if cap:
        # Impact-ordered pruning: a very common term adds little to any one document,
        # and scanning all its postings costs more than the ranking it changes.
        for entries in postings.values():
            if len(entries) > cap:
                entries.sort(key=lambda entry: (-entry[1], entry[0]))
                del entries[cap:]
    # Tuples of numbers are untracked by the garbage collector after its first pass, so a
    # large index does not make every full collection (and the decision it lands in) slow.
    frozen = {term: tuple(entries) for term, entries in postings.items()}
    return _Collection(postings=frozen, size=count)


class ProfileIndex:
    """Plugin profiles indexed for scoring. Immutable once built; safe to share."""

    __slots__ = ("_components", "_meta", "component_owner", "components", "profiles")

    def __init__(self, profiles: Iterable[PluginProfile], weights: FieldWeights) -> None:
        self.profiles: tuple[PluginProfile, ...] = tuple(sorted(profiles, key=lambda p: p.name))
        self._meta = _build(
            [p.meta for p in self.profiles],
            [p.meta_lengths for p in self.profiles],
            {
                "name": weights.name,
                "keywords": weights.keywords,
                "capabilities": weights.capabilities,
                "description": weights.description,
            },
            cap=_META_CAP,
        )
        self._set_components()
        built = _build(
            [c.fields for c in self.components],
            [c.lengths for c in self.components],
            {
                "name": weights.component_name,
                "keywords": weights.component_keywords,
                "description": weights.component_description,
                "body": weights.component_body,
            },
            cap=_POSTINGS_CAP,
        )
        self._components = _ComplexCollection(
            postings={
                term: tuple(
                    (position, complex(value, 0.0 if " " in term else 1.0))
                    for position, value in entries
                )
                for term, entries in built.postings.items()
            },
            size=built.size,
        )

    def _set_components(self) -> None:
        """Every plugin's components in one sequence, with the position of their plugin."""
        self.component_owner: tuple[int, ...] = tuple(
            position for position, profile in enumerate(self.profiles) for _ in profile.components
        )
        self.components: tuple[ComponentDoc, ...] = tuple(
            component for profile in self.profiles for component in profile.components
        )

    def __len__(self) -> int:
        return len(self.profiles)

    def dumps(self) -> bytes:
        """The built index as bytes (MessagePack), for `loads` to read back without
        building it again."""
        saved = _Saved(
            format=_FORMAT,
            profiles=list(self.profiles),
            meta={
                term: (_pack("l", [p for p, _ in entries]), _pack("d", [v for _, v in entries]))
                for term, entries in self._meta.postings.items()
            },
            meta_size=self._meta.size,
            components={
                term: (
                    _pack("l", [p for p, _ in entries]),
                    _pack("d", [v.real for _, v in entries]),
                    _pack("d", [v.imag for _, v in entries]),
                )
                for term, entries in self._components.postings.items()
            },
            component_size=self._components.size,
        )
        return msgspec.msgpack.encode(saved)

    @classmethod
    def loads(cls, data: bytes) -> ProfileIndex:
        """An index `dumps` wrote. Raises ``ValueError`` for anything else (only data is
        read: no code runs, whoever wrote the bytes)."""
        try:
            saved = msgspec.msgpack.decode(data, type=_Saved)
        except msgspec.DecodeError as exc:
            raise ValueError(f"not a saved routing index: {exc}") from None
        if saved.format != _FORMAT:
            raise ValueError(f"saved routing index format {saved.format}, expected {_FORMAT}")
        index = cls.__new__(cls)
        index.profiles = tuple(saved.profiles)
        index._set_components()
        index._meta = _Collection(
            postings={
                term: tuple(zip(_unpack("l", positions), _unpack("d", values), strict=True))
                for term, (positions, values) in saved.meta.items()
            },
            size=saved.meta_size,
        )
        index._components = _ComplexCollection(
            postings={
                term: tuple(
                    zip(
                        _unpack("l", positions),
                        map(complex, _unpack("d", reals), _unpack("d", imags)),
                        strict=True,
                    )
                )
                for term, (positions, reals, imags) in saved.components.items()
            },
            size=saved.component_size,
        )
        return index

    def meta_scores(
        self, terms: Mapping[str, float], plugins: Container[int] | None = None
    ) -> dict[int, float]:
        """Plugin position -> BM25F score of its meta fields (of ``plugins`` only, if given)."""
        scores: dict[int, float] = {}
        postings = self._meta.postings
        for term, weight in terms.items():
            for position, value in postings.get(term, ()):
                scores[position] = scores.get(position, 0.0) + weight * value
        if plugins is None:
            return scores
        return {position: value for position, value in scores.items() if position in plugins}

    def component_scores(
        self,
        terms: Mapping[str, float],
        coordination: float = 0.0,
        plugins: Container[int] | None = None,
    ) -> dict[int, float]:
        """Component position -> BM25F score (of the components of ``plugins`` only, if
        given: cheaper when a few plugins are compared).

        With ``coordination`` > 0 a score is multiplied by the share of the query's words
        (not phrases, by weight) the component holds, to that power: a component that
        shares one rare word with the request counts less than one sharing several.
        """
        # Component postings are complex numbers: the real part is the term's score, the
        # imaginary part 1 for a word (0 for a phrase), so one addition per posting sums
        # both the score and the weight of the words matched.
        sums: dict[int, complex] = {}
        get = sums.get
        postings = self._components.postings
        owner = self.component_owner
        total = 0.0
        for term, weight in terms.items():
            if " " not in term:
                total += weight
            if plugins is None:
                for position, value in postings.get(term, ()):
                    sums[position] = get(position, 0j) + weight * value
            else:
                for position, value in postings.get(term, ()):
                    if owner[position] in plugins:
                        sums[position] = get(position, 0j) + weight * value
        if coordination <= 0 or total <= 0:
            return {position: value.real for position, value in sums.items()}
        return {
            position: value.real * (value.imag / total) ** coordination
            for position, value in sums.items()
        }

    def known(self, term: str) -> bool:
        """Whether any plugin or component holds ``term``."""
        return term in self._meta.postings or term in self._components.postings

    def size_estimate(self) -> int:
        """Postings held, a proxy for memory (each is a tuple of an int and a float)."""
        return sum(len(p) for p in self._meta.postings.values()) + sum(
            len(p) for p in self._components.postings.values()
        )
