"""The router on the real corpus: accuracy on the labelled set, beside plain BM25.

The labelled set (tests/data/routing_labelled.jsonl) holds realistic requests, most of
them phrased as symptoms rather than with the plugin's keywords; the method was developed
on it and the thresholds are the issue's targets. The held-out set
(tests/data/routing_holdout.jsonl) was written after the method was fixed.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from jira_orchestrator.routing import (
    BM25Baseline,
    LabelledExample,
    Router,
    RoutingRequest,
    evaluate,
    load_labelled,
)

from .conftest import (
    BLIND,
    CHECK,
    CONFIRM,
    FRESH,
    HOLDOUT,
    INDEPENDENT,
    LABELLED,
    VALIDATION,
)


@pytest.fixture(scope="module")
def examples(corpus_router: Router) -> list[LabelledExample]:
    loaded = load_labelled(LABELLED)
    assert len(loaded) >= 100
    return loaded


def test_the_labelled_set_covers_the_corpus(
    corpus_router: Router, examples: list[LabelledExample]
) -> None:
    expected = Counter(example.expected for example in examples)
    assert set(expected) == set(corpus_router.plugins)  # every plugin, and only real ones
    styles = Counter(example.style for example in examples)
    assert styles["symptoms"] >= len(examples) / 2


def test_accuracy_meets_the_targets_and_beats_bm25(
    corpus_router: Router,
    examples: list[LabelledExample],
) -> None:
    ours = evaluate(lambda r: [s.plugin for s in corpus_router.route(r).scores], examples)
    baseline = BM25Baseline(corpus_router.index.profiles)
    bm25 = evaluate(lambda r: [name for name, _ in baseline.rank(r)], examples)
    assert ours.top1_accuracy >= 0.95, ours.misses
    assert ours.top3_accuracy >= 0.99, ours.misses
    assert ours.top1_accuracy > bm25.top1_accuracy + 0.1


def test_held_out_requests_route_well_too(corpus_router: Router) -> None:
    # Written after the method was fixed and never tuned on: 90.0% / 95.0% measured.
    examples = load_labelled(HOLDOUT)
    ours = evaluate(lambda r: [s.plugin for s in corpus_router.route(r).scores], examples)
    baseline = BM25Baseline(corpus_router.index.profiles)
    bm25 = evaluate(lambda r: [name for name, _ in baseline.rank(r)], examples)
    assert ours.top1_accuracy >= 0.85, ours.misses
    assert ours.top3_accuracy >= 0.925, ours.misses
    assert ours.top1_accuracy >= bm25.top1_accuracy


def test_the_blind_set_routes_well_and_covers_the_corpus(corpus_router: Router) -> None:
    # Written before any routing output was looked at, never tuned on: 86.5% top-1 and
    # 94.6% top-3 measured (83.8% and 91.9% before specificity); the floors leave room.
    examples = load_labelled(BLIND)
    assert len(examples) >= 60
    assert {e.expected for e in examples} == set(corpus_router.plugins)
    assert Counter(e.style for e in examples)["symptoms"] >= len(examples) / 2
    ours = evaluate(lambda r: [s.plugin for s in corpus_router.route(r).scores], examples)
    baseline = BM25Baseline(corpus_router.index.profiles)
    bm25 = evaluate(lambda r: [name for name, _ in baseline.rank(r)], examples)
    assert ours.top1_accuracy >= 0.80, ours.misses
    assert ours.top3_accuracy >= 0.89, ours.misses
    assert ours.top1_accuracy > bm25.top1_accuracy + 0.1


@pytest.mark.parametrize(
    ("path", "size", "top1", "top3"),
    [
        # Written from the corpus alone by authors who never saw the router, its code, its
        # output or the other sets. Measured: independent 83.8% / 93.3%, fresh 86.7% /
        # 96.7%, validation 84.8% / 94.3%, check 86.7% / 97.1%, confirm 84.8% / 97.1%;
        # the floors leave room for two or three requests either way.
        (INDEPENDENT, 100, 0.81, 0.90),
        (FRESH, 85, 0.83, 0.93),
        (VALIDATION, 100, 0.82, 0.91),
        (CHECK, 100, 0.84, 0.94),
        (CONFIRM, 100, 0.82, 0.94),
    ],
    ids=["independent", "fresh", "validation", "check", "confirm"],
)
def test_sets_written_without_the_router_route_well(
    corpus_router: Router, path: Path, size: int, top1: float, top3: float
) -> None:
    examples = load_labelled(path)
    assert len(examples) >= size
    assert {e.expected for e in examples} == set(corpus_router.plugins)
    assert Counter(e.style for e in examples)["symptoms"] >= len(examples) / 2
    ours = evaluate(lambda r: [s.plugin for s in corpus_router.route(r).scores], examples)
    baseline = BM25Baseline(corpus_router.index.profiles)
    bm25 = evaluate(lambda r: [name for name, _ in baseline.rank(r)], examples)
    assert ours.top1_accuracy >= top1, ours.misses
    assert ours.top3_accuracy >= top3, ours.misses
    assert ours.top1_accuracy > bm25.top1_accuracy + 0.1


def test_every_decision_explains_itself(corpus_router: Router) -> None:
    decision = corpus_router.route(
        "The orders grid freezes on every keystroke", files=["src/Web/Pages/Orders.razor"]
    )
    assert decision.primary_plugin == "dotnet-blazor"
    # Fallbacks are plugins relevant in their own right (at least a fifth of the
    # primary's score), not whoever shares a word with the request.
    assert 1 <= len(decision.fallback_plugins) <= 3
    assert "mui-expert" in decision.fallback_plugins  # another UI component library
    assert "lobbi-engagement-toolkit" not in decision.fallback_plugins
    assert decision.recommended_agents
    assert all(a.plugin == "dotnet-blazor" for a in decision.recommended_agents)
    top = decision.scores[0]
    assert top.evidence
    assert top.components
    assert "blazor" in decision.technologies
    assert "goes to dotnet-blazor" in decision.explain()


def test_a_jira_issue_routes_like_its_text(corpus_router: Router) -> None:
    issue = {
        "key": "OPS-7",
        "fields": {
            "summary": "Chart upgrade leaves pods crash-looping on EKS",
            "description": {
                "type": "doc",
                "version": 1,
                "content": [
                    {
                        "type": "paragraph",
                        "content": [{"type": "text", "text": "Keycloak realm unreachable."}],
                    }
                ],
            },
            "labels": ["helm"],
        },
    }
    decision = corpus_router.route(RoutingRequest.from_jira(issue))
    assert decision.request_id == "OPS-7"
    assert decision.primary_plugin == "aws-eks-helm-keycloak"


def test_plugins_without_agents_still_route(corpus_router: Router) -> None:
    decision = corpus_router.route("Design the TRID disclosure timing checks for our lender")
    assert decision.primary_plugin == "lobbi-mortgage-domain"
    assert decision.recommended_agents == ()


def test_decisions_are_deterministic(corpus_router: Router) -> None:
    first = corpus_router.route("Set up a pipeline for the release")
    second = corpus_router.route("Set up a pipeline for the release")
    assert [s.plugin for s in first.scores] == [s.plugin for s in second.scores]
    assert [s.score for s in first.scores] == [s.score for s in second.scores]


def test_labelled_file_is_where_the_docs_say(corpus: Path) -> None:
    assert LABELLED.name == "routing_labelled.jsonl"
    assert LABELLED.is_file()
