"""Abstaining: below ``min_confidence`` the orchestrator dispatches nothing and counts it."""

from __future__ import annotations

import json
from typing import Any

from jira_orchestrator.messagebus import Message, get_message_bus
from jira_orchestrator.routing import RoutingRequest
from tests.dispatch.conftest import EXAMPLES, Ecosystem

ISSUES = json.loads((EXAMPLES.parent / "issues.json").read_text())


def issue(key: str) -> dict[str, Any]:
    return next(i for i in ISSUES if i["key"] == key)


async def test_an_unsure_decision_is_triaged_not_dispatched(ecosystem: Ecosystem) -> None:
    orchestrator = await ecosystem.start(min_confidence=1.0)  # never sure enough
    events: list[Message] = []
    watcher = get_message_bus("watcher")
    watcher.subscribe("orchestration/*", events.append)
    result = await orchestrator.dispatch(issue("SHOP-101"))
    await watcher.flush()
    assert result.outcome == "triaged"
    assert result.plugin is None
    assert result.primary is None
    assert result.attempts == []
    assert result.decision is not None
    assert result.decision.triaged
    assert result.error is not None
    assert "not sure enough to route" in result.error
    assert "fastapi-backend" in result.error  # the candidates, for a person
    assert orchestrator.tasks.counts() == {"triaged": 1}
    assert orchestrator.status()["abstentions"] == 1
    assert not (ecosystem.tmp_path / "output" / "fastapi-backend").exists()  # nothing ran
    topics = [m.topic for m in events if m.payload.get("taskId") == result.task_id]
    assert topics == ["orchestration/task-complete"]
    assert events[-1].payload["outcome"] == "triaged"
    assert orchestrator.tasks.unfinished() == []  # not dispatched again on resume


async def test_only_the_unsure_requests_wait_for_a_person(ecosystem: Ecosystem) -> None:
    orchestrator = await ecosystem.start()
    confidence = {
        key: orchestrator.router.route(RoutingRequest.from_jira(issue(key))).confidence
        for key in ("SHOP-101", "PLAT-202")
    }
    sure, unsure = sorted(confidence, key=lambda key: -confidence[key])
    assert confidence[sure] > confidence[unsure]
    orchestrator.router.min_confidence = (confidence[sure] + confidence[unsure]) / 2
    assert (await orchestrator.dispatch(issue(unsure))).outcome == "triaged"
    assert (await orchestrator.dispatch(issue(sure))).outcome == "completed"
    assert orchestrator.status()["abstentions"] == 1
    assert orchestrator.tasks.counts() == {"triaged": 1, "completed": 1}
