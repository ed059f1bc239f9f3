"""Write-back against the sandbox: what a decision and an outcome look like on the issue,
and that nothing is written twice."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from jira_orchestrator.integrations.jira.adf import adf_to_text
from jira_orchestrator.integrations.jira.config import JiraConfig, parse_config
from jira_orchestrator.integrations.jira.writeback import JiraWriteBack, marker
from jira_orchestrator.orchestrator import Attempt, DispatchResult
from jira_orchestrator.routing import Router, RoutingDecision
from tests.integrations.jira.conftest import ClientFactory, Jira
from tests.integrations.jira.contract import JiraContract

PLUGINS = Path(__file__).resolve().parents[3] / "examples" / "plugins"
ADF_SCHEMA = Path(__file__).resolve().parents[4] / "shared" / "jira-ref" / "adf-full-schema.json"


@pytest.fixture(scope="module")
def router() -> Router:
    return Router.from_directory(PLUGINS)


def _config(**write_back: object) -> JiraConfig:
    return parse_config(
        {
            "jira": {
                "site": "http://127.0.0.1:1",
                "projects": ["OPS"],
                "auth": {"email": "sandbox@example.com", "token": "sandbox-token"},
                "writeBack": {"component": True, **write_back},
                "transitions": {"completed": "Done", "failed": "In Progress"},
            },
            "routing": {"minConfidence": 0.5},
        }
    )


def _helm(router: Router) -> RoutingDecision:
    decision = router.route("Deploy billing-api to the EKS cluster with a Helm chart")
    assert decision.primary_plugin == "k8s-helm-deployer"
    return decision


def _result(decision: RoutingDecision, *, outcome: str = "completed") -> DispatchResult:
    primary = decision.primary_plugin
    if outcome == "completed":
        attempts = [Attempt(str(primary), "completed", None, 0.4)]
        return DispatchResult(
            "t-1", decision.request_id, "OPS-1", primary, primary, "completed", {}, None, 0.4,
            attempts, decision,
        )  # fmt: skip
    attempts = [Attempt(str(primary), "failed", "chart lint failed", 0.2)]
    return DispatchResult(
        "t-1", decision.request_id, "OPS-1", primary, None, "failed", None,
        "chart lint failed", 0.2, attempts, decision,
    )  # fmt: skip


async def test_a_decision_shows_as_a_comment_a_label_a_component_and_an_assignee(
    jira: Jira, make_client: ClientFactory, router: Router, contract: JiraContract
) -> None:
    key = jira.sandbox.create_issue("OPS", "Deploy billing", labels=["routed:old", "keep"])
    config = _config(assignees={"k8s-helm-deployer": "5b10ac8d82e05b22cc7d4ef5"})
    writeback = JiraWriteBack(await make_client(), config)
    decision = _helm(router)
    written = await writeback.decision(key, decision, ref="t-1")
    issue = jira.sandbox.issue(key)["fields"]
    assert sorted(issue["labels"]) == ["keep", "routed:k8s-helm-deployer"]
    assert [c["name"] for c in issue["components"]] == ["k8s-helm-deployer"]
    assert issue["assignee"]["accountId"] == "5b10ac8d82e05b22cc7d4ef5"
    assert written.labels_removed == ["routed:old"]
    [comment] = jira.sandbox.comments(key)
    said = adf_to_text(comment["body"])
    assert "Routed to k8s-helm-deployer" in said
    assert f"{round(decision.confidence * 100)}%" in said
    assert decision.scores[0].evidence[0] in said
    assert marker("t-1", "decision") in said
    schema = jsonschema.Draft4Validator(__import__("json").loads(ADF_SCHEMA.read_text()))
    assert not list(schema.iter_errors(comment["body"]))
    assert contract.exchanges  # every exchange was checked against the contract


async def test_writing_the_same_decision_again_changes_nothing(
    jira: Jira, make_client: ClientFactory, router: Router
) -> None:
    key = jira.sandbox.create_issue("OPS", "Deploy billing")
    writeback = JiraWriteBack(await make_client(), _config())
    decision = _helm(router)
    first = await writeback.decision(key, decision, ref="t-1")
    again = await writeback.decision(key, decision, ref="t-1")
    assert again.comment_id == first.comment_id
    assert again.labels_added == []
    assert len(jira.sandbox.comments(key)) == 1


async def test_an_unsure_router_labels_for_triage_and_lists_the_candidates(
    jira: Jira, make_client: ClientFactory, router: Router
) -> None:
    key = jira.sandbox.create_issue("OPS", "Deploy billing", labels=["routed:k8s-helm-deployer"])
    writeback = JiraWriteBack(await make_client(), _config())
    decision = replace(_helm(router), confidence=0.2)
    await writeback.triage(key, decision, ref="t-2")
    assert jira.sandbox.issue(key)["fields"]["labels"] == ["needs-triage"]
    said = adf_to_text(jira.sandbox.comments(key)[0]["body"])
    assert "needs 50%" in said
    for score in decision.scores[:3]:
        assert score.plugin in said


async def test_the_outcome_comments_and_applies_the_transition_once(
    jira: Jira, make_client: ClientFactory, router: Router
) -> None:
    key = jira.sandbox.create_issue("OPS", "Deploy billing")
    writeback = JiraWriteBack(await make_client(), _config())
    result = _result(_helm(router))
    written = await writeback.outcome(key, result, ref="t-1")
    assert written.transition == "31"
    assert jira.sandbox.issue(key)["fields"]["status"]["name"] == "Done"
    again = await writeback.outcome(key, result, ref="t-1")
    assert again.transition is None
    [comment] = jira.sandbox.comments(key)
    assert "Done by k8s-helm-deployer" in adf_to_text(comment["body"])


async def test_a_failure_says_why_and_applies_the_failed_transition(
    jira: Jira, make_client: ClientFactory, router: Router
) -> None:
    key = jira.sandbox.create_issue("OPS", "Deploy billing")
    writeback = JiraWriteBack(await make_client(), _config())
    await writeback.outcome(key, _result(_helm(router), outcome="failed"), ref="t-9")
    assert jira.sandbox.issue(key)["fields"]["status"]["name"] == "In Progress"
    said = adf_to_text(jira.sandbox.comments(key)[0]["body"])
    assert "Failed: chart lint failed" in said


async def test_an_issue_deleted_meanwhile_is_skipped_and_logged(
    jira: Jira, make_client: ClientFactory, router: Router, caplog: pytest.LogCaptureFixture
) -> None:
    key = jira.sandbox.create_issue("OPS", "Deploy billing")
    jira.sandbox.delete_issue(key)
    writeback = JiraWriteBack(await make_client(), _config())
    written = await writeback.decision(key, _helm(router), ref="t-1")
    assert written.skipped == "the issue no longer exists"
    assert key in caplog.text
