"""Learning from corrections and outcomes: labelled examples that sway later decisions.

Each correction ("request R should have gone to plugin P") and each outcome ("plugin P
did / did not handle R well") is kept as an example: the request's term vector and the
plugin. A new request is compared with every example (cosine similarity of term vectors,
through an inverted index); for each plugin the most similar example above
``threshold`` adjusts the plugin's score: a correction adds ``similarity x weight`` of the
best relevance in the decision, a success a little, a failure takes some away.

With sentence embeddings (the router's semantic model, when it has one), an example also
carries the embedding of its request, and its similarity to a new request is the larger
of the two: the term cosine, and the embedding cosine rescaled so that ``semantic_floor``
(the cosine of unrelated requests) is 0 and 1 is 1. Requests written by different people
share few words but much meaning: the embedding reaches the similar ones the words miss.
"""

from __future__ import annotations

import math
import operator
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

__all__ = ["MAX_OUTCOMES", "Example", "Learner"]

MAX_OUTCOMES = 250
"""Distinct outcomes a `Learner` keeps (the most recent); corrections are all kept."""


@dataclass(frozen=True, slots=True)
class Example:
    """A labelled request: its normalised term vector, the plugin and what kind of label."""

    request_id: str
    plugin: str
    kind: str  # "correction", "success" or "failure"
    vector: Mapping[str, float]
    embedding: tuple[float, ...] | None = None
    """The unit embedding of the request, when the router has a semantic model."""
    text: str = ""
    """What the request said (to embed it when a semantic model comes later)."""


_STRENGTH = {"correction": 1.0, "success": 0.15, "failure": -0.3}
SEMANTIC_FLOOR = 0.3
"""The embedding cosine (all-MiniLM-L6-v2) that counts as no likeness: about one pair in
a hundred of the labelled set's requests for different plugins is closer (see
docs/routing.md); with the threshold of 0.35 an example sways a request from a cosine of
0.545."""


def _unit(vector: Sequence[float]) -> tuple[float, ...]:
    norm = math.sqrt(math.fsum(x * x for x in vector))
    return tuple(x / norm for x in vector) if norm else tuple(0.0 for _ in vector)


def _normalise(terms: Mapping[str, float]) -> dict[str, float]:
    # Words only: phrases would count the same evidence twice.
    vector = {term: weight for term, weight in terms.items() if " " not in term}
    norm = math.sqrt(sum(w * w for w in vector.values()))
    return {term: w / norm for term, w in vector.items()} if norm else {}


class Learner:
    """Nearest labelled examples for a request. Not thread-safe for writes.

    Memory and the cost of `adjustments` stay flat however many outcomes are recorded: an
    outcome identical to one already kept (same plugin, kind and term vector) is the same
    example (only the closest example per plugin and kind counts, so a copy changes
    nothing), and only the most recent ``max_outcomes`` distinct outcomes are kept.
    Corrections, written by people and what the router learns most from, are all kept.
    """

    __slots__ = (
        "_embedded",
        "_examples",
        "_next",
        "_outcomes",
        "_postings",
        "max_outcomes",
        "semantic_floor",
        "threshold",
    )

    def __init__(
        self,
        threshold: float = 0.35,
        semantic_floor: float = SEMANTIC_FLOOR,
        max_outcomes: int = MAX_OUTCOMES,
    ) -> None:
        if not isinstance(max_outcomes, int) or max_outcomes < 1:
            raise ValueError(f"max_outcomes must be a whole number >= 1, not {max_outcomes!r}")
        self.threshold = threshold
        self.semantic_floor = semantic_floor
        """The embedding cosine that counts as no similarity at all."""
        self.max_outcomes = max_outcomes
        self._examples: dict[int, Example] = {}
        self._postings: dict[str, dict[int, float]] = {}
        self._embedded: dict[int, None] = {}  # numbers of the examples with an embedding
        # Outcomes kept, oldest first: (plugin, kind, vector) -> the example's number.
        self._outcomes: OrderedDict[tuple[str, str, tuple[tuple[str, float], ...]], int] = (
            OrderedDict()
        )
        self._next = 0

    def __len__(self) -> int:
        return len(self._examples)

    def add(
        self,
        request_id: str,
        plugin: str,
        kind: str,
        terms: Mapping[str, float],
        embedding: Sequence[float] | None = None,
        text: str = "",
    ) -> None:
        """Add an example; a new correction of the same request replaces the old one.
        ``embedding`` is the request's sentence embedding, if any; ``text`` what it said
        (`embed_missing` embeds it later)."""
        if kind not in _STRENGTH:
            raise ValueError(f"kind must be one of {sorted(_STRENGTH)}, not {kind!r}")
        vector = _normalise(terms)
        if not vector:
            return
        same = None
        if kind == "correction":
            stale = [
                number
                for number, old in self._examples.items()
                if old.request_id == request_id and old.kind == "correction"
            ]
            for number in stale:
                self._remove(number)
        else:
            same = (plugin, kind, tuple(sorted(vector.items())))
            if same in self._outcomes:
                self._outcomes.move_to_end(same)  # seen again: now among the most recent
                return
        number = self._next
        self._next += 1
        unit = _unit(embedding) if embedding is not None else None
        self._examples[number] = Example(request_id, plugin, kind, vector, unit, text)
        if unit is not None:
            self._embedded[number] = None
        for term, weight in vector.items():
            self._postings.setdefault(term, {})[number] = weight
        if same is not None:
            self._outcomes[same] = number
            while len(self._outcomes) > self.max_outcomes:
                _, oldest = self._outcomes.popitem(last=False)
                self._remove(oldest)

    def _remove(self, number: int) -> None:
        example = self._examples.pop(number)
        self._embedded.pop(number, None)
        for term in example.vector:
            postings = self._postings[term]
            del postings[number]
            if not postings:
                del self._postings[term]

    def embed_missing(self, embed: Callable[[Sequence[str]], Sequence[Sequence[float]]]) -> int:
        """Embed (in one call) the examples that have a text but no embedding yet, as when
        a semantic model is given to a router that loaded its examples; how many."""
        missing = [
            number
            for number, example in self._examples.items()
            if example.embedding is None and example.text
        ]
        if not missing:
            return 0
        vectors = embed([self._examples[number].text for number in missing])
        for number, vector in zip(missing, vectors, strict=True):
            self._examples[number] = replace(self._examples[number], embedding=_unit(vector))
            self._embedded[number] = None
        self._embedded = dict.fromkeys(sorted(self._embedded))
        return len(missing)

    def adjustments(
        self, terms: Mapping[str, float], embedding: Sequence[float] | None = None
    ) -> dict[str, tuple[float, str]]:
        """Plugin -> (signed strength x similarity, request id of the example) for the
        closest example per plugin and kind, above the threshold. With ``embedding`` (the
        request's), examples that have one are compared by meaning too."""
        if not self._examples:
            return {}
        query = _normalise(terms)
        similarity: dict[int, float] = {}
        for term, weight in query.items():
            for number, value in self._postings.get(term, {}).items():
                similarity[number] = similarity.get(number, 0.0) + weight * value
        examples = self._examples
        if embedding is not None and self._embedded:
            unit = _unit(embedding)
            floor = self.semantic_floor
            for number in self._embedded:
                stored = examples[number].embedding
                if stored is None:
                    continue
                cosine = math.fsum(map(operator.mul, unit, stored))
                rescaled = (cosine - floor) / (1 - floor)
                if rescaled > similarity.get(number, 0.0):
                    similarity[number] = rescaled
        best: dict[tuple[str, str], tuple[float, str]] = {}
        for number, value in similarity.items():
            if value < self.threshold:
                continue
            example = examples[number]
            key = (example.plugin, example.kind)
            if key not in best or value > best[key][0]:
                best[key] = (value, example.request_id)
        out: dict[str, tuple[float, str]] = {}
        for (plugin, kind), (value, request_id) in sorted(best.items()):
            amount = _STRENGTH[kind] * value
            previous = out.get(plugin)
            out[plugin] = (previous[0] + amount, previous[1]) if previous else (amount, request_id)
        return out
