"""Dispatch: routing to the example plugins, fallbacks, events, tasks, delegation."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import nats
import pytest

from jira_orchestrator import RPCError
from jira_orchestrator.messagebus import (
    Message,
    RPCClient,
    close_message_bus,
    get_message_bus,
    reset_message_bus,
)
from jira_orchestrator.orchestrator.dispatcher import DispatchResult, Orchestrator, issue_parameters
from jira_orchestrator.orchestrator.tasks import TaskStore
from jira_orchestrator.plugins import Issue, Plugin
from jira_orchestrator.routing import InvalidRequest, NoPlugins
from jira_orchestrator.transports.nats_server import NatsServer
from tests.dispatch.conftest import EXAMPLES, Ecosystem

ISSUES = json.loads((EXAMPLES.parent / "issues.json").read_text())
ROOT = Path(__file__).resolve().parents[2]


def kill_orchestrator_mid_task(plugins: Path, tasks: Path) -> None:
    """Run an orchestrator in a child process and SIGKILL it while a task is in flight."""
    with subprocess.Popen(
        [sys.executable, "-m", "tests.dispatch._crashing_orchestrator", str(plugins), str(tasks)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "SENT"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=20)


def issue(key: str) -> dict[str, Any]:
    return next(i for i in ISSUES if i["key"] == key)


async def test_every_sample_issue_is_done_by_a_plugin(ecosystem: Ecosystem, tmp_path: Path) -> None:
    orchestrator = await ecosystem.start()
    results = [await orchestrator.dispatch(item) for item in ISSUES]
    assert [r.outcome for r in results] == ["completed"] * len(ISSUES)
    by_key = {r.issue_key: r for r in results}
    assert by_key["SHOP-101"].plugin == "fastapi-backend"
    assert by_key["PLAT-201"].plugin == "lobbi-platform-manager"
    assert by_key["OPS-401"].plugin == "k8s-helm-deployer"
    assert not any(r.fallback_used for r in results)
    output = tmp_path / "output"
    assert (output / "fastapi-backend" / "routes_api_orders_id_history.py").is_file()
    assert (output / "lobbi-platform-manager" / "tenants" / "acme-corp.json").is_file()
    assert (output / "k8s-helm-deployer" / "charts" / "billing-api" / "Chart.yaml").is_file()
    assert orchestrator.tasks.counts() == {"completed": len(ISSUES)}


async def test_a_failing_plugin_falls_back_then_its_breaker_opens(
    ecosystem: Ecosystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEMO_FAIL", "frontend-design-system")
    orchestrator = await ecosystem.start()
    ui = [issue(key) for key in ("UI-301", "UI-302", "UI-303", "UI-304")]
    results = [await orchestrator.dispatch(item) for item in ui]
    assert all(r.outcome == "completed" for r in results)
    assert results[0].primary == "frontend-design-system"
    assert all(r.plugin != "frontend-design-system" for r in results)
    first = results[0].attempts[0]
    assert first.plugin == "frontend-design-system"
    assert first.outcome == "failed"
    assert "design-token service unreachable" in (first.error or "")
    assert results[0].fallback_used
    # threshold 2 and one retry in its manifest: one failed task opens the dispatcher's
    # breaker, and the router stops choosing it; its declared fallback takes the work
    assert orchestrator.availability("frontend-design-system") == 0.0
    later = results[1:]
    assert all(r.primary != "frontend-design-system" for r in later)
    assert {r.plugin for r in later} <= {"exec-automator"}


async def test_task_events_carry_ids_plugins_and_durations(ecosystem: Ecosystem) -> None:
    orchestrator = await ecosystem.start()
    events: list[Message] = []
    watcher = get_message_bus("watcher")
    watcher.subscribe("orchestration/*", events.append)
    result = await orchestrator.dispatch(issue("PLAT-202"))
    await watcher.flush()
    start, complete = (m for m in events if m.payload.get("taskId") == result.task_id)
    assert start.topic == "orchestration/task-start"
    assert start.payload["plugin"] == "lobbi-platform-manager"
    assert complete.topic == "orchestration/task-complete"
    assert complete.payload["plugin"] == "lobbi-platform-manager"
    assert complete.payload["outcome"] == "completed"
    assert complete.payload["durationMs"] == pytest.approx(result.duration * 1000, abs=0.01)
    assert complete.payload["durationMs"] > 0
    assert complete.payload["fallbackUsed"] is False


async def test_when_every_candidate_fails_the_task_fails_with_every_error(
    ecosystem: Ecosystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEMO_FAIL", "frontend-design-system")
    orchestrator = await ecosystem.start("frontend-design-system")  # no fallback running
    result = await orchestrator.dispatch(issue("UI-303"))
    assert result.outcome == "failed"
    assert result.plugin is None
    assert "design-token service unreachable" in (result.error or "")
    assert {a.outcome for a in result.attempts[1:]} == {"skipped"}  # the others are down
    stored = orchestrator.tasks.get(result.task_id)
    assert stored is not None
    assert stored.status == "failed"


async def test_unfinished_tasks_are_resumed_after_a_restart(
    ecosystem: Ecosystem, tmp_path: Path
) -> None:
    crashed = TaskStore(tmp_path / "tasks.db")  # what a killed orchestrator left behind
    crashed.create(
        "task-1", {"request": issue("OPS-401"), "parameters": None, "files": []}, "handle_issue"
    )
    crashed.running("task-1", "k8s-helm-deployer", [])
    crashed.close()
    orchestrator = await ecosystem.start()
    resumed = await orchestrator.resume()
    assert [(r.task_id, r.outcome, r.plugin) for r in resumed] == [
        ("task-1", "completed", "k8s-helm-deployer")
    ]
    assert orchestrator.tasks.unfinished() == []


async def test_can_route_to_is_enforced_when_a_plugin_delegates(ecosystem: Ecosystem) -> None:
    await ecosystem.start()
    backend = ecosystem.plugins["fastapi-backend"]  # canRouteTo: lobbi-platform-manager
    tenant = await backend.delegate(
        "lobbi-platform-manager", "create_tenant", tenant_id="initech", plan="pro"
    )
    assert tenant["plan"] == "pro"
    frontend = ecosystem.plugins["frontend-design-system"]  # canRouteTo: []
    with pytest.raises(RPCError) as caught:
        await frontend.delegate("lobbi-platform-manager", "create_tenant", tenant_id="x")
    assert caught.value.data["type"] == "CommandRejected"
    assert "canRouteTo" in caught.value.data["message"]


async def test_a_refused_delegation_is_one_warning_line_and_counted(
    ecosystem: Ecosystem, caplog: pytest.LogCaptureFixture
) -> None:
    orchestrator = await ecosystem.start()
    frontend = ecosystem.plugins["frontend-design-system"]  # canRouteTo: []
    caplog.set_level(logging.DEBUG)
    for _ in range(3):  # any plugin can do this as often as it likes
        with pytest.raises(RPCError) as caught:
            await frontend.delegate("lobbi-platform-manager", "create_tenant", tenant_id="x")
        assert caught.value.data == {
            "type": "CommandRejected",
            "message": "'frontend-design-system' may not route work to "
            "'lobbi-platform-manager' (canRouteTo)",
        }
    refusals = [r for r in caplog.records if "delegat" in r.getMessage()]
    assert [(r.levelno, r.exc_info) for r in refusals] == [(logging.WARNING, None)] * 3
    assert "\n" not in refusals[-1].getMessage()
    assert "'frontend-design-system' may not route work to" in refusals[-1].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert orchestrator.status()["refusedDelegations"] == 3


async def test_health_tracks_plugins_that_stop(ecosystem: Ecosystem) -> None:
    orchestrator = await ecosystem.start()
    assert orchestrator.availability("exec-automator") == 1.0
    await ecosystem.plugins["exec-automator"].stop()
    await get_message_bus("watcher").flush()
    assert orchestrator.health["exec-automator"].status == "stopped"
    assert orchestrator.availability("exec-automator") == 0.0
    status = await RPCClient("plugin://jira-orchestrator/rpc").call("status")
    assert status["plugins"]["exec-automator"]["availability"] == 0.0
    assert status["plugins"]["fastapi-backend"]["status"] == "healthy"


async def test_dispatch_over_rpc(ecosystem: Ecosystem) -> None:
    await ecosystem.start()
    answer = await RPCClient("plugin://jira-orchestrator/rpc").call(
        "dispatch", {"request": "Onboard tenant hooli on the starter plan"}
    )
    assert answer["outcome"] == "completed"
    assert answer["plugin"] == "lobbi-platform-manager"


async def test_bad_requests_are_refused_clearly(ecosystem: Ecosystem) -> None:
    orchestrator = await ecosystem.start()
    with pytest.raises(InvalidRequest):
        await orchestrator.dispatch("   ")
    with pytest.raises(InvalidRequest):
        await orchestrator.dispatch({"key": "X-1", "fields": {"summary": 42}})
    # the orchestrator keeps serving
    assert (await orchestrator.dispatch(issue("OPS-404"))).outcome == "completed"


def test_issue_parameters_flatten_a_jira_issue() -> None:
    params = issue_parameters(issue("SHOP-102"))
    assert params["key"] == "SHOP-102"
    assert params["description"].startswith("Sign-up fails")
    assert params["issueType"] == "Bug"
    assert params["labels"] == ["backend"]
    assert issue_parameters(issue("SHOP-101"))["components"] == ["orders-service"]


def test_an_unknown_plugins_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(NoPlugins, match="nowhere"):
        Orchestrator(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoPlugins):
        Orchestrator(tmp_path / "empty")


async def test_the_orchestrator_stores_dead_letters(ecosystem: Ecosystem, tmp_path: Path) -> None:
    orchestrator = await ecosystem.start(dead_letters=tmp_path / "dead-letters.db")
    assert orchestrator.dead_letters is not None
    worker = get_message_bus("flaky-worker")

    def broken(message: Message) -> None:
        raise RuntimeError("cannot parse the invoice")

    worker.subscribe("plugin/flaky-worker/events", broken)
    await get_message_bus("sender").publish(topic="plugin/flaky-worker/events", payload={"n": 1})
    await worker.flush()
    await orchestrator.dead_letters.flush()
    letters = orchestrator.dead_letters.store.list()
    assert [(letter.reason, letter.error_message) for letter in letters] == [
        ("handler-error", "cannot parse the invoice")
    ]


async def test_a_task_in_flight_when_the_orchestrator_is_killed_is_resumed(
    tmp_path: Path,
) -> None:

    plugins = tmp_path / "plugins"
    folder = plugins / "key-rotator" / ".claude-plugin"
    folder.mkdir(parents=True)
    (folder / "plugin.json").write_text(
        json.dumps({"name": "key-rotator", "description": "Rotates billing keys and secrets"})
    )
    tasks = tmp_path / "tasks.db"
    await asyncio.to_thread(kill_orchestrator_mid_task, plugins, tasks)
    left = TaskStore(tasks).unfinished()
    assert [(t.status, t.plugin) for t in left] == [("running", "key-rotator")]

    reset_message_bus()
    healthy = Plugin(plugins / "key-rotator", state_path=tmp_path / "healthy.db")

    @healthy.command("handle_issue")
    def handle_issue(issue: Issue) -> str:
        return f"rotated for {issue.key}"

    await healthy.start()
    orchestrator = Orchestrator(plugins, tasks=tasks)
    await orchestrator.start()
    try:
        resumed = await orchestrator.resume()
        assert [(r.task_id, r.outcome, r.result) for r in resumed] == [
            (left[0].id, "completed", "rotated for OPS-9")
        ], [r.error for r in resumed]
        assert orchestrator.tasks.unfinished() == []
    finally:
        await orchestrator.stop()
        orchestrator.close()
        await healthy.stop()
        await close_message_bus()


async def _line(stream: asyncio.StreamReader, starting: str) -> str:
    """The next line of a child's output that starts with ``starting`` (its own event)."""
    while True:
        line = (await stream.readline()).decode()
        if not line:
            raise AssertionError(f"the process ended before printing {starting!r}")
        if line.startswith(starting):
            return line.strip()


async def stored_requests(server: NatsServer) -> int:
    """Requests JetStream holds for plugins (taken by one and not answered, or waiting)."""
    client = await nats.connect(server.url, allow_reconnect=False)
    try:
        info = await client.jetstream().stream_info("JO_REQUESTS")
        return info.state.messages
    finally:
        await client.close()


async def test_a_plugin_killed_mid_request_falls_back_when_its_heartbeat_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not after the 300 s task timeout: once the heartbeat finds nobody answering."""
    with NatsServer(tmp_path / "nats") as server:
        monkeypatch.setenv("JIRA_ORCHESTRATOR_BUS_URL", server.url)
        monkeypatch.setenv("JIRA_ORCHESTRATOR_OUTPUT", str(tmp_path / "output"))
        monkeypatch.setenv("JIRA_ORCHESTRATOR_STATE_DIR", str(tmp_path / "state"))
        reset_message_bus()
        world = Ecosystem(tmp_path)
        hanging = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "tests.dispatch._hanging_plugin"],
            *[str(EXAMPLES / "k8s-helm-deployer"), server.url, str(tmp_path / "k8s.db")],
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        task: asyncio.Task[DispatchResult] | None = None
        try:
            assert hanging.stdout is not None
            async with asyncio.timeout(45):  # bounds a failure; the task timeout is 300 s
                await _line(hanging.stdout, "READY")
                orchestrator = await world.start("exec-automator", heartbeat=0.2)
                assert orchestrator.manifests["k8s-helm-deployer"].orchestration.task_timeout >= 300
                task = asyncio.create_task(orchestrator.dispatch(issue("OPS-401")))
                assert await _line(hanging.stdout, "HANDLING") == "HANDLING OPS-401"
                assert await stored_requests(server) == 1  # taken, not answered
                hanging.kill()
                await hanging.wait()
                result = await task
                await orchestrator.bus.flush()
                # withdrawn: a k8s-helm-deployer restarted later is not handed it again
                assert await stored_requests(server) == 0
            assert result.outcome == "completed"
            assert result.primary == "k8s-helm-deployer"
            assert result.plugin == "exec-automator"  # the primary's declared fallback
            lost = result.attempts[0]
            assert (lost.plugin, lost.outcome) == ("k8s-helm-deployer", "failed")
            assert "lost while handling the request" in (lost.error or "")
            assert orchestrator.health["k8s-helm-deployer"].status == "stopped"
        finally:
            if task is not None:
                task.cancel()
            if hanging.returncode is None:
                hanging.kill()
                await hanging.wait()
            try:
                await world.stop()
            finally:
                await close_message_bus()


async def test_a_status_or_breaker_event_speaks_only_for_the_plugin_its_topic_names(
    ecosystem: Ecosystem,
) -> None:
    orchestrator = await ecosystem.start("k8s-helm-deployer", "frontend-design-system")
    letters: list[Message] = []
    watcher = get_message_bus("dlq-watcher")
    watcher.subscribe("system/dead-letter/*", letters.append)
    frontend = get_message_bus("frontend-design-system")
    raw = frontend.transport  # a client outside the SDK writes any source it likes
    # On its own, allowed subject, but claiming to be another plugin (was believed).
    await raw.publish(
        Message(
            topic="plugin/frontend-design-system/status",
            source="k8s-helm-deployer",
            payload={"status": "stopped"},
        )
    )
    await raw.publish(
        Message(
            topic="plugin/frontend-design-system/circuit-breaker",
            source="k8s-helm-deployer",
            payload={"state": "open"},
        )
    )
    # And on another plugin's topic under its own name.
    await raw.publish(
        Message(
            topic="plugin/k8s-helm-deployer/status",
            source="frontend-design-system",
            payload={"status": "stopped"},
        )
    )
    await frontend.flush()
    await watcher.flush()
    health = orchestrator.health["k8s-helm-deployer"]
    assert (health.status, health.breaker) != ("stopped", "open")
    assert orchestrator.availability("k8s-helm-deployer") == 1.0
    assert orchestrator.status()["spoofed"] == 3
    assert [letter.payload["reason"] for letter in letters] == ["spoofed"] * 3
    # The plugin speaking for itself is believed.
    await frontend.publish(
        Message(
            topic="plugin/frontend-design-system/status",
            source="frontend-design-system",
            payload={"status": "draining"},
        )
    )
    await frontend.flush()
    assert orchestrator.health["frontend-design-system"].status == "draining"


async def test_a_plugin_without_rpc_that_serves_its_requests_is_dispatched_to(
    ecosystem: Ecosystem,
) -> None:
    # The least a plugin in another language does (docs/protocol.md, "Minimal plugin"):
    # serve plugin/<id>/request in its queue group, with no JSON-RPC endpoint at all.
    raw = get_message_bus("k8s-helm-deployer")

    async def serve(message: Message) -> None:
        command = message.payload["command"]
        await raw.respond(message.correlation_id or "", {"status": "success", "result": command})

    raw.subscribe("plugin/k8s-helm-deployer/request", serve, queue="k8s-helm-deployer")
    names = sorted(  # the Python examples (plugin.py), the Helm one left to the raw plugin
        p.parent.name for p in EXAMPLES.glob("*/plugin.py") if p.parent.name != raw.plugin_id
    )
    orchestrator = await ecosystem.start(*names)
    assert orchestrator.availability("k8s-helm-deployer") == 1.0
    result = await orchestrator.dispatch(issue("OPS-401"))
    assert (result.outcome, result.plugin, result.result) == (
        "completed",
        "k8s-helm-deployer",
        "handle_issue",
    )


async def test_a_plugin_nobody_serves_is_excluded_for_that_reason(ecosystem: Ecosystem) -> None:
    names = sorted(  # the Python examples (plugin.py) but the Helm one
        p.parent.name for p in EXAMPLES.glob("*/plugin.py") if p.parent.name != "k8s-helm-deployer"
    )
    orchestrator = await ecosystem.start(*names)
    result = await orchestrator.dispatch(issue("OPS-401"))
    assert result.plugin != "k8s-helm-deployer"
    assert result.decision is not None
    reason = result.decision.excluded["k8s-helm-deployer"]
    assert "circuit breaker" not in reason
    assert "nobody answers" in reason
    health = orchestrator.status()["plugins"]["k8s-helm-deployer"]
    assert (health["status"], health["availability"]) == ("stopped", 0.0)
    assert "nobody answers its requests" in health["reason"]
