"""Specificity: a plugin whose documents touch every subject (a hub) scores a little less
on each, measured once on the plugins' own component descriptions."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from jira_orchestrator.routing import Router, ScoringWeights

from .conftest import WritePlugin, agent

SUBJECTS = {
    "pod-pilot": ("Kubernetes workloads: pods, replicas and autoscaling", "kubernetes",
                  "scaler", "Scales deployments, tunes replicas and autoscalers for pods"),
    "pixel-kit": ("React user interface components and layout", "react",
                  "component-smith", "Builds React components, forms and page layouts"),
    "invoice-hub": ("Invoices, payments and billing runs", "billing",
                    "invoicer", "Creates, sends and reconciles invoices"),
    "doc-scribe": ("Documentation: READMEs, guides and runbooks", "documentation",
                   "guide-writer", "Writes user guides, READMEs and runbooks"),
    "terra-form": ("Terraform modules and cloud infrastructure", "terraform",
                   "module-author", "Writes Terraform modules, plans and state migrations"),
    "mail-bell": ("Email and chat notifications", "notifications",
                  "notifier", "Sends email, chat and push notifications on events"),
    "query-tune": ("Database queries, indexes and caching", "database",
                   "tuner", "Finds slow queries, adds indexes and caching"),
    "gate-keeper": ("Login, single sign-on and sessions", "authentication",
                    "sso-admin", "Configures login, single sign-on, tokens and sessions"),
}  # fmt: skip


@pytest.fixture
def with_hub(write_plugin: WritePlugin, tmp_path: Path) -> Path:
    """Eight specialists and a suite whose agents cover each subject in more words."""
    for name, (description, keyword, agent_name, agent_description) in SUBJECTS.items():
        write_plugin(
            name,
            {"description": description, "keywords": [keyword]},
            {f"agents/{agent_name}.md": agent(agent_name, agent_description)},
        )
    hub_agents = {
        f"agents/all-{agent_name}.md": agent(
            f"all-{agent_name}",
            f"General helper: {agent_description.lower()}",
            " ".join([agent_description] * 3 + ["teams projects tickets work requests"] * 3),
        )
        for _, _, agent_name, agent_description in SUBJECTS.values()
    }
    write_plugin(
        "everything-suite",
        {"description": "All-in-one engineering suite for every team", "keywords": ["suite"]},
        hub_agents,
    )
    return tmp_path / "plugins"


def factors(router: Router) -> dict[str, float]:
    return {
        s.plugin: s.specificity
        for text in ("pods", "invoices", "an all-in-one engineering suite")
        for s in router.route(text).scores
    }


def test_the_hub_is_measured_as_one_and_weighs_less(with_hub: Path) -> None:
    found = factors(Router.from_directory(with_hub))
    assert found["everything-suite"] < 0.7
    assert all(found[name] > 1.0 for name in SUBJECTS if name in found)


def test_a_specialist_beats_the_hub_on_its_subject(with_hub: Path) -> None:
    text = "Write a runbook for the on-call team"
    off = Router.from_directory(with_hub, weights=replace(ScoringWeights(), specificity=0))
    assert off.route(text).primary_plugin == "everything-suite"  # "team" in its long bodies
    on = Router.from_directory(with_hub)
    decision = on.route(text)
    assert decision.primary_plugin == "doc-scribe"
    top = decision.scores[0]
    assert top.to_dict()["specificity"] == round(top.specificity, 4)
    assert f"x specificity {top.specificity:.2f}" in decision.explain()


def test_the_hub_still_wins_what_is_its_own(with_hub: Path) -> None:
    decision = Router.from_directory(with_hub).route("An all-in-one engineering suite")
    assert decision.primary_plugin == "everything-suite"


def test_the_factors_are_the_same_on_every_build(with_hub: Path) -> None:
    assert factors(Router.from_directory(with_hub)) == factors(Router.from_directory(with_hub))


def test_few_plugins_are_not_measured(ecosystem: Path) -> None:
    router = Router.from_directory(ecosystem)  # four plugins: below the minimum
    assert all(s.specificity == 1.0 for s in router.route("Write a README").scores)
    assert "specificity" not in router.route("Write a README").explain()
