"""RPC methods: described from their signatures; the deadline of the call they run for."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from enum import Enum

import pytest
from pydantic import BaseModel

from jira_orchestrator import InvalidParams
from jira_orchestrator.messagebus import RPCClient, RPCServer, get_message_bus
from jira_orchestrator.messagebus.rpc import method_from_function


class Color(Enum):
    RED = "red"


class Scale(BaseModel):
    replicas: int


def test_type_hints_that_cannot_be_resolved_are_refused_at_registration() -> None:
    def handler(issue: NotDefinedAnywhere) -> None:  # type: ignore[name-defined]  # noqa: F821
        return None

    with pytest.raises(TypeError, match="cannot read the type hints of 'handle_issue'"):
        method_from_function("handle_issue", handler)


def test_a_function_with_kwargs_ignores_unnamed_parameters() -> None:
    def handler(name: str, **_: object) -> str:
        return name

    method = method_from_function("greet", handler)
    assert method.bind({"name": "Ada", "extra": 1}) == ([], {"name": "Ada"})


def test_not_a_function_is_refused() -> None:
    with pytest.raises(TypeError, match="callable"):
        method_from_function("x", "not a function")  # type: ignore[arg-type]


def test_params_are_checked_as_json_strictly_not_coerced() -> None:
    def schedule(at: datetime, color: Color, replicas: int, ratio: float = 1.0) -> None:
        return None

    method = method_from_function("schedule", schedule)
    _, kwargs = method.bind(
        {"at": "2026-12-03T10:00:00Z", "color": "red", "replicas": 2, "ratio": 1}
    )
    assert kwargs["at"] == datetime(2026, 12, 3, 10, tzinfo=UTC)
    assert kwargs["color"] is Color.RED
    assert kwargs["ratio"] == 1.0
    for bad in ("2", True, 2.0):
        with pytest.raises(InvalidParams, match=r"params\.replicas"):
            method.bind({"at": "2026-12-03T10:00:00Z", "color": "red", "replicas": bad})
    with pytest.raises(InvalidParams, match=r"params\.color"):
        method.bind({"at": "2026-12-03T10:00:00Z", "color": "mauve", "replicas": 2})


def test_a_whole_params_model_is_checked_strictly_too() -> None:
    def scale(params: Scale) -> int:
        return params.replicas

    method = method_from_function("scale", scale)
    assert method.bind({"replicas": 3})[0][0] == Scale(replicas=3)
    with pytest.raises(InvalidParams, match=r"params\.replicas"):
        method.bind({"replicas": "3"})


def test_python_values_from_a_local_call_are_still_checked() -> None:
    def schedule(at: datetime, replicas: int) -> None:
        return None

    method = method_from_function("schedule", schedule)
    moment = datetime(2026, 12, 3, tzinfo=UTC)
    assert method.bind({"at": moment, "replicas": 1})[1] == {"at": moment, "replicas": 1}
    with pytest.raises(InvalidParams, match=r"params\.replicas"):
        method.bind({"at": moment, "replicas": "1"})


@pytest.mark.looptime
async def test_a_task_a_method_leaves_running_is_not_held_to_its_callers_deadline() -> None:
    starter, worker = RPCServer("plugin://starter/rpc"), RPCServer("plugin://worker/rpc")
    to_worker = RPCClient("plugin://worker/rpc", bus=get_message_bus("starter"), timeout=60)
    gate = asyncio.Event()
    left_behind: list[asyncio.Task[str]] = []

    @worker.method()
    async def long_job() -> str:
        await gate.wait()
        return "done"

    @starter.method()
    async def start() -> str:
        left_behind.append(asyncio.create_task(to_worker.call("long_job")))
        return "started"

    assert await RPCClient("plugin://starter/rpc").call("start", timeout=1) == "started"
    await asyncio.sleep(10)  # (loop time) well past the deadline of the call to start
    gate.set()
    assert await left_behind[0] == "done"
    assert worker.timeouts == 0


async def test_an_odd_depth_header_from_a_foreign_caller_is_ignored() -> None:
    server = RPCServer("plugin://odd/rpc")
    server.register("ping", lambda: "pong")
    caller = get_message_bus("foreign")
    for depth in ("9" * 5000, "٣", "-1", ""):
        reply = await caller.request(
            topic="plugin/odd/rpc",
            payload={"jsonrpc": "2.0", "method": "ping", "id": 1},
            headers={"rpc-depth": depth},
            timeout=10,
        )
        assert reply == {"jsonrpc": "2.0", "result": "pong", "id": 1}
