"""A plain BM25 ranking over the same profiles, as a yardstick for the router.

One document per plugin holding every word of its profile (meta fields, and each
component's name, tags, description and body start), no field weights, no phrases, no
file technologies, no vocabulary: Okapi BM25 with k1 = 1.2 and b = 0.75 over the same
tokens the router uses. The query is the request's text and file paths.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from jira_orchestrator.plugins.text import words
from jira_orchestrator.routing.profiles import PluginProfile
from jira_orchestrator.routing.request import RoutingRequest

__all__ = ["BM25Baseline"]


class BM25Baseline:
    """Okapi BM25 over one bag of words per plugin."""

    def __init__(self, profiles: Iterable[PluginProfile], k1: float = 1.2, b: float = 0.75) -> None:
        self.names: list[str] = []
        docs: list[dict[str, int]] = []
        for profile in sorted(profiles, key=lambda p: p.name):
            bag: dict[str, int] = {}
            bags = [*profile.meta.values()]
            bags += [field for c in profile.components for field in c.fields.values()]
            for source in bags:
                for term, count in source.items():
                    if " " not in term:  # words only: plain BM25 has no phrases
                        bag[term] = bag.get(term, 0) + count
            self.names.append(profile.name)
            docs.append(bag)
        count = len(docs)
        lengths = [sum(doc.values()) for doc in docs]
        average = max(1.0, sum(lengths) / max(count, 1))
        frequency: dict[str, int] = {}
        for doc in docs:
            for term in doc:
                frequency[term] = frequency.get(term, 0) + 1
        self._postings: dict[str, list[tuple[int, float]]] = {}
        for position, (doc, length) in enumerate(zip(docs, lengths, strict=True)):
            norm = k1 * (1 - b + b * length / average)
            for term, tf in doc.items():
                df = frequency[term]
                idf = math.log(1 + (count - df + 0.5) / (df + 0.5))
                self._postings.setdefault(term, []).append(
                    (position, idf * tf * (k1 + 1) / (tf + norm))
                )

    def rank(self, request: RoutingRequest | str) -> list[tuple[str, float]]:
        """Every plugin with its BM25 score, best first (ties by name)."""
        text = request if isinstance(request, str) else " ".join([request.all_text, *request.files])
        scores = [0.0] * len(self.names)
        for term in words(text):
            for position, value in self._postings.get(term, ()):
                scores[position] += value
        ranked = sorted(zip(self.names, scores, strict=True), key=lambda item: (-item[1], item[0]))
        return [(name, round(score, 4)) for name, score in ranked]
