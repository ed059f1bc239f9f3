"""The intake shared by orchestrator replicas: task ids, answers from the store, outcomes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from jira_orchestrator import RequestTimeout
from jira_orchestrator.messagebus import (
    Message,
    close_message_bus,
    get_message_bus,
    reset_message_bus,
)
from jira_orchestrator.orchestrator.deadletters import REASONS
from jira_orchestrator.orchestrator.replicas import (
    DISPATCH_FAILED,
    INTAKE_TOPIC,
    TASK_HEADER,
    Intake,
    submit,
)
from tests.dispatch.conftest import EXAMPLES, Ecosystem

ISSUES = json.loads((EXAMPLES.parent / "issues.json").read_text())


@pytest.fixture
async def fresh() -> AsyncIterator[None]:
    reset_message_bus()
    yield
    await close_message_bus()


def issue(key: str) -> dict[str, Any]:
    return next(i for i in ISSUES if i["key"] == key)


async def test_the_intake_dispatches_under_the_given_task_id_and_tells_the_plugin(
    ecosystem: Ecosystem,
) -> None:
    orchestrator = await ecosystem.start()
    Intake(orchestrator).start()
    seen: list[Message] = []
    spy = get_message_bus("spy")
    spy.subscribe("plugin/lobbi-platform-manager/request", seen.append)
    caller = get_message_bus("jira-webhooks")
    result = await submit(caller, issue("PLAT-202"), task_id="PLAT-202#1", timeout=10)
    assert result["outcome"] == "completed"
    assert result["taskId"] == "PLAT-202#1"
    assert result["plugin"] == "lobbi-platform-manager"
    await spy.flush()
    assert [m.headers.get(TASK_HEADER) for m in seen] == ["PLAT-202#1"]
    stored = orchestrator.tasks.get("PLAT-202#1")
    assert stored is not None
    assert stored.status == "completed"


async def test_the_same_task_again_is_answered_from_the_store_not_dispatched(
    ecosystem: Ecosystem,
) -> None:
    orchestrator = await ecosystem.start()
    intake = Intake(orchestrator)
    intake.start()
    seen: list[Message] = []
    spy = get_message_bus("spy")
    spy.subscribe("plugin/*/request", seen.append)
    caller = get_message_bus("jira-webhooks")
    first = await submit(caller, issue("PLAT-202"), task_id="t-1", timeout=10)
    again = await submit(caller, issue("PLAT-202"), task_id="t-1", timeout=10)
    await spy.flush()
    to_plugins = [m for m in seen if m.topic != INTAKE_TOPIC]
    assert len(to_plugins) == 1  # one request to a plugin for both
    assert again["outcome"] == first["outcome"] == "completed"
    assert again["fromStore"] is True
    assert again["plugin"] == first["plugin"]
    assert (intake.dispatched, intake.answered_from_store) == (1, 1)


async def test_without_a_task_id_the_intake_message_id_names_the_task(
    ecosystem: Ecosystem,
) -> None:
    orchestrator = await ecosystem.start()
    Intake(orchestrator).start()
    caller = get_message_bus("jira-webhooks")
    result = await submit(caller, issue("PLAT-202"), timeout=10)
    assert result["taskId"].startswith("intake-")


async def test_an_issue_no_plugin_can_do_is_dead_lettered_with_its_reason(
    ecosystem: Ecosystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEMO_FAIL", "frontend-design-system")
    orchestrator = await ecosystem.start("frontend-design-system")
    Intake(orchestrator).start()
    letters: list[Message] = []
    auditor = get_message_bus("auditor")
    auditor.subscribe("system/dead-letter", letters.append)
    auditor.subscribe("system/dead-letter/*", letters.append)  # sender-stamped letters
    result = await submit(get_message_bus("jira"), issue("UI-303"), task_id="UI-303", timeout=10)
    assert result["outcome"] == "failed"
    await auditor.flush()
    (letter,) = letters
    assert letter.payload["reason"] == DISPATCH_FAILED
    assert "design-token service unreachable" in letter.payload["error"]["message"]
    assert DISPATCH_FAILED in REASONS


async def test_a_request_that_is_not_an_issue_is_refused_and_dead_lettered(
    ecosystem: Ecosystem,
) -> None:
    orchestrator = await ecosystem.start("frontend-design-system")
    intake = Intake(orchestrator)
    intake.start()
    letters: list[Message] = []
    auditor = get_message_bus("auditor")
    auditor.subscribe("system/dead-letter", letters.append)
    auditor.subscribe("system/dead-letter/*", letters.append)  # sender-stamped letters
    reply = await get_message_bus("jira").request(
        topic=INTAKE_TOPIC, payload={"command": "dispatch", "parameters": {"issue": 7}}, timeout=10
    )
    assert reply["status"] == "error"
    assert reply["callerError"] is True
    await auditor.flush()
    assert [letter.payload["reason"] for letter in letters] == ["invalid-message"]
    assert intake.refused == 1


async def test_a_dispatch_whose_plugins_are_all_absent_is_tried_again_once_they_are_back(
    ecosystem: Ecosystem,
) -> None:
    orchestrator = await ecosystem.start("frontend-design-system")
    plugin = ecosystem.plugins["frontend-design-system"]
    await plugin.stop()  # as if its process were being restarted
    pauses: list[float] = []

    async def pause(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 2:
            await plugin.start()  # back, as up's supervisor brings it

    intake = Intake(orchestrator, sleep=pause)
    intake.start()
    result = await submit(get_message_bus("jira"), issue("UI-303"), task_id="UI-303", timeout=10)
    assert result["outcome"] == "completed", result
    assert result["plugin"] == "frontend-design-system"
    assert pauses == [0.5, 1.0]  # backoff, then the health check finds it
    assert intake.retried_unavailable == 2


async def test_absent_plugins_are_waited_for_a_bounded_time_then_dead_lettered(
    ecosystem: Ecosystem,
) -> None:
    orchestrator = await ecosystem.start("frontend-design-system")
    await ecosystem.plugins["frontend-design-system"].stop()
    pauses: list[float] = []

    async def pause(seconds: float) -> None:
        pauses.append(seconds)

    Intake(orchestrator, unavailable_for=10.0, sleep=pause).start()
    letters: list[Message] = []
    auditor = get_message_bus("auditor")
    auditor.subscribe("system/dead-letter", letters.append)
    auditor.subscribe("system/dead-letter/*", letters.append)  # sender-stamped letters
    result = await submit(get_message_bus("jira"), issue("UI-303"), task_id="UI-303", timeout=10)
    assert result["outcome"] == "failed"
    assert pauses == [0.5, 1.0, 2.0, 4.0, 4.0]  # 11.5 s >= 10 s
    await auditor.flush()
    assert [letter.payload["reason"] for letter in letters] == [DISPATCH_FAILED]


@pytest.mark.looptime
@pytest.mark.usefixtures("fresh")
async def test_submit_asks_again_under_the_same_task_id_when_an_answer_is_lost() -> None:
    replica = get_message_bus("jira-orchestrator")
    asked: list[Message] = []

    async def answer_the_second(message: Message) -> None:
        asked.append(message)
        if len(asked) == 2:  # the first answer was lost (its asker was reconnecting)
            result = {"taskId": message.payload["parameters"]["taskId"], "outcome": "completed"}
            await replica.respond(message.correlation_id, {"status": "success", "result": result})

    replica.subscribe(INTAKE_TOPIC, answer_the_second, queue="jira-orchestrator")
    result = await submit(
        get_message_bus("jira"), "a text", task_id="T-9", timeout=100, patience=20
    )
    assert result == {"taskId": "T-9", "outcome": "completed"}
    assert [m.payload["parameters"]["taskId"] for m in asked] == ["T-9", "T-9"]


@pytest.mark.looptime
@pytest.mark.usefixtures("fresh")
async def test_submit_without_a_task_id_does_not_ask_twice() -> None:
    asked: list[Message] = []
    get_message_bus("jira-orchestrator").subscribe(INTAKE_TOPIC, asked.append)
    with pytest.raises(RequestTimeout):
        await submit(get_message_bus("jira"), "a text", timeout=50, patience=20)
    assert len(asked) == 1
