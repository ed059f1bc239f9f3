"""Learning from corrections and outcomes: labelled examples that sway later decisions.

Each correction ("request R should have gone to plugin P") and each outcome ("plugin P
did / did not handle R well") is kept as an example: the request's term vector and the
plugin. A new request is compared with every example (cosine similarity of term vectors,
through an inverted index); for each plugin the most similar example above
``threshold`` adjusts the plugin's score: a correction adds ``similarity x weight`` of the
best relevance in the decision, a success a little, a failure takes some away.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Example", "Learner"]


@dataclass(frozen=True, slots=True)
class Example:
    """A labelled request: its normalised term vector, the plugin and what kind of label."""

    request_id: str
    plugin: str
    kind: str  # "correction", "success" or "failure"
    vector: Mapping[str, float]


_STRENGTH = {"correction": 1.0, "success": 0.15, "failure": -0.3}


def _normalise(terms: Mapping[str, float]) -> dict[str, float]:
    # Words only: phrases would count the same evidence twice.
    vector = {term: weight for term, weight in terms.items() if " " not in term}
    norm = math.sqrt(sum(w * w for w in vector.values()))
    return {term: w / norm for term, w in vector.items()} if norm else {}


class Learner:
    """Nearest labelled examples for a request. Not thread-safe for writes."""

    __slots__ = ("_examples", "_postings", "threshold")

    def __init__(self, threshold: float = 0.35) -> None:
        self.threshold = threshold
        self._examples: list[Example] = []
        self._postings: dict[str, list[tuple[int, float]]] = {}

    def __len__(self) -> int:
        return len(self._examples)

    def add(self, request_id: str, plugin: str, kind: str, terms: Mapping[str, float]) -> None:
        """Add an example; a new correction of the same request replaces the old one."""
        if kind not in _STRENGTH:
            raise ValueError(f"kind must be one of {sorted(_STRENGTH)}, not {kind!r}")
        vector = _normalise(terms)
        if not vector:
            return
        if kind == "correction":
            for position, old in enumerate(self._examples):
                if old.request_id == request_id and old.kind == "correction":
                    self._examples[position] = Example(request_id, old.plugin, "stale", {})
        position = len(self._examples)
        self._examples.append(Example(request_id, plugin, kind, vector))
        for term, weight in vector.items():
            self._postings.setdefault(term, []).append((position, weight))

    def adjustments(self, terms: Mapping[str, float]) -> dict[str, tuple[float, str]]:
        """Plugin -> (signed strength x similarity, request id of the example) for the
        closest example per plugin and kind, above the threshold."""
        if not self._examples:
            return {}
        query = _normalise(terms)
        similarity: dict[int, float] = {}
        for term, weight in query.items():
            for position, value in self._postings.get(term, ()):
                similarity[position] = similarity.get(position, 0.0) + weight * value
        best: dict[tuple[str, str], tuple[float, str]] = {}
        for position, value in similarity.items():
            if value < self.threshold:
                continue
            example = self._examples[position]
            if example.kind == "stale":
                continue
            key = (example.plugin, example.kind)
            if key not in best or value > best[key][0]:
                best[key] = (value, example.request_id)
        out: dict[str, tuple[float, str]] = {}
        for (plugin, kind), (value, request_id) in sorted(best.items()):
            amount = _STRENGTH[kind] * value
            previous = out.get(plugin)
            out[plugin] = (previous[0] + amount, previous[1]) if previous else (amount, request_id)
        return out
