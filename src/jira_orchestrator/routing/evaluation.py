"""Accuracy on a labelled set: top-1 and top-3, for the router or any ranking.

A labelled set is JSON Lines: ``id``, ``text``, optional ``files``, and ``expected``
(the plugin that should handle it). ``tests/data/routing_labelled.jsonl`` is ours;
``bench/bench_routing.py`` prints the figures beside a plain BM25 ranking.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jira_orchestrator.routing.errors import InvalidRequest
from jira_orchestrator.routing.request import RoutingRequest

__all__ = ["Evaluation", "LabelledExample", "evaluate", "load_labelled"]


@dataclass(frozen=True, slots=True)
class LabelledExample:
    """A request and the plugin that should handle it."""

    request: RoutingRequest
    expected: str
    style: str = ""


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Top-1 and top-3 accuracy, with the misses (id, expected, ranking head)."""

    total: int
    top1: int
    top3: int
    misses: tuple[tuple[str, str, tuple[str, ...]], ...] = field(default=())

    @property
    def top1_accuracy(self) -> float:
        """Share of requests whose first plugin is the expected one."""
        return self.top1 / self.total if self.total else 0.0

    @property
    def top3_accuracy(self) -> float:
        """Share of requests with the expected plugin among the first three."""
        return self.top3 / self.total if self.total else 0.0


def load_labelled(path: str | os.PathLike[str]) -> list[LabelledExample]:
    """Read a labelled set; raises `InvalidRequest` naming the file and line."""
    examples: list[LabelledExample] = []
    text = Path(path).read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidRequest(where, f"invalid JSON: {exc.msg}") from None
        expected = data.get("expected") if isinstance(data, dict) else None
        if not isinstance(expected, str):
            raise InvalidRequest(where, "needs an 'expected' plugin id")
        request = RoutingRequest.from_mapping(data, where=where)
        examples.append(LabelledExample(request, expected, str(data.get("style", ""))))
    return examples


def evaluate(
    rank: Callable[[RoutingRequest], Sequence[str]], examples: Sequence[LabelledExample]
) -> Evaluation:
    """Accuracy of ``rank`` (a request -> plugin ids, best first) on ``examples``."""
    top1 = top3 = 0
    misses: list[tuple[str, str, tuple[str, ...]]] = []
    for example in examples:
        ranking = list(rank(example.request))
        if ranking[:1] == [example.expected]:
            top1 += 1
        else:
            misses.append((example.request.request_id, example.expected, tuple(ranking[:3])))
        if example.expected in ranking[:3]:
            top3 += 1
    return Evaluation(len(examples), top1, top3, tuple(misses))
