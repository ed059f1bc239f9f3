"""The router blending embedding similarity into its scores, with toy encoders (the real
model's tests are in test_semantic_model.py, run by `make test-semantic`)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from jira_orchestrator.cli.route import route
from jira_orchestrator.routing import Router, RoutingRequest
from jira_orchestrator.routing.semantic import SemanticReranker

from .conftest import WritePlugin

# The toy model's three directions: documentation, infrastructure, anything else.
_AXES = (("readme", "guide", "documentation"), ("helm", "kubernetes", "chart"))


def toy(texts: Sequence[str]) -> list[list[float]]:
    """Embeds a text by which of the axes' words it holds."""
    return [[*(float(any(w in t.lower() for w in axis)) for axis in _AXES), 0.05] for t in texts]


TEXT = "New starters cannot follow the Helm chart guides"


def manuals(texts: Sequence[str]) -> list[list[float]]:
    """Reads TEXT as a documentation problem, as a real model would and words do not."""
    rows = toy(texts)
    return [[1.0, 0.0, 0.05] if t == TEXT else row for t, row in zip(texts, rows, strict=True)]


def recording() -> tuple[list[str], Callable[[Sequence[str]], list[list[float]]]]:
    """The toy encoder, and the list of every text it is given."""
    seen: list[str] = []

    def record(texts: Sequence[str]) -> list[list[float]]:
        seen.extend(texts)
        return toy(texts)

    return seen, record


def test_similarity_reorders_the_lexical_candidates(ecosystem: Path) -> None:
    router = Router.from_directory(ecosystem)
    text = TEXT
    lexical = router.route(text)
    assert lexical.primary_plugin == "cloud-ops"  # two words of its own against one
    assert lexical.score_of("doc-scribe") is not None
    assert all(s.semantic is None for s in lexical.scores)
    assert "semantic" not in lexical.scores[0].to_dict()

    router.semantic = SemanticReranker.from_router(router, manuals, weight=0.8)
    blended = router.route(text)
    assert blended.primary_plugin == "doc-scribe"
    top = blended.scores[0]
    assert top.semantic == pytest.approx(0.7 * 1 + 0.3 * 1, abs=0.01)
    assert any(line.startswith("semantic similarity") for line in top.evidence)
    assert top.to_dict()["semantic"] == round(top.semantic, 4)
    assert blended.fallback_plugins[0] == "cloud-ops"
    assert f"blended with semantic similarity {top.semantic:.2f}" in blended.explain()
    assert {s.plugin for s in blended.scores} == {s.plugin for s in lexical.scores}


def test_weight_zero_keeps_the_lexical_order(ecosystem: Path) -> None:
    router = Router.from_directory(ecosystem)
    text = TEXT
    lexical = [s.plugin for s in router.route(text).scores]
    router.semantic = SemanticReranker.from_router(router, manuals, weight=0.0)
    assert [s.plugin for s in router.route(text).scores] == lexical


def test_an_unavailable_plugin_gains_less_from_similarity(ecosystem: Path) -> None:
    text = TEXT
    states = {"doc-scribe": "half_open"}
    router = Router.from_directory(ecosystem, availability=states)
    router.semantic = SemanticReranker.from_router(router, manuals, weight=0.8)
    healthy = Router.from_directory(ecosystem)
    healthy.semantic = SemanticReranker.from_router(healthy, manuals, weight=0.8)
    half = router.route(text).score_of("doc-scribe")
    full = healthy.route(text).score_of("doc-scribe")
    assert half is not None
    assert full is not None
    assert half.score == pytest.approx(full.score / 2)


@pytest.mark.parametrize("weight", [-0.1, 1.5])
def test_a_weight_outside_0_1_is_refused(ecosystem: Path, weight: float) -> None:
    router = Router.from_directory(ecosystem)
    with pytest.raises(ValueError, match=r"semantic weight must be within 0\.\.1"):
        SemanticReranker.from_router(router, toy, weight=weight)


def test_a_plugin_is_embedded_as_its_description_and_each_component(ecosystem: Path) -> None:
    seen, record = recording()
    router = Router.from_directory(ecosystem)
    reranker = SemanticReranker.from_router(router, record)
    assert "api forge: Python backend services: REST endpoints, database models, caching" in seen
    assert "query tuner: Finds slow database queries and adds indexes and caching" in seen
    labels = [label for label, _ in reranker.items["api-forge"]]
    assert labels == ["the plugin's description", "agent endpoint-builder", "agent query-tuner"]
    found = reranker.similarities("a helm chart", ["cloud-ops", "api-forge", "unknown"])
    assert found["cloud-ops"][0] > found["api-forge"][0]
    assert found["unknown"] == (0.0, "")


@pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is not None,
    reason="the semantic extra is installed",
)
def test_cli_semantic_without_the_extra_says_how_to_install(ecosystem: Path) -> None:
    app = typer.Typer()
    app.command()(route)

    @app.callback()
    def _root() -> None:
        """Test root."""

    result = CliRunner().invoke(
        app, ["route", "Write a README", "--plugins", str(ecosystem), "--semantic"]
    )
    assert result.exit_code == 2
    assert "pip install 'jira-orchestrator[semantic]'" in result.stderr


def test_labels_and_components_are_read_with_the_text(ecosystem: Path) -> None:
    seen, record = recording()
    router = Router.from_directory(ecosystem)
    router.semantic = SemanticReranker.from_router(router, record)
    seen.clear()
    router.route(
        RoutingRequest.from_text("Fix the chart", labels=["docs"], components=["handbook"])
    )
    assert seen == ["Fix the chart docs handbook"]
    seen.clear()
    router.route(RoutingRequest.from_text("", files=["charts/api/Chart.yaml"]))
    assert seen == ["charts/api/Chart.yaml"]


def test_reranking_a_decision_gives_the_scores_the_router_blends(ecosystem: Path) -> None:
    # `rerank` is documented as the router's blend applied afterwards: the same scores in
    # the same order, a half-open plugin's availability and priorities included.
    availability = {"doc-scribe": "half_open"}
    plain = Router.from_directory(ecosystem, availability=availability)
    reranker = SemanticReranker.from_router(plain, manuals)
    blended = Router.from_directory(ecosystem, availability=availability)
    blended.semantic = reranker
    request = RoutingRequest.from_text(TEXT)
    expected = [(s.plugin, s.score) for s in blended.route(request).scores]
    found = reranker.rerank(plain.route(request))
    assert [name for name, _ in found] == [name for name, _ in expected]
    assert [score for _, score in found] == pytest.approx([score for _, score in expected])


def test_plugin_vectors_are_read_back_from_the_cache(ecosystem: Path, tmp_path: Path) -> None:
    router = Router.from_directory(ecosystem)
    seen, record = recording()
    first = SemanticReranker.from_router(router, record, cache=tmp_path, model_id="toy")
    encoded = len(seen)
    assert encoded > 0
    (entry,) = tmp_path.glob("*.vectors")
    second = SemanticReranker.from_router(router, record, cache=tmp_path, model_id="toy")
    assert len(seen) == encoded  # nothing encoded again
    assert {k: [label for label, _ in v] for k, v in second.items.items()} == {
        k: [label for label, _ in v] for k, v in first.items.items()
    }
    for plugin, found in first.items.items():
        for (_, a), (_, b) in zip(found, second.items[plugin], strict=True):
            assert a == pytest.approx(b, abs=1e-6)
    # Another model, or damaged bytes: encoded again (and the entry replaced).
    SemanticReranker.from_router(router, record, cache=tmp_path, model_id="toy-2")
    assert len(seen) == 2 * encoded
    entry.write_bytes(entry.read_bytes()[:-4])
    SemanticReranker.from_router(router, record, cache=tmp_path, model_id="toy")
    assert len(seen) == 3 * encoded
    SemanticReranker.from_router(router, record, cache=tmp_path, model_id="toy")
    assert len(seen) == 3 * encoded


def test_an_encoder_without_a_model_id_is_not_cached(ecosystem: Path, tmp_path: Path) -> None:
    router = Router.from_directory(ecosystem)
    seen, record = recording()
    SemanticReranker.from_router(router, record, cache=tmp_path)
    encoded = len(seen)
    SemanticReranker.from_router(router, record, cache=tmp_path)
    assert not list(tmp_path.glob("*.vectors"))
    assert len(seen) == 2 * encoded > 0


def test_a_correction_counts_whole_under_the_blend(write_plugin: WritePlugin) -> None:
    """The blend mixes the similarity with the words' points; a person's correction is
    added whole, so a model that prefers another plugin cannot undo it."""
    for name, description in [
        ("billing-core", "Invoices, payments and billing runs"),
        ("ledger-sync", "Accounting ledger synchronisation of invoices and billing"),
    ]:
        root = write_plugin(name, {"name": name, "description": description})

    class Prefers:
        weight = 0.7

        def similarities(self, text: str, plugins: Sequence[str]) -> dict[str, tuple[float, str]]:
            return {p: (1.0 if p == "billing-core" else 0.0, "") for p in plugins}

    router = Router.from_directory(root.parent)
    router.semantic = Prefers()
    first = router.route("Invoices from the March billing run are missing in the ledger")
    assert first.primary_plugin == "billing-core"
    router.record_correction(first.request_id, "ledger-sync")
    later = router.route("Invoices from the April billing run are missing in the ledger")
    assert later.primary_plugin == "ledger-sync"
    assert later.score_of("ledger-sync").learned > 0


def test_cli_blends_by_default_when_the_model_is_installed(
    ecosystem: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jira_orchestrator.routing import semantic

    build = SemanticReranker.from_router

    def toy(router: Router, encode: object = None, **_: object) -> SemanticReranker:
        return build(router, lambda texts: [[1.0, 0.0] for _ in texts])

    monkeypatch.setattr(semantic, "available", lambda: True)
    monkeypatch.setattr(semantic.SemanticReranker, "from_router", staticmethod(toy))
    app = typer.Typer()
    app.command()(route)

    @app.callback()
    def _root() -> None:
        """Test root."""

    def scores(*flags: str) -> list[dict[str, object]]:
        result = CliRunner().invoke(
            app,
            [
                "route",
                "Write a README",
                "--plugins",
                str(ecosystem),
                "--json",
                "--no-cache",
                *flags,
            ],
        )
        assert result.exit_code == 0, result.stderr
        document = json.loads(result.stdout)
        found: list[dict[str, object]] = document["scores"]
        return found

    assert all("semantic" in score for score in scores())
    assert not any("semantic" in score for score in scores("--no-semantic"))
    monkeypatch.setattr(semantic, "available", lambda: False)
    assert not any("semantic" in score for score in scores())
