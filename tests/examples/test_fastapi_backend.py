"""Seed parity: the seed's FastAPIBackendPlugin and its two unit tests, on our SDK."""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from jira_orchestrator.messagebus import (
    Message,
    RPCClient,
    close_message_bus,
    get_message_bus,
    reset_message_bus,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugins" / "fastapi-backend"


def load_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """The example plugin module, fresh, with its output and state in tmp_path."""
    reset_message_bus()
    monkeypatch.setenv("JIRA_ORCHESTRATOR_OUTPUT", str(tmp_path / "output"))
    monkeypatch.setenv("JIRA_ORCHESTRATOR_STATE_DIR", str(tmp_path / "state"))
    module = load_module(EXAMPLE / "plugin.py", "fastapi_backend_example")
    yield module
    await module.plugin.stop()
    await close_message_bus()


def test_the_example_is_at_most_60_lines() -> None:
    assert len((EXAMPLE / "plugin.py").read_text().splitlines()) <= 60


# -- the seed's two unit tests, ported ----------------------------------------------------


async def test_should_start_and_announce_ready(backend: Any) -> None:
    message_bus = get_message_bus("test-subscriber")
    ready_received = False

    def on_status(message: Message) -> None:
        nonlocal ready_received
        if message.payload["status"] == "ready":
            ready_received = True

    message_bus.subscribe("plugin/fastapi-backend/status", on_status)
    await backend.plugin.start()
    await message_bus.flush()  # handlers run in their own tasks: let them finish
    assert ready_received is True


async def test_should_handle_rpc_calls(backend: Any) -> None:
    await backend.plugin.start()
    client = RPCClient("plugin://fastapi-backend/rpc")
    result = await client.call(
        "create_endpoint", {"path": "/api/users", "method": "POST", "database": "mongodb"}
    )
    assert result["filePath"]
    assert "fastapi" in result["code"]


# -- beyond the seed: the generated file is real ------------------------------------------


async def test_generated_endpoint_is_written_and_importable_with_fastapi(
    backend: Any, tmp_path: Path
) -> None:
    await backend.plugin.start()
    client = RPCClient("plugin://fastapi-backend/rpc")
    result = await client.call("create_endpoint", {"path": "/api/users-v2/{id}", "method": "PUT"})
    written = Path(result["filePath"])
    assert written.parent == tmp_path / "output" / "fastapi-backend"
    assert await asyncio.to_thread(written.read_text) == result["code"]
    ast.parse(result["code"])
    module = load_module(written, "generated_route")
    routes = [(route.path, sorted(route.methods)) for route in module.router.routes]
    assert routes == [("/api/users-v2/{id}", ["PUT"])]
    sys.modules.pop("generated_route", None)


async def test_commands_over_the_request_topic_answer_like_the_seed(backend: Any) -> None:
    await backend.plugin.start()
    caller = get_message_bus("jira-orchestrator")
    ok = await caller.request(
        topic="plugin/fastapi-backend/request",
        payload={"command": "create_model", "parameters": {"name": "User"}},
        timeout=5,
    )
    assert ok == {"status": "success", "result": {"modelName": "User", "schemaId": "schema_User"}}
    unknown = await caller.request(
        topic="plugin/fastapi-backend/request",
        payload={"command": "drop_database", "parameters": {}},
        timeout=5,
    )
    assert unknown["status"] == "error"
    assert "drop_database" in unknown["error"]
    bad = await caller.request(
        topic="plugin/fastapi-backend/request",
        payload={"command": "create_endpoint", "parameters": {"path": "/x", "method": "BREW"}},
        timeout=5,
    )
    assert bad["status"] == "error"
    assert "method" in bad["error"]


async def test_state_and_status_reflect_the_work_done(backend: Any) -> None:
    plugin = backend.plugin
    await plugin.start()
    client = RPCClient("plugin://fastapi-backend/rpc")
    for path in ("/a", "/b", "/a"):
        await client.call("create_endpoint", {"path": path, "method": "GET"})
    assert sorted(e["path"] for e in plugin.state.get_set("endpoints")) == ["/a", "/b"]
    status = await client.call("get_status")
    assert status["requestsProcessed"] == 3
    assert status["errorRate"] == 0
    assert status["circuitBreakerState"] == "closed"
    assert status["latencyMs"]["p50"] is not None
    health = await client.call("health_check")
    assert health["status"] == "healthy"


async def test_routing_decisions_naming_the_plugin_are_counted(backend: Any) -> None:
    plugin = backend.plugin
    await plugin.start()
    router = get_message_bus("router")
    for primary in ("fastapi-backend", "frontend", "fastapi-backend"):
        await router.publish(
            topic="routing/decision", payload={"primaryPlugin": primary, "requestId": "r"}
        )
    await router.flush()
    assert plugin.state.get_counter("requests_routed") == 2


async def test_handle_issue_builds_the_endpoint_the_issue_names(backend: Any) -> None:
    await backend.plugin.start()
    caller = get_message_bus("jira-orchestrator")
    issue = {
        "key": "SHOP-7",
        "summary": "Expose order history",
        "description": "We need GET /api/orders/{id}/history for the account page.",
        "labels": ["backend"],
    }
    reply = await caller.request(
        topic="plugin/fastapi-backend/request",
        payload={"command": "handle_issue", "parameters": issue},
        timeout=5,
    )
    assert reply["status"] == "success"
    assert "@router.get('/api/orders/{id}/history')" in reply["result"]["code"]
    vague = await caller.request(
        topic="plugin/fastapi-backend/request",
        payload={"command": "handle_issue", "parameters": {"key": "SHOP-8", "summary": "x"}},
        timeout=5,
    )
    assert vague["result"]["filePath"].endswith("routes_api_shop_8.py")
    empty = await caller.request(
        topic="plugin/fastapi-backend/request",
        payload={"command": "handle_issue", "parameters": {"summary": ""}},
        timeout=5,
    )
    assert empty["status"] == "error"
    assert "summary" in empty["error"]
