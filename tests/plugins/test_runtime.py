"""The plugin runtime: commands, RPC, acceptsRoutingFrom, breaker, metrics, start/stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jira_orchestrator import RPCError
from jira_orchestrator.messagebus import Message, MessageBus, RPCClient
from jira_orchestrator.plugins import Plugin

BusFactory = Callable[[str], MessageBus]


def make_plugin(root: Path, name: str = "worker", **manifest: Any) -> Path:
    folder = root / name
    (folder / ".claude-plugin").mkdir(parents=True)
    (folder / "agents").mkdir()
    (folder / "agents" / "helm-expert.md").write_text(
        "---\nname: helm-expert\ndescription: Writes Helm charts for Kubernetes deploys.\n"
        "tags: [helm, kubernetes]\n---\nHelm charts.\n"
    )
    document = {"name": name, "version": "1.2.3", **manifest}
    (folder / ".claude-plugin" / "plugin.json").write_text(json.dumps(document))
    return folder


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def ask(bus: MessageBus, plugin_id: str, command: str, **parameters: Any) -> Any:
    return await bus.request(
        topic=f"plugin/{plugin_id}/request",
        payload={"command": command, "parameters": parameters},
        timeout=5,
    )


async def test_a_command_answers_success_with_its_result(
    tmp_path: Path, start_plugin: Any, message_bus: BusFactory
) -> None:
    plugin = Plugin(make_plugin(tmp_path), bus_url="memory://", state_path=tmp_path / "s.db")

    @plugin.command("add")
    def add(a: int, b: int = 1) -> int:
        return a + b

    await start_plugin(plugin)
    caller = message_bus("jira-orchestrator")
    assert await ask(caller, "worker", "add", a=2, b=3) == {"status": "success", "result": 5}


async def test_command_errors_answer_status_error_and_are_counted(
    tmp_path: Path, start_plugin: Any, message_bus: BusFactory
) -> None:
    plugin = Plugin(make_plugin(tmp_path), bus_url="memory://", state_path=tmp_path / "s.db")

    @plugin.command()
    def explode() -> None:
        raise RuntimeError("disk full")

    @plugin.command()
    def needs(count: int) -> int:
        return count

    await start_plugin(plugin)
    caller = message_bus("jira-orchestrator")
    assert await ask(caller, "worker", "explode") == {
        "status": "error",
        "error": "disk full",
        "errorType": "RuntimeError",
    }
    unknown = await ask(caller, "worker", "nope")
    assert unknown["status"] == "error"
    assert "known: explode, needs" in unknown["error"]
    assert unknown["callerError"] is True
    invalid = await ask(caller, "worker", "needs", count="many")
    assert invalid["status"] == "error"
    assert invalid["callerError"] is True
    assert "params.count" in invalid["error"]
    malformed = await caller.request(topic="plugin/worker/request", payload=["x"], timeout=5)
    assert malformed["status"] == "error"
    status = plugin.get_status()
    assert status["requestsFailed"] == 1  # only the plugin's own failure counts
    assert status["requestsProcessed"] == 0
    assert status["errorRate"] == 1.0


async def test_accepts_routing_from_refuses_other_sources_without_executing(
    tmp_path: Path, start_plugin: Any, message_bus: BusFactory
) -> None:
    folder = make_plugin(tmp_path, routing={"acceptsRoutingFrom": ["jira-orchestrator"]})
    plugin = Plugin(folder, bus_url="memory://", state_path=tmp_path / "s.db")
    ran: list[str] = []

    @plugin.command()
    def deploy() -> str:
        ran.append("deploy")
        return "deployed"

    await start_plugin(plugin)
    letters: list[Message] = []
    message_bus("auditor").subscribe("system/dead-letter/*", letters.append)
    refused = await ask(message_bus("intruder"), "worker", "deploy")
    assert refused["status"] == "error"
    assert "'intruder' may not route work to 'worker'" in refused["error"]
    with pytest.raises(RPCError, match="may not route"):
        await RPCClient("plugin://worker/rpc", bus=message_bus("intruder")).call(
            "execute_command", {"command": "deploy"}
        )
    assert ran == []
    assert plugin.get_status()["requestsRejected"] == 2
    await message_bus("auditor").flush()
    assert [letter.payload["reason"] for letter in letters] == ["rejected-source"]
    allowed = await ask(message_bus("jira-orchestrator"), "worker", "deploy")
    assert allowed == {"status": "success", "result": "deployed"}


async def test_the_breaker_opens_answers_the_seeds_fallback_and_is_announced(
    tmp_path: Path, start_plugin: Any, message_bus: BusFactory
) -> None:
    folder = make_plugin(
        tmp_path, errorHandling={"circuitBreaker": {"threshold": 2, "timeout": 30000}}
    )
    clock = FakeClock()
    plugin = Plugin(folder, bus_url="memory://", state_path=tmp_path / "s.db", clock=clock)
    healthy = False

    @plugin.command()
    def flaky() -> str:
        if not healthy:
            raise ConnectionError("upstream down")
        return "ok"

    await start_plugin(plugin)
    caller = message_bus("jira-orchestrator")
    events: list[dict[str, Any]] = []
    message_bus("ops").subscribe(
        "plugin/worker/circuit-breaker", lambda m: events.append(m.payload)
    )
    for _ in range(2):
        assert (await ask(caller, "worker", "flaky"))["error"] == "upstream down"
    refused = await ask(caller, "worker", "flaky")
    assert refused == {
        "status": "error",
        "error": "Service temporarily unavailable",
        "fallback": True,
    }
    assert plugin.health_check()["status"] == "unhealthy"
    await message_bus("ops").flush()
    assert [e["state"] for e in events] == ["open"]
    assert events[0]["failures"] == 2
    healthy = True
    clock.now += 31  # past the breaker's timeout: half-open lets trial calls through
    assert await ask(caller, "worker", "flaky") == {"status": "success", "result": "ok"}
    assert plugin.health_check()["status"] in {"degraded", "healthy"}


async def test_builtin_rpc_methods_report_real_figures(
    tmp_path: Path, start_plugin: Any, message_bus: BusFactory
) -> None:
    clock = FakeClock()
    plugin = Plugin(
        make_plugin(tmp_path), bus_url="memory://", state_path=tmp_path / "s.db", clock=clock
    )

    @plugin.command()
    async def work(seconds: float) -> str:
        clock.now += seconds  # the command "takes" this long on the plugin's clock
        return "done"

    await start_plugin(plugin)
    client = RPCClient("plugin://worker/rpc", bus=message_bus("jira-orchestrator"))
    for seconds in (0.010, 0.020, 0.030, 0.040):
        assert (
            await client.call(
                "execute_command", {"command": "work", "parameters": {"seconds": seconds}}
            )
            == "done"
        )
    clock.now += 5
    status = await client.call("get_status")
    assert status["status"] == "running"
    assert status["requestsProcessed"] == 4
    assert status["activeRequests"] == 0
    assert status["uptime"] == pytest.approx(5.1)
    assert status["latencyMs"]["p50"] == pytest.approx(30.0)
    assert status["latencyMs"]["p99"] == pytest.approx(40.0)
    assert status["version"] == "1.2.3"
    health = await client.call("health_check")
    assert health["status"] == "healthy"
    assert health["errorRate"] == 0
    agents = await client.call("query_agents", {"criteria": {"query": "helm chart"}})
    assert agents[0]["name"] == "helm-expert"
    with pytest.raises(RPCError) as caught:
        await client.call("query_agents", {"criteria": {"bogus": 1}})
    assert caught.value.code == -32602


async def test_user_rpc_methods_and_topic_handlers(
    tmp_path: Path, start_plugin: Any, message_bus: BusFactory
) -> None:
    plugin = Plugin(make_plugin(tmp_path), bus_url="memory://", state_path=tmp_path / "s.db")
    seen: list[Any] = []

    @plugin.rpc("ping")
    def ping() -> dict[str, str]:
        return {"message": "pong"}

    @plugin.on("system/broadcast")
    def on_broadcast(message: Message) -> None:
        seen.append(message.payload)

    with pytest.raises(ValueError, match="built-in"):
        plugin.rpc("get_status")(ping)
    await start_plugin(plugin)
    client = RPCClient("plugin://worker/rpc", bus=message_bus("caller"))
    assert await client.call("ping") == {"message": "pong"}
    assert plugin.get_status()["requestsProcessed"] == 1
    await message_bus("jira-orchestrator").publish(topic="system/broadcast", payload="hello")
    await message_bus("jira-orchestrator").flush()
    assert seen == ["hello"]


async def test_stop_drains_work_in_flight_then_stops_answering(
    tmp_path: Path, message_bus: BusFactory
) -> None:
    plugin = Plugin(make_plugin(tmp_path), bus_url="memory://", state_path=tmp_path / "s.db")
    started, release = asyncio.Event(), asyncio.Event()

    @plugin.command()
    async def slow() -> str:
        started.set()
        await release.wait()
        return "finished"

    await plugin.start()
    caller = message_bus("jira-orchestrator")
    statuses: list[str] = []
    message_bus("ops").subscribe(
        "plugin/worker/status", lambda m: statuses.append(m.payload["status"])
    )
    answer = asyncio.create_task(ask(caller, "worker", "slow"))
    await started.wait()
    stopping = asyncio.create_task(plugin.stop(timeout=30))
    await asyncio.sleep(0)
    assert not stopping.done()  # waiting for the command in flight
    release.set()
    await stopping
    assert await answer == {"status": "success", "result": "finished"}
    assert not plugin.running
    from jira_orchestrator import NoResponders

    with pytest.raises(NoResponders):
        await ask(caller, "worker", "slow")
    await message_bus("ops").flush()
    assert statuses[-1] == "stopped"


@pytest.mark.looptime
async def test_stop_gives_up_on_work_that_never_ends(
    tmp_path: Path, message_bus: BusFactory
) -> None:
    plugin = Plugin(make_plugin(tmp_path), bus_url="memory://", state_path=tmp_path / "s.db")
    started = asyncio.Event()

    @plugin.command()
    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    await plugin.start()
    task = asyncio.create_task(ask(message_bus("caller"), "worker", "forever"))
    await started.wait()
    loop = asyncio.get_running_loop()
    begun = loop.time()
    await plugin.stop(timeout=7)
    assert loop.time() - begun == pytest.approx(7)
    assert not plugin.running
    task.cancel()


def test_a_plugin_needs_a_valid_manifest(tmp_path: Path) -> None:
    from jira_orchestrator import ManifestError

    with pytest.raises(ManifestError):
        Plugin(tmp_path / "missing")
    folder = make_plugin(tmp_path, errorHandling={"circuitBreaker": {"threshhold": 3}})
    with pytest.raises(ManifestError, match="threshold"):
        Plugin(folder)


def test_run_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    folder = make_plugin(tmp_path)
    script = folder / "main.py"
    script.write_text(
        "from pathlib import Path\n"
        "from jira_orchestrator.plugins import Plugin\n"
        "plugin = Plugin(Path(__file__).parent, state_path=Path(__file__).parent / 's.db')\n"
        "plugin.run()\n"
    )
    with subprocess.Popen(
        [sys.executable, str(script)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as process:
        assert process.stderr is not None
        for line in process.stderr:  # blocks until the plugin says it is ready
            if "ready" in line:
                break
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
