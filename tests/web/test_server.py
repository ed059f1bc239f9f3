"""The HTTP server: uvicorn on a free loopback port, driven by a real httpx client."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from jira_orchestrator.web import HTTPServer, HTTPServerError, parse_address


async def hello(request: Request) -> Response:
    return JSONResponse({"hello": request.query_params.get("name", "world")})


async def broken(request: Request) -> Response:
    raise RuntimeError("the database password is hunter2")


@pytest.fixture
async def server() -> AsyncIterator[HTTPServer]:
    async with HTTPServer([Route("/hello", hello), Route("/broken", broken)], port=0) as running:
        yield running


async def test_it_binds_loopback_by_default_and_port_0_takes_a_free_port(
    server: HTTPServer,
) -> None:
    assert HTTPServer().host == "127.0.0.1"
    assert server.address[0] == "127.0.0.1"
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert server.is_loopback


async def test_healthz_and_contributed_routes(server: HTTPServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        health = await client.get("/healthz")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        hello_answer = await client.get("/hello", params={"name": "jira"})
        assert hello_answer.json() == {"hello": "jira"}
        assert "server" not in hello_answer.headers


async def test_errors_are_json_and_an_exception_does_not_leak_its_text(
    server: HTTPServer,
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        missing = await client.get("/nowhere")
        assert (missing.status_code, missing.json()) == (404, {"error": "not-found"})
        wrong = await client.post("/healthz")
        assert (wrong.status_code, wrong.json()) == (405, {"error": "method-not-allowed"})
        failed = await client.get("/broken")
        assert (failed.status_code, failed.json()) == (500, {"error": "internal"})
        assert "hunter2" not in failed.text


async def test_readyz_runs_every_check_sync_or_async() -> None:
    state = {"bus": False}

    async def bus_connected() -> bool:
        return state["bus"]

    def exploding() -> bool:
        raise OSError("disk gone")

    web = HTTPServer(port=0, ready_checks={"inbox": lambda: True})
    web.add_ready_check("bus", bus_connected)
    async with web, httpx.AsyncClient(base_url=web.url) as client:
        not_ready = await client.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json() == {
            "status": "not-ready",
            "checks": {"inbox": True, "bus": False},
        }
        state["bus"] = True
        ready = await client.get("/readyz")
        assert (ready.status_code, ready.json()["status"]) == (200, "ready")
    broken_check = HTTPServer(port=0, ready_checks={"store": exploding})
    async with broken_check, httpx.AsyncClient(base_url=broken_check.url) as client:
        answer = await client.get("/readyz")
        assert (answer.status_code, answer.json()["checks"]) == (503, {"store": False})


async def test_routes_and_checks_are_added_before_start_only(server: HTTPServer) -> None:
    with pytest.raises(HTTPServerError, match="once the server has started"):
        server.add_routes([Route("/late", hello)])
    with pytest.raises(HTTPServerError, match="once the server has started"):
        server.add_ready_check("late", lambda: True)
    with pytest.raises(HTTPServerError, match="already registered"):
        HTTPServer(ready_checks={"a": lambda: True}).add_ready_check("a", lambda: True)
    with pytest.raises(HTTPServerError, match="not started"):
        _ = HTTPServer().port


async def test_a_busy_port_is_a_clear_error(server: HTTPServer) -> None:
    with pytest.raises(HTTPServerError, match=f"cannot listen on 127.0.0.1:{server.port}"):
        await HTTPServer(port=server.port).start()


class _OnLog(logging.Handler):
    def __init__(self, text: str, event: asyncio.Event) -> None:
        super().__init__(logging.DEBUG)
        self.text, self.event = text, event

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


async def test_stop_lets_a_request_in_flight_finish_then_refuses_connections() -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(request: Request) -> Response:
        entered.set()
        await release.wait()
        return JSONResponse({"done": True})

    web = HTTPServer([Route("/slow", slow)], port=0)
    await web.start()
    async with httpx.AsyncClient(base_url=web.url) as client:
        request = asyncio.create_task(client.get("/slow"))
        await entered.wait()
        shutting_down = asyncio.Event()
        watcher = _OnLog("Shutting down", shutting_down)
        uvicorn_log = logging.getLogger("uvicorn.error")
        level = uvicorn_log.level
        uvicorn_log.setLevel(logging.INFO)
        uvicorn_log.addHandler(watcher)
        try:
            stopping = asyncio.create_task(web.stop())
            # the listener is closed, the request still runs
            await asyncio.wait_for(shutting_down.wait(), 30)
            assert not stopping.done()
            release.set()
            answer = await request
            await stopping
        finally:
            uvicorn_log.removeHandler(watcher)
            uvicorn_log.setLevel(level)
        assert answer.json() == {"done": True}
    async with httpx.AsyncClient(base_url=web.url) as fresh:
        with pytest.raises(httpx.ConnectError):
            await fresh.get("/healthz")


async def test_the_program_keeps_its_signal_handlers_and_no_access_log_is_written(
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    caplog.set_level(logging.DEBUG)
    async with HTTPServer([Route("/hello", hello)], port=0) as web:
        assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
        async with httpx.AsyncClient(base_url=web.url) as client:
            await client.get("/hello", params={"token": "s3cr3t-token"})
    server_side = [
        record.getMessage()
        for record in caplog.records
        if not record.name.startswith(("httpx", "httpcore"))  # the client logs its own URLs
    ]
    assert server_side  # the server did log (started, stopped), just not the request
    assert not [line for line in server_side if "s3cr3t-token" in line or "/hello" in line]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8642", ("127.0.0.1", 8642)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        ("[::1]:9000", ("::1", 9000)),
        ("[::1]", ("::1", 8642)),
        (":9000", ("127.0.0.1", 9000)),
        ("localhost", ("localhost", 8642)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["host:port", "1.2.3.4:70000", "[::1:80"])
def test_parse_address_refuses_nonsense(text: str) -> None:
    with pytest.raises(HTTPServerError, match="bad address"):
        parse_address(text)


def test_a_bad_port_is_refused() -> None:
    with pytest.raises(HTTPServerError, match="port must be an int"):
        HTTPServer(port=70000)
