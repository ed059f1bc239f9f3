"""RPC conformance: ``plugin://<id>/rpc`` servers and clients over a transport."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from pydantic import BaseModel

from jira_orchestrator import (
    InvalidEndpoint,
    InvalidParams,
    MethodNotFound,
    NoResponders,
    RequestTimeout,
    RPCError,
)
from jira_orchestrator.messagebus import RPCClient, RPCServer
from tests.conformance.base import WAIT


class Endpoint(BaseModel):
    path: str
    method: str = "GET"


class RPCConformance:
    """Mixed into a transport's conformance class beside `BusConformance`."""

    def server(self, buses: Any, plugin_id: str = "your-plugin", **options: Any) -> RPCServer:
        return RPCServer(f"plugin://{plugin_id}/rpc", bus=buses(plugin_id), **options)

    def client(self, buses: Any, plugin_id: str = "your-plugin") -> RPCClient:
        return RPCClient(f"plugin://{plugin_id}/rpc", bus=buses("caller"), timeout=WAIT)

    async def test_call_returns_the_value_itself(self, buses: Any) -> None:
        server = self.server(buses)

        @server.register("ping")
        async def ping() -> dict[str, str]:
            return {"message": "pong"}

        assert await self.client(buses).call("ping") == {"message": "pong"}

    async def test_seed_style_handler_gets_the_whole_params_object(self, buses: Any) -> None:
        server = self.server(buses)

        async def create_endpoint(params: dict[str, Any]) -> dict[str, Any]:
            return {"url": f"{params['method']} {params['path']}"}

        server.register("create_endpoint", create_endpoint)
        result = await self.client(buses).call(
            "create_endpoint", {"path": "/api/users", "method": "POST", "authentication": "jwt"}
        )
        assert result == {"url": "POST /api/users"}

    async def test_params_are_validated_from_type_hints(self, buses: Any) -> None:
        server = self.server(buses)

        @server.method()
        def deploy_service(service_name: str, environment: str, replicas: int = 1) -> str:
            return f"{service_name}@{environment}x{replicas}"

        client = self.client(buses)
        assert (
            await client.call("deploy_service", {"service_name": "api", "environment": "dev"})
            == "api@devx1"
        )
        assert await client.call("deploy_service", ["api", "prod", 3]) == "api@prodx3"
        with pytest.raises(InvalidParams) as caught:
            await client.call("deploy_service", {"service_name": "api", "replicas": "many"})
        assert caught.value.code == -32602
        assert "params.environment" in str(caught.value)
        assert "params.replicas" in str(caught.value)
        fields = {tuple(item["loc"]) for item in caught.value.data}
        assert fields == {("environment",), ("replicas",)}

    async def test_a_pydantic_params_model_validates_the_whole_object(self, buses: Any) -> None:
        server = self.server(buses)

        @server.register("create_endpoint")
        def create(params: Endpoint) -> Endpoint:
            return params

        client = self.client(buses)
        assert await client.call("create_endpoint", {"path": "/a"}) == {
            "path": "/a",
            "method": "GET",
        }
        with pytest.raises(InvalidParams, match="path"):
            await client.call("create_endpoint", {"method": "GET"})

    async def test_unknown_method_is_minus_32601(self, buses: Any) -> None:
        self.server(buses)
        with pytest.raises(MethodNotFound) as caught:
            await self.client(buses).call("no_such_method")
        assert caught.value.code == -32601
        assert "no_such_method" in str(caught.value)

    async def test_a_failing_method_is_minus_32603_with_the_remote_type(self, buses: Any) -> None:
        server = self.server(buses)

        @server.method()
        def deploy() -> None:
            raise PermissionError("cluster is read-only")

        with pytest.raises(RPCError) as caught:
            await self.client(buses).call("deploy")
        assert caught.value.code == -32603
        assert caught.value.data["type"] == "PermissionError"
        assert "cluster is read-only" in caught.value.data["message"]
        assert "traceback" not in caught.value.data

    async def test_debug_servers_send_the_traceback(self, buses: Any) -> None:
        server = self.server(buses, debug=True)

        @server.method()
        def deploy() -> None:
            raise PermissionError("cluster is read-only")

        with pytest.raises(RPCError) as caught:
            await self.client(buses).call("deploy")
        assert "Traceback" in caught.value.data["traceback"]

    async def test_a_result_that_is_not_json_is_an_error_not_a_hang(self, buses: Any) -> None:
        server = self.server(buses)
        server.register("bad", lambda: {"when": object()})
        with pytest.raises(RPCError, match="not JSON") as caught:
            await self.client(buses).call("bad")
        assert caught.value.code == -32603

    async def test_discover_lists_methods_with_parameter_schemas(self, buses: Any) -> None:
        server = self.server(buses)

        @server.method()
        def deploy_service(service_name: str, environment: str = "dev") -> str:
            """Deploy a service."""
            return service_name

        methods = {m["name"]: m for m in await self.client(buses).discover()}
        assert set(methods) == {"rpc.discover", "deploy_service"}
        schema = methods["deploy_service"]["params"]
        assert schema["required"] == ["service_name"]
        assert schema["properties"]["environment"]["default"] == "dev"
        assert methods["deploy_service"]["description"] == "Deploy a service."

    async def test_no_server_is_no_responders(self, buses: Any) -> None:
        with pytest.raises(NoResponders):
            await self.client(buses, "nobody").call("ping")

    async def test_a_method_that_never_returns_times_out(self, buses: Any) -> None:
        server = self.server(buses)
        never = asyncio.Event()

        @server.method()
        async def hang() -> None:
            await never.wait()

        with pytest.raises(RequestTimeout):
            await self.client(buses).call("hang", timeout=0.2)

    async def test_concurrency_limit_is_enforced(self, buses: Any) -> None:
        server = self.server(buses, max_concurrency=2)
        running, peak = 0, 0
        release = asyncio.Event()

        @server.method()
        async def work(n: int) -> int:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            if running >= 2:
                release.set()
            await release.wait()
            running -= 1
            return n

        client = self.client(buses)
        results = await asyncio.gather(*(client.call("work", [n]) for n in range(6)))
        assert results == list(range(6))
        assert peak == 2

    @pytest.mark.parametrize(
        "endpoint", ["plugin://x", "http://x/rpc", "plugin:///rpc", "plugin://a b/rpc", "x"]
    )
    def test_malformed_endpoints_are_refused(self, buses: Any, endpoint: str) -> None:
        with pytest.raises(InvalidEndpoint):
            RPCClient(endpoint)
        with pytest.raises(InvalidEndpoint):
            RPCServer(endpoint, bus=buses("x"))

    def test_a_server_must_use_its_own_plugins_bus(self, buses: Any) -> None:
        with pytest.raises(InvalidEndpoint, match="belongs to"):
            RPCServer("plugin://a/rpc", bus=buses("b"))

    async def test_raw_json_rpc_request_objects_are_answered(self, buses: Any) -> None:
        server = self.server(buses)
        server.register("echo", lambda params: params)
        caller = buses("raw-caller")
        reply = await caller.request(
            topic="plugin/your-plugin/rpc",
            payload={"jsonrpc": "2.0", "method": "echo", "params": {"x": 1}, "id": "abc"},
            timeout=WAIT,
        )
        assert reply == {"jsonrpc": "2.0", "result": {"x": 1}, "id": "abc"}
        malformed = await caller.request(
            topic="plugin/your-plugin/rpc", payload={"method": 3}, timeout=WAIT
        )
        assert malformed["error"]["code"] == -32600

    async def test_a_hung_method_is_cancelled_when_its_caller_gives_up(self, buses: Any) -> None:
        server = self.server(buses, max_concurrency=2)
        never = asyncio.Event()
        cancelled: list[int] = []
        both_cancelled = asyncio.Event()

        @server.method()
        async def hang(n: int) -> None:
            try:
                await never.wait()
            except asyncio.CancelledError:
                cancelled.append(n)
                if len(cancelled) == 2:
                    both_cancelled.set()
                raise

        @server.method()
        def ping() -> str:
            return "pong"

        client = self.client(buses)
        for n in range(2):  # as many as the server runs at once
            with pytest.raises(RequestTimeout):
                await client.call("hang", [n], timeout=0.2)
        async with asyncio.timeout(WAIT):
            await both_cancelled.wait()
        assert sorted(cancelled) == [0, 1]
        assert await client.call("ping") == "pong"
        assert server.timeouts == 2
        assert server.errors == 0

    async def test_a_nested_call_gets_at_most_the_time_its_caller_has_left(
        self, buses: Any
    ) -> None:
        outer, inner = self.server(buses, "outer"), self.server(buses, "inner")
        never = asyncio.Event()
        inner_cancelled = asyncio.Event()
        to_inner = RPCClient("plugin://inner/rpc", bus=buses("outer"), timeout=3600)

        @inner.method()
        async def hang() -> None:
            try:
                await never.wait()
            except asyncio.CancelledError:
                inner_cancelled.set()
                raise

        @outer.method()
        async def relay() -> None:
            await to_inner.call("hang")  # its own timeout is an hour

        with pytest.raises(RequestTimeout):
            await self.client(buses, "outer").call("relay", timeout=0.2)
        async with asyncio.timeout(WAIT):
            await inner_cancelled.wait()

    async def test_recursion_past_the_concurrency_limit_fails_once_without_a_log_flood(
        self, buses: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        a, b = self.server(buses, "a", max_concurrency=1), self.server(buses, "b")
        to_a = RPCClient("plugin://a/rpc", bus=buses("b"), timeout=WAIT)
        to_b = RPCClient("plugin://b/rpc", bus=buses("a"), timeout=WAIT)

        @a.register("down")
        async def down_a(depth: int) -> int:
            return 0 if depth == 0 else await to_b.call("down", [depth - 1]) + 1

        @b.register("down")
        async def down_b(depth: int) -> int:
            return 0 if depth == 0 else await to_a.call("down", [depth - 1]) + 1

        client = self.client(buses, "a")
        assert await client.call("down", [1]) == 1  # a -> b: within the limit
        caplog.set_level(logging.INFO)
        with pytest.raises(RequestTimeout):
            # a -> b -> a needs a second slot on a: it waits for the caller's deadline
            await client.call("down", [2], timeout=0.3)
        async with asyncio.timeout(WAIT):
            while a.timeouts < 1:  # noqa: ASYNC110 - a counter offers no event to await
                await asyncio.sleep(0.005)
        assert a.errors == b.errors == 0
        records = [r for r in caplog.records if r.name == "jira_orchestrator.rpc"]
        assert len(records) <= 1, [r.getMessage() for r in records]
        assert all(r.exc_info is None for r in caplog.records), "no traceback for a timeout"

    @pytest.mark.parametrize(
        ("result", "problem"),
        [
            ("\ud800", "not JSON"),
            (10**5000, "not JSON"),
            ({"blob": "x" * (1024 * 1024)}, "too large"),
        ],
        ids=["lone-surrogate", "huge-int", "over-1-MiB"],
    )
    async def test_a_result_that_cannot_be_sent_is_an_rpc_error(
        self, buses: Any, caplog: pytest.LogCaptureFixture, result: Any, problem: str
    ) -> None:
        server = self.server(buses)
        server.register("bad", lambda: result)
        server.register("ping", lambda: "pong")
        client = self.client(buses)
        with pytest.raises(RPCError) as caught:
            await client.call("bad")
        assert caught.value.code == -32603
        assert "result of 'bad'" in caught.value.message
        assert problem in caught.value.message
        assert server.errors == 1
        assert await client.call("ping") == "pong"  # and the server keeps serving
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    @pytest.mark.parametrize(
        ("replicas", "message"),
        [("5", "valid integer"), (True, "valid integer"), (5.5, "valid integer")],
    )
    async def test_params_are_not_coerced(self, buses: Any, replicas: Any, message: str) -> None:
        server = self.server(buses)

        @server.method()
        def scale(service: str, replicas: int) -> int:
            return replicas

        client = self.client(buses)
        assert await client.call("scale", {"service": "api", "replicas": 5}) == 5
        with pytest.raises(InvalidParams) as caught:
            await client.call("scale", {"service": "api", "replicas": replicas})
        assert caught.value.code == -32602
        assert "params.replicas" in caught.value.message
        assert message in caught.value.message
        assert [item["loc"] for item in caught.value.data] == [["replicas"]]
        with pytest.raises(InvalidParams, match=r"params\.service"):
            await client.call("scale", {"service": 7, "replicas": 1})
