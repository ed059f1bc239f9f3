"""Every routing decision on the labelled and unseen sets, dumped to compare two versions.

Run: ``.venv/bin/python bench/dump_decisions.py OUT.jsonl`` before a change that must not
move any decision (a refactor), then ``.venv/bin/python bench/dump_decisions.py
--compare OUT.jsonl`` after it: it routes every request again and names each one whose
decision differs (primary, fallbacks, candidates, scores, confidence, strategy, plan),
exiting 1 if any does. It runs with ``PYTHONHASHSEED=0`` (it restarts itself so): the
order in which Python iterates a set of strings changes the last bit of a few sums.

Each request is routed four ways over the corpus: words alone; with a triage threshold
(so the candidates are filled in); after corrections (the labelled set recorded as
corrections, so the learned points are exercised); and with a stand-in for the semantic
blend (a deterministic similarity from shared letters, so the blend's arithmetic is
checked without a model).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jira_orchestrator.plugins import discover_plugins
from jira_orchestrator.routing import Router, RoutingDecision, load_labelled

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(
    os.environ.get("JIRA_ORCHESTRATOR_CORPUS", ROOT.parent / "shared" / "corpus" / "claude-plugins")
)
DATA = ROOT / "tests" / "data"
SETS = (
    "labelled",
    "holdout",
    "blind",
    "independent",
    "fresh",
    "validation",
    "check",
    "confirm",
)


class _Letters:
    """A stand-in embedding model: similarity is the share of letter pairs in common."""

    weight = 0.7

    def __init__(self, router: Router) -> None:
        self._pairs = {
            profile.name: _pairs(f"{profile.name} {profile.description}")
            for profile in router.index.profiles
        }

    def similarities(self, text: str, plugins: Sequence[str]) -> dict[str, tuple[float, str]]:
        mine = _pairs(text)
        out = {}
        for plugin in plugins:
            theirs = self._pairs.get(plugin, set())
            union = len(mine | theirs) or 1
            out[plugin] = (len(mine & theirs) / union, "the plugin's description")
        return out


def _pairs(text: str) -> set[str]:
    lowered = text.lower()
    return {lowered[i : i + 2] for i in range(len(lowered) - 1)}


def _summary(decision: RoutingDecision) -> dict[str, Any]:
    plan = decision.collaboration_plan
    return {
        "primary": decision.primary_plugin,
        "fallbacks": list(decision.fallback_plugins),
        "strategy": decision.execution_strategy,
        "confidence": repr(decision.confidence),
        "candidates": [s.plugin for s in decision.candidates],
        "scores": [
            [
                s.plugin,
                repr(s.score),
                repr(s.relevance),
                repr(s.capability),
                repr(s.file_context),
                repr(s.learned),
                repr(s.semantic),
                repr(s.specificity),
                list(s.evidence),
                list(s.components),
            ]
            for s in decision.scores
        ],
        "plan": (
            [[p.id, p.plugin, p.domain, list(p.depends_on), list(p.agents)] for p in plan.phases]
            if plan
            else None
        ),
        "agents": [[a.qualified_name, repr(a.score)] for a in decision.recommended_agents],
        "domains": list(decision.domains),
        "technologies": list(decision.technologies),
        "complexity": decision.complexity,
    }


def dump() -> list[dict[str, Any]]:
    """Every decision, in a fixed order."""
    plugins = discover_plugins(CORPUS).plugins
    plain = Router(plugins)
    triage = Router(plugins, min_confidence=0.9)
    learned = Router(plugins)
    semantic = Router(plugins)
    semantic.semantic = _Letters(semantic)
    sets = {name: load_labelled(DATA / f"routing_{name}.jsonl") for name in SETS}
    for example in sets["labelled"]:
        learned.route(example.request)
        learned.record_correction(example.request.request_id, example.expected)
    rows: list[dict[str, Any]] = []
    for name, examples in sets.items():
        for example in examples:
            request = example.request
            rows.append(
                {
                    "set": name,
                    "id": request.request_id,
                    "words": _summary(plain.route(request)),
                    "triage": _summary(triage.route(request)),
                    "learned": _summary(learned.route(request)) if name != "labelled" else None,
                    "semantic": _summary(semantic.route(request)),
                }
            )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    if os.environ.get("PYTHONHASHSEED") != "0":
        # Sets of strings iterate in an order that changes with the hash seed, and with
        # it the order in which a few scores are summed (the last bit of a float).
        seeded = {**os.environ, "PYTHONHASHSEED": "0"}
        os.execve(sys.executable, [sys.executable, *sys.argv], seeded)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="where to write the decisions, or what to compare with")
    parser.add_argument("--compare", action="store_true", help="compare with FILE")
    options = parser.parse_args(argv)
    rows = dump()
    path = Path(options.file)
    if not options.compare:
        path.write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))
        print(f"{len(rows)} requests written to {path}")
        return 0
    before = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if len(before) != len(rows):
        print(f"{len(before)} requests before, {len(rows)} now", file=sys.stderr)
        return 1
    differ = 0
    for old, new in zip(before, rows, strict=True):
        new = json.loads(json.dumps(new, sort_keys=True))
        if old != new:
            differ += 1
            keys = [k for k in new if old.get(k) != new[k]]
            print(f"{new['set']} {new['id']}: differs in {', '.join(keys)}", file=sys.stderr)
    print(f"{len(rows)} requests compared, {differ} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
