"""The router on small ecosystems: scoring rules, decisions, explanations, publishing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from jira_orchestrator.messagebus import (
    Message,
    close_message_bus,
    get_message_bus,
    reset_message_bus,
)
from jira_orchestrator.plugins import discover_plugins
from jira_orchestrator.routing import (
    DECISION_TOPIC,
    InvalidRequest,
    NoPlugins,
    Router,
    RoutingRequest,
    ScoringWeights,
)

from .conftest import WritePlugin, agent


def test_each_domain_goes_to_its_plugin(ecosystem: Path) -> None:
    router = Router.from_directory(ecosystem)
    assert router.route("Add a REST endpoint with pagination").primary_plugin == "api-forge"
    assert router.route("Build a signup form component").primary_plugin == "pixel-kit"
    assert router.route("Package the service as a Helm chart").primary_plugin == "cloud-ops"
    assert router.route("Write a getting started guide").primary_plugin == "doc-scribe"


def test_files_alone_route_by_technology(ecosystem: Path) -> None:
    router = Router.from_directory(ecosystem)
    decision = router.route("fix this", files=["deploy/charts/api/Chart.yaml"])
    assert decision.primary_plugin == "cloud-ops"
    assert decision.score_of("cloud-ops").file_context > 0  # type: ignore[union-attr]
    assert any("helm" in line for line in decision.scores[0].evidence)


def test_decision_fields_and_wire_form(ecosystem: Path) -> None:
    router = Router.from_directory(ecosystem)
    decision = router.route(RoutingRequest.from_text("Slow database queries", request_id="Q-1"))
    document = decision.to_dict()
    assert document["requestId"] == "Q-1"
    assert document["primaryPlugin"] == "api-forge"
    assert set(document) >= {
        "fallbackPlugins",
        "collaborationPlan",
        "executionStrategy",
        "recommendedAgents",
        "scores",
        "classification",
        "confidence",
    }
    assert document["executionStrategy"] == "single"
    assert document["recommendedAgents"][0]["qualifiedName"] == "api-forge:query-tuner"
    assert {"plugin", "score", "evidence", "fileContext"} <= set(document["scores"][0])
    json.dumps(document)  # plain JSON
    assert decision.summary()["id"] == "Q-1"
    assert len(decision.fallback_plugins) <= 3
    text = decision.explain()
    assert "Q-1 goes to api-forge" in text
    assert "query-tuner" in text


def test_an_empty_request_is_refused_and_counted(ecosystem: Path) -> None:
    router = Router.from_directory(ecosystem)
    with pytest.raises(InvalidRequest, match="empty request"):
        router.route("  ")
    assert router.stats.invalid == 1


def test_nothing_in_common_means_no_primary(ecosystem: Path) -> None:
    decision = Router.from_directory(ecosystem).route("zzqx blorf")
    assert decision.primary_plugin is None
    assert decision.execution_strategy == "none"
    assert "no plugin fits" in decision.explain()


def test_unknown_or_empty_plugins_directory(tmp_path: Path) -> None:
    with pytest.raises(NoPlugins, match="does not exist"):
        Router.from_directory(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoPlugins, match="holds no loadable plugin"):
        Router.from_directory(tmp_path / "empty")


def _two_twins(write_plugin: WritePlugin, **manifests: Mapping[str, object]) -> None:
    for name in ("twin-a", "twin-b"):
        write_plugin(
            name,
            {"description": "Kafka consumers and streams", **manifests.get(name, {})},
            {"agents/x.md": agent("streamer", "Kafka stream processing")},
        )


def test_ties_are_broken_by_name(write_plugin: WritePlugin, tmp_path: Path) -> None:
    _two_twins(write_plugin)
    decision = Router.from_directory(tmp_path / "plugins").route("kafka stream lag")
    assert [s.plugin for s in decision.scores] == ["twin-a", "twin-b"]
    assert decision.scores[0].score == decision.scores[1].score


def test_priority_multiplies_the_score(write_plugin: WritePlugin, tmp_path: Path) -> None:
    _two_twins(write_plugin, **{"twin-b": {"routing": {"priority": 150}}})
    decision = Router.from_directory(tmp_path / "plugins").route("kafka stream lag")
    assert decision.primary_plugin == "twin-b"
    a, b = decision.score_of("twin-a"), decision.score_of("twin-b")
    assert a is not None
    assert b is not None
    assert b.score == pytest.approx(a.score * 1.5)
    assert b.priority == 1.5


def test_availability_from_breaker_states(write_plugin: WritePlugin, tmp_path: Path) -> None:
    _two_twins(write_plugin)
    root = tmp_path / "plugins"
    router = Router.from_directory(root, availability={"twin-a": "open"})
    decision = router.route("kafka stream lag")
    assert decision.primary_plugin == "twin-b"
    assert "circuit breaker open" in decision.excluded["twin-a"]
    half = Router.from_directory(root, availability={"twin-a": "half_open"}).route("kafka lag")
    a, b = half.score_of("twin-a"), half.score_of("twin-b")
    assert a is not None
    assert b is not None
    assert half.primary_plugin == "twin-b"
    assert a.availability == 0.5
    assert a.score == pytest.approx(b.score / 2)
    called: list[str] = []

    def health(plugin: str) -> float:
        called.append(plugin)
        return 0.0 if plugin == "twin-b" else 1.0

    assert (
        Router.from_directory(root, availability=health).route("kafka").primary_plugin == "twin-a"
    )
    assert sorted(called) == ["twin-a", "twin-b"]


def test_accepts_routing_from_filters_the_requester(
    write_plugin: WritePlugin, tmp_path: Path
) -> None:
    _two_twins(
        write_plugin, **{"twin-a": {"routing": {"acceptsRoutingFrom": ["jira-orchestrator"]}}}
    )
    router = Router.from_directory(tmp_path / "plugins")
    assert router.route("kafka stream lag").primary_plugin == "twin-a"
    other = router.route("kafka stream lag", requester="some-plugin")
    assert other.primary_plugin == "twin-b"
    assert "some-plugin" in other.excluded["twin-a"]
    asked = router.route(RoutingRequest.from_text("kafka stream", requester="intruder"))
    assert "twin-a" in asked.excluded


def test_explicit_capabilities_use_the_design_weights(
    write_plugin: WritePlugin, tmp_path: Path
) -> None:
    _two_twins(
        write_plugin,
        **{
            "twin-b": {
                "capabilities": {
                    "domains": ["backend"],
                    "contexts": ["python"],
                    "patterns": ["rest-api"],
                }
            }
        },
    )
    router = Router.from_directory(tmp_path / "plugins")
    decision = router.route("kafka stream behind a REST API in the backend", files=["app/x.py"])
    b = decision.score_of("twin-b")
    assert b is not None
    assert b.capability == 30 + 20 + 15
    assert decision.primary_plugin == "twin-b"
    custom = Router.from_directory(
        tmp_path / "plugins", weights=ScoringWeights(domain=1, context=0, pattern=0)
    ).route("kafka stream behind a REST API in the backend", files=["app/x.py"])
    assert custom.score_of("twin-b").capability == 1  # type: ignore[union-attr]


def test_context_patterns_match_files(write_plugin: WritePlugin, tmp_path: Path) -> None:
    _two_twins(write_plugin, **{"twin-a": {"routing": {"contextPatterns": ["**/streams/*.kt"]}}})
    decision = Router.from_directory(tmp_path / "plugins").route(
        "kafka lag", files=["src/streams/Orders.kt"]
    )
    assert decision.primary_plugin == "twin-a"
    assert any("matches '**/streams/*.kt'" in line for line in decision.scores[0].evidence)


def test_a_request_across_domains_gets_a_collaboration_plan(ecosystem: Path) -> None:
    router = Router.from_directory(ecosystem)
    decision = router.route(
        "Add a REST API endpoint for invoices with database models, a React page component"
        " to show them, and a Helm chart to deploy it on Kubernetes"
    )
    plan = decision.collaboration_plan
    assert plan is not None
    assert {"api-forge", "pixel-kit", "cloud-ops"} <= set(plan.plugins)
    by_plugin = {phase.plugin: phase for phase in plan.phases}
    backend = by_plugin["api-forge"]
    assert backend.depends_on == ()
    assert backend.id in by_plugin["pixel-kit"].depends_on
    assert decision.execution_strategy in ("sequential", "phased")
    assert decision.to_dict()["collaborationPlan"]["phases"][0]["dependsOn"] == []
    assert "Collaboration" in decision.explain()


def test_one_domain_has_no_plan(ecosystem: Path) -> None:
    decision = Router.from_directory(ecosystem).route("Add pagination to the REST endpoint")
    assert decision.collaboration_plan is None


async def test_decisions_are_published_on_routing_decision(ecosystem: Path) -> None:
    reset_message_bus()
    try:
        bus = get_message_bus("jira-orchestrator")
        listener = get_message_bus("auditor")
        received: asyncio.Queue[Message] = asyncio.Queue()
        listener.subscribe(DECISION_TOPIC, received.put)
        router = Router.from_directory(ecosystem, bus=bus)
        decision = await router.aroute("Write a README")
        message = await asyncio.wait_for(received.get(), 5)
        assert message.topic == DECISION_TOPIC
        assert message.source == "jira-orchestrator"
        assert message.payload["requestId"] == decision.request_id
        assert message.payload["primaryPlugin"] == "doc-scribe"
        later = router.route("Helm chart please")  # scheduled on the running loop
        await router.wait_published()
        message = await asyncio.wait_for(received.get(), 5)
        assert message.payload["requestId"] == later.request_id
        assert router.stats.published == 2
    finally:
        await close_message_bus()


def test_route_without_a_loop_does_not_publish(ecosystem: Path) -> None:
    reset_message_bus()
    router = Router.from_directory(ecosystem, bus=get_message_bus("jira-orchestrator"))
    router.route("Write a README")
    assert router.stats.published == 0
    reset_message_bus()


def test_index_is_built_once_from_a_catalog(ecosystem: Path) -> None:
    catalog = discover_plugins(ecosystem)
    router = Router(catalog)
    assert router.plugins == ("api-forge", "cloud-ops", "doc-scribe", "pixel-kit")
    assert router.build_seconds >= 0
    with pytest.raises(NoPlugins):
        Router([])


def test_scores_of_some_plugins_are_their_share_of_the_scores_of_all(
    corpus_router: Router,
) -> None:
    index = corpus_router.index
    terms = corpus_router.classify(
        RoutingRequest.from_text("pods restart after the helm upgrade; the grid is slow too")
    ).terms
    every = index.component_scores(terms, 0.25)
    some = frozenset({0, 3, len(index) - 1})
    assert index.component_scores(terms, 0.25, some) == {
        c: v for c, v in every.items() if index.component_owner[c] in some
    }
    assert index.meta_scores(terms, some) == {
        p: v for p, v in index.meta_scores(terms).items() if p in some
    }
    assert index.component_scores(terms, 0.25, frozenset()) == {}


def test_the_router_stamps_decisions_and_its_store_with_its_clock(
    ecosystem: Path, tmp_path: Path
) -> None:
    now = [1_790_000_000.25]
    router = Router.from_directory(ecosystem, store=tmp_path / "r.db", clock=lambda: now[0])
    try:
        decision = router.route("Write a getting started guide", requester=None)
        assert decision.created_at == "2026-09-21T14:13:20.250+00:00"
        now[0] += 3600
        router.record_correction(decision.request_id, "api-forge")
        assert router.store is not None
        [correction] = router.store.corrections()
        assert correction.created_at == now[0]
    finally:
        router.close()
