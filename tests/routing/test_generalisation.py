"""General fixes, each on a small ecosystem or the examples: names in the text, strong
evidence for capability bonuses, British spellings, compounds, relevant fallbacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jira_orchestrator.plugins.text import compounds, stem, words
from jira_orchestrator.routing import Router, RoutingRequest, ScoringWeights, classify
from jira_orchestrator.routing.classifier import names_in

from .conftest import WritePlugin, agent

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Deploy billing-api with 4 replicas", ["billing-api"]),
        ("orders_service and checkout-web are down", ["orders_service", "checkout-web"]),
        ("roll out orders-v2 in us-east-1 today", ["orders-v2", "us-east-1"]),
        (
            "see charts/orders/values.yaml and app/main.py.",
            ["charts/orders/values.yaml", "app/main.py"],
        ),
        ("files under migrations/ only", ["migrations/"]),
        ("an end-to-end test of the crash-loop", []),
        ("our ci/cd and/or GET /api/orders/{id}", []),
        ("a real-time multi-tenant view", []),
    ],
)
def test_names_in_the_text_are_told_from_prose(text: str, names: list[str]) -> None:
    assert sorted(names_in(text)) == sorted(names)


def test_a_compound_the_plugins_write_is_a_word_not_a_name() -> None:
    assert names_in("the auth-service is slow") == ["auth-service"]
    known = {stem("authservice")}.__contains__
    assert names_in("the auth-service is slow", known=known) == []


def test_a_service_name_counts_like_a_path_not_like_prose() -> None:
    found = classify(RoutingRequest.from_text("Deploy billing-api with 4 replicas"))
    assert found.terms["api"] < 0.5
    assert found.terms[stem("billing")] < 0.5
    assert found.terms["deploy"] == 1.0
    assert "backend" not in found.domains  # "api" names the service, not the work
    assert "delivery" in found.domains
    prose = classify(RoutingRequest.from_text("Deploy the billing api with 4 replicas"))
    assert prose.terms["api"] == 1.0
    assert "backend" in prose.domains


def test_a_hyphenated_service_name_does_not_win_a_capability_bonus(
    write_plugin: WritePlugin, tmp_path: Path
) -> None:
    write_plugin(
        "api-forge",
        {
            "description": "Python backend: REST API endpoints and database models",
            "capabilities": {"domains": ["api", "backend"], "contexts": ["python"]},
        },
    )
    write_plugin(
        "ship-it",
        {"description": "Deploys services to Kubernetes: replicas, rollouts, Helm charts"},
        {"agents/rollout.md": agent("rollout", "Scales deployments and sets replicas")},
    )
    router = Router.from_directory(tmp_path / "plugins")
    decision = router.route("Deploy billing-api with 4 replicas")
    assert decision.primary_plugin == "ship-it"
    forge = decision.score_of("api-forge")
    assert forge is None or forge.capability == 0
    # Written as prose, "api" is what the request is about, and the bonus is earned.
    prose = router.route("Add a REST api endpoint in the backend")
    assert prose.primary_plugin == "api-forge"
    assert prose.score_of("api-forge").capability == 30 + 30  # type: ignore[union-attr]


def test_the_example_ecosystem_deploys_billing_api_with_the_helm_plugin() -> None:
    router = Router.from_directory(EXAMPLES / "plugins")
    decision = router.route("Deploy billing-api with 4 replicas")
    assert decision.primary_plugin == "k8s-helm-deployer"
    assert decision.score_of("fastapi-backend").capability == 0  # type: ignore[union-attr]


def test_the_decision_says_which_words_it_read_as_names() -> None:
    decision = Router.from_directory(EXAMPLES / "plugins").route(
        "Deploy billing-api with 4 replicas"
    )
    assert decision.names == ("billing-api",)
    assert decision.to_dict()["classification"]["names"] == ["billing-api"]
    assert "names (weak evidence) billing-api" in decision.explain()


def test_capability_bonuses_need_a_word_the_request_says(
    write_plugin: WritePlugin, tmp_path: Path
) -> None:
    # "slow" adds "performance" through the everyday vocabulary, at a lower weight:
    # a hint for relevance, not an explicit match worth a capability bonus.
    write_plugin(
        "speedy",
        {"description": "Tuning", "capabilities": {"domains": ["performance"]}},
    )
    write_plugin("other", {"description": "Page layouts"})
    router = Router.from_directory(tmp_path / "plugins")
    hinted = router.route("the page is slow")
    speedy = hinted.score_of("speedy")
    assert speedy is None or speedy.capability == 0
    said = router.route("page performance")
    assert said.score_of("speedy").capability == 30  # type: ignore[union-attr]


def test_a_side_mention_of_a_domain_earns_no_domain_bonus(
    write_plugin: WritePlugin, tmp_path: Path
) -> None:
    write_plugin(
        "pixel-kit",
        {"description": "Page layouts and components", "capabilities": {"domains": ["frontend"]}},
    )
    write_plugin("api-forge", {"description": "REST API endpoints and database models"})
    router = Router.from_directory(tmp_path / "plugins")
    story = "Add a REST API endpoint with database paging for the account page"
    found = classify(RoutingRequest.from_text(story))
    assert "frontend" in found.domains  # seen ...
    assert "frontend" not in found.principal_domains  # ... but not what it is about
    side = router.route(story).score_of("pixel-kit")
    assert side is None or side.capability == 0
    main = router.route("Build the account page layout with a React component")
    assert main.score_of("pixel-kit").capability == 30  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("british", "american"),
    [
        ("optimise", "optimize"),
        ("optimisation", "optimization"),
        ("prioritised", "prioritized"),
        ("analyse", "analyze"),
        ("colours", "colors"),
        ("behaviour", "behavior"),
        ("centre", "center"),
        ("catalogue", "catalog"),
        ("programme", "program"),
        ("licence", "license"),
        ("modelling", "modeling"),
        ("labelled", "labeled"),
        ("cancelled", "canceled"),
    ],
)
def test_british_and_american_spellings_are_one_word(british: str, american: str) -> None:
    assert stem(british) == stem(american)


def test_short_words_keep_their_letters() -> None:
    assert stem("calling") == stem("call")
    assert stem("filling") == stem("fill")
    assert stem("installing") == stem("install")
    assert stem("hours") == stem("hour")
    assert len({stem("raise"), stem("rise"), stem("noise")}) == 3


def test_a_british_request_finds_an_american_plugin(
    write_plugin: WritePlugin, tmp_path: Path
) -> None:
    write_plugin("tuner", {"description": "Optimizes and customizes the color palette"})
    write_plugin("writer", {"description": "Optimism in prose: uplifting copy"})
    decision = Router.from_directory(tmp_path / "plugins").route(
        "optimise and customise the colours"
    )
    assert decision.primary_plugin == "tuner"


def test_two_stop_words_side_by_side_are_not_a_compound() -> None:
    assert stem("onthe") not in compounds("put it on the shelf")
    assert "rollback" in compounds("roll back the release")
    assert stem("signin") in compounds("cannot sign in")
    assert words("on the") == []


def _issues() -> dict[str, dict[str, object]]:
    return {issue["key"]: issue for issue in json.loads((EXAMPLES / "issues.json").read_text())}


def test_fallbacks_are_relevant_in_their_own_right() -> None:
    router = Router.from_directory(EXAMPLES / "plugins")
    issues = _issues()
    for key, issue in issues.items():
        decision = router.route(RoutingRequest.from_jira(issue))
        top = decision.scores[0].score
        for name in decision.fallback_plugins:
            assert decision.score_of(name).score >= 0.2 * top, key  # type: ignore[union-attr]
    ui = router.route(RoutingRequest.from_jira(issues["UI-301"]))
    assert ui.primary_plugin == "frontend-design-system"
    assert "lobbi-platform-manager" not in ui.fallback_plugins  # a tenant platform
    assert ui.score_of("lobbi-platform-manager") is not None  # still scored and listed
    close = router.route(RoutingRequest.from_jira(issues["OPS-402"]))
    assert close.fallback_plugins[:1] == ("fastapi-backend",)  # a real runner-up stays


def test_the_fallback_share_is_a_weight() -> None:
    issue = _issues()["UI-301"]
    every = Router.from_directory(
        EXAMPLES / "plugins", weights=ScoringWeights(fallback_share=0.0)
    ).route(RoutingRequest.from_jira(issue))
    assert "lobbi-platform-manager" in every.fallback_plugins
