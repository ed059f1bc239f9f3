"""The whole Jira loop over real HTTP: the sandbox's signed webhooks reach the receiver,
the service routes and dispatches to the example plugins, the write-back lands in Jira."""

from __future__ import annotations

import json
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.routing import Mount
from typer.testing import CliRunner

from jira_orchestrator.cli import app
from jira_orchestrator.cli._demo_jira import _settle
from jira_orchestrator.cli._jira_loop import JiraLoop, jira_loop
from jira_orchestrator.cli.serve import in_process_plugins
from jira_orchestrator.integrations.jira.adf import adf_to_text
from jira_orchestrator.integrations.jira.check import SANDBOX_SECRET, init_text
from jira_orchestrator.integrations.jira.config import parse_config
from jira_orchestrator.integrations.jira.errors import JiraUnavailable
from jira_orchestrator.integrations.jira.sandbox import JiraSandbox
from jira_orchestrator.messagebus import close_message_bus, reset_message_bus
from jira_orchestrator.web import HTTPServer
from tests.integrations.jira.contract import ContractCheckingTransport, JiraContract

ROOT = Path(__file__).resolve().parents[3]
PLUGINS = ROOT / "examples" / "plugins"
ISSUES = json.loads((ROOT / "examples" / "issues.json").read_text())


@dataclass
class Running:
    sandbox: JiraSandbox
    loop: JiraLoop
    output: Path
    contract: JiraContract

    async def settle(self) -> None:
        await _settle(self.sandbox, self.loop.service, self.loop.inbox)

    def comments(self, key: str) -> list[str]:
        return [adf_to_text(c["body"]) for c in self.sandbox.comments(key)]


async def _start(
    output: Path, min_confidence: float = 0.0, **write_back: object
) -> AsyncIterator[Running]:
    sandbox = JiraSandbox()
    contract = JiraContract()
    entries = sorted(PLUGINS.glob("*/plugin.py"))
    async with HTTPServer([Mount("/", app=sandbox.app)], port=0) as site, sandbox:
        data = tomllib.loads(init_text(site.url))
        data["routing"]["minConfidence"] = min_confidence
        data["jira"]["writeBack"].update(write_back)
        config = parse_config(data)
        async with (
            in_process_plugins(entries),
            jira_loop(
                config,
                PLUGINS,
                output,
                host="127.0.0.1",
                port=0,
                bus_url="memory://",
                # Every call the loop makes to Jira is checked against Atlassian's contract.
                jira_transport=ContractCheckingTransport(httpx.AsyncHTTPTransport(), contract),
            ) as loop,
        ):
            sandbox.register_webhook(f"{loop.server.url}/webhooks/jira", SANDBOX_SECRET)
            yield Running(sandbox, loop, output, contract)


@pytest.fixture
async def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Running]:
    monkeypatch.setenv("JIRA_ORCHESTRATOR_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("JIRA_ORCHESTRATOR_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DEMO_FAIL", "")
    reset_message_bus()
    try:
        async for started in _start(tmp_path / "out"):
            yield started
    finally:
        await close_message_bus()


async def test_a_created_issue_is_routed_done_and_written_back(running: Running) -> None:
    sandbox = running.sandbox
    key = sandbox.create_issue(
        "OPS", "Deploy billing-api to the EKS cluster with 4 replicas",
        description="It needs a Helm chart with resource limits.",
    )  # fmt: skip
    await running.settle()
    fields = sandbox.issue(key)["fields"]
    assert "routed:k8s-helm-deployer" in fields["labels"]
    assert fields["status"]["name"] == "Done"
    decision, outcome = running.comments(key)
    assert "Routed to k8s-helm-deployer" in decision
    assert "Done by k8s-helm-deployer" in outcome
    charts = list((running.output / "k8s-helm-deployer").rglob("*"))
    assert charts, "the plugin did its work"
    stats = running.loop.service.stats
    assert stats["routed"] == 1
    assert stats["failed"] == 0
    checked = {(e.method, e.path.split("/")[-1]) for e in running.contract.exchanges}
    assert ("POST", "comment") in checked  # each call to Jira was checked against its contract
    async with httpx.AsyncClient(base_url=running.loop.server.url) as web:
        tasks = (await web.get("/api/tasks")).json()  # the dashboard on the same server
    assert [t["status"] for t in tasks["items"]] == ["completed"]


async def test_a_redelivered_webhook_writes_nothing_twice(running: Running) -> None:
    sandbox = running.sandbox
    key = sandbox.create_issue("OPS", "Deploy billing-api to the EKS cluster with a Helm chart")
    await running.settle()
    first = sandbox.deliveries[0]
    async with httpx.AsyncClient() as client:  # Jira retrying: the same identifier again
        response = await client.post(first.url, content=first.body, headers=first.headers)
    assert response.status_code == 200
    assert response.json()["status"] == "duplicate"
    await running.settle()
    assert len(running.comments(key)) == 2
    assert running.loop.service.stats["routed"] == 1


async def test_jira_failing_between_the_work_and_the_comment_loses_nothing_and_doubles_nothing(
    running: Running,
) -> None:
    sandbox = running.sandbox
    writeback = running.loop.service.writeback
    real = writeback.outcome
    calls = {"n": 0}

    async def flaky(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise JiraUnavailable(503, "POST", "/issue/x/comment", ["down for a moment"])
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    writeback.outcome = flaky  # type: ignore[method-assign]
    key = sandbox.create_issue("OPS", "Deploy billing-api to the EKS cluster with a Helm chart")
    await running.settle()
    assert calls["n"] == 2  # the event went back to pending and was processed again
    decision, outcome = running.comments(key)
    assert "Routed to" in decision
    assert "Done by" in outcome
    tasks = running.loop.orchestrator.tasks.all()
    assert [t.status for t in tasks] == ["completed"]  # the work was done once
    assert sandbox.issue(key)["fields"]["status"]["name"] == "Done"


async def test_a_person_moving_the_label_is_a_correction(running: Running) -> None:
    sandbox = running.sandbox
    person = sandbox.add_user("Dana Lead")
    key = sandbox.create_issue("OPS", "Deploy billing-api to the EKS cluster with a Helm chart")
    await running.settle()
    sandbox.edit_issue(
        key,
        update={
            "labels": [{"remove": "routed:k8s-helm-deployer"}, {"add": "routed:exec-automator"}]
        },
        as_user=person,
    )
    await running.settle()
    assert running.loop.service.stats["corrections"] == 1
    assert running.loop.orchestrator.router.stats.corrections == 1


async def test_moving_the_component_or_the_assignee_is_a_correction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JIRA_ORCHESTRATOR_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("DEMO_FAIL", "")
    reset_message_bus()
    try:
        async for running in _start(
            tmp_path / "out",
            component=True,
            components={"exec-automator": "Automation"},
            assignees={"fastapi-backend": "acct-backend-team"},
        ):
            sandbox = running.sandbox
            person = sandbox.add_user("Dana Lead")
            key = sandbox.create_issue(
                "OPS", "Deploy billing-api to the EKS cluster with a Helm chart"
            )
            await running.settle()
            assert [c["name"] for c in sandbox.issue(key)["fields"]["components"]] == [
                "k8s-helm-deployer"
            ]
            sandbox.edit_issue(
                key,
                update={
                    "components": [
                        {"remove": {"name": "k8s-helm-deployer"}},
                        {"add": {"name": "Automation"}},
                    ]
                },
                as_user=person,
            )
            await running.settle()
            assert running.loop.service.stats["corrections"] == 1
            sandbox.assign(key, "acct-backend-team", as_user=person)
            await running.settle()
            assert running.loop.service.stats["corrections"] == 2
            learned = running.loop.orchestrator.router.stats.corrections
            assert learned == 2
    finally:
        await close_message_bus()


async def test_a_route_command_in_a_comment_dispatches_to_that_plugin(running: Running) -> None:
    sandbox = running.sandbox
    person = sandbox.add_user("Dana Lead")
    key = sandbox.create_issue("OPS", "Deploy billing-api to the EKS cluster with a Helm chart")
    await running.settle()
    sandbox.add_comment(key, "/route exec-automator", as_user=person)
    await running.settle()
    said = running.comments(key)
    assert any("Routed to exec-automator" in c for c in said)
    assert any("Done by exec-automator" in c for c in said)
    sandbox.add_comment(key, "/route no-such-plugin", as_user=person)
    await running.settle()
    assert running.loop.inbox.counts().get("failed") == 1  # visible, with the reason


async def test_events_of_other_projects_are_ignored(running: Running) -> None:
    running.sandbox.create_issue("HR", "Hire a designer")
    await running.settle()
    assert running.loop.receiver.stats["ignored"] == 1
    assert running.loop.service.stats["routed"] == 0


async def test_an_issue_deleted_before_its_turn_is_not_dispatched(running: Running) -> None:
    sandbox = running.sandbox
    await running.loop.service.stop()  # hold the processing while Jira changes
    key = sandbox.create_issue("OPS", "Deploy billing-api to the EKS cluster with a Helm chart")
    sandbox.delete_issue(key)
    await sandbox.webhooks_idle(timeout=30)
    await running.loop.service.start()
    await running.settle()
    assert running.loop.orchestrator.tasks.all() == []


def test_demo_jira_shows_the_whole_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    result = CliRunner().invoke(
        app,
        [
            "demo", "--jira", "--plugins", str(PLUGINS),
            "--issues", str(ROOT / "examples/issues.json"),
            "--output", str(tmp_path / "out"), "--fail", "frontend-design-system",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"{len(ISSUES)}/{len(ISSUES)} issues completed, 2 by a fallback plugin" in result.output
    assert result.output.count("written") == len(ISSUES)


async def test_an_unsure_router_asks_a_person_in_jira(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JIRA_ORCHESTRATOR_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("DEMO_FAIL", "")
    reset_message_bus()
    try:
        async for running in _start(tmp_path / "out", min_confidence=0.999):
            key = running.sandbox.create_issue("OPS", "Something is slow somewhere")
            await running.settle()
            assert running.sandbox.issue(key)["fields"]["labels"] == ["needs-triage"]
            [comment] = running.comments(key)
            assert "needs 100%" in comment
            assert "Candidates:" in comment
            assert running.loop.orchestrator.tasks.all() == []
            assert running.loop.service.stats["triaged"] == 1
    finally:
        await close_message_bus()
