"""A manifest cannot grant itself another plugin's subjects (they become its NATS rights)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jira_orchestrator import ManifestError
from jira_orchestrator.cli import app
from jira_orchestrator.orchestrator.natsconfig import plugin_permissions
from jira_orchestrator.plugins import parse_manifest


def _manifest(topics: list[str] = (), subscriptions: list[str] = ()) -> dict[str, object]:  # type: ignore[assignment]
    return {
        "name": "greedy",
        "version": "1.0.0",
        "description": "wants more than its own",
        "communication": {
            "messagebus": {"topics": list(topics), "subscriptions": list(subscriptions)}
        },
    }


@pytest.mark.parametrize(
    ("topics", "subscriptions", "path"),
    [
        (["state/fastapi-backend/change"], [], "communication.messagebus.topics[0]"),
        (["plugin.greedy.events", "plugin/fastapi-backend/request"], [], "topics[1]"),
        (["plugin/*/request"], [], "topics[0]"),
        (["routing/decision"], [], "topics[0]"),
        (["orchestration.task-complete"], [], "topics[0]"),
        ([], ["**"], "subscriptions[0]"),
        ([], ["*/x"], "subscriptions[0]"),
        ([], ["plugin/fastapi-backend/request"], "subscriptions[0]"),
        ([], ["plugin/*/rpc"], "subscriptions[0]"),
        ([], ["plugin.**"], "subscriptions[0]"),
        ([], ["state/fastapi-backend/change"], "subscriptions[0]"),
    ],
)
def test_claims_beyond_its_own_scope_are_refused_with_their_path(
    topics: list[str], subscriptions: list[str], path: str
) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(_manifest(topics, subscriptions), source="greedy/plugin.json")
    assert any(path in problem for problem in caught.value.problems), caught.value.problems


def test_its_own_topics_and_everyones_announcements_are_fine() -> None:
    manifest = parse_manifest(
        _manifest(
            ["plugin/greedy/request", "plugin.greedy.events", "state/greedy/change", "custom/x"],
            [
                "system.broadcast",
                "routing.decision",
                "plugin/*/events",
                "plugin/fastapi-backend/status",
                "plugin/greedy/**",
            ],
        )
    )
    publish, subscribe = plugin_permissions(manifest)
    assert ">" not in subscribe
    assert "plugin.fastapi-backend.request" not in publish


def test_validate_and_nats_config_refuse_the_greedy_manifest(tmp_path: Path) -> None:
    root = tmp_path / "plugins" / "greedy" / ".claude-plugin"
    root.mkdir(parents=True)
    (root / "plugin.json").write_text(
        json.dumps(_manifest(["state/fastapi-backend/change"], ["**"]))
    )
    runner = CliRunner()
    validated = runner.invoke(app, ["plugins", "validate", str(tmp_path / "plugins")])
    assert validated.exit_code == 1
    assert "communication.messagebus.subscriptions[0]" in validated.output
    configured = runner.invoke(app, ["nats-config", str(tmp_path / "plugins")])
    assert configured.exit_code == 1  # no user is written for it
    assert "communication.messagebus.topics[0]: publishes on a topic of plugin" in (
        configured.output
    )
