"""Fixtures for the Jira integration: the sandbox in process and on real HTTP, the contract.

``jira`` is the sandbox served in process (httpx.ASGITransport); ``sandbox`` is the same on
real uvicorn on a free loopback port. Both give a client whose every exchange is checked
against Jira's published contract (`contract.JiraContract`), a settable clock, and a
webhook receiver whose answers a test scripts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import uvicorn

from jira_orchestrator.integrations.jira.client import JiraClient
from jira_orchestrator.integrations.jira.sandbox import JiraSandbox, WebhookRetry
from tests.integrations.jira.contract import ContractCheckingTransport, JiraContract

START = 1_700_000_000.0  # 2023-11-14T22:13:20Z


class FakeClock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Receiver:
    """A webhook endpoint: records every delivery, answers with ``statuses`` then 200."""

    statuses: list[int] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    url: str = "http://receiver.test/webhooks/jira"

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.statuses:
            status = self.statuses.pop(0)
            if status == 0:
                raise httpx.ConnectError("connection refused", request=request)
            return httpx.Response(status)
        return httpx.Response(200)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)


@dataclass
class Sleeps:
    """An injected ``sleep`` that records how long it was asked to wait, and returns."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


@dataclass
class Jira:
    """A sandbox, a checked client for it, and what the test controls."""

    sandbox: JiraSandbox
    client: httpx.AsyncClient
    contract: JiraContract
    clock: FakeClock
    receiver: Receiver
    sleeps: Sleeps
    base_url: str


@pytest.fixture
def contract() -> JiraContract:
    return JiraContract()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


def _sandbox(clock: FakeClock, receiver: Receiver, sleeps: Sleeps) -> JiraSandbox:
    sandbox = JiraSandbox(
        clock=clock,
        webhook_transport=receiver.transport,
        sleep=sleeps,
        webhook_retry=WebhookRetry(max_retries=5, first_delay=1.0, max_delay=30.0),
    )
    sandbox.register_webhook(receiver.url)
    return sandbox


@pytest.fixture
async def jira(contract: JiraContract, clock: FakeClock, receiver: Receiver) -> AsyncIterator[Jira]:
    """The sandbox in process, with a contract-checked, authenticated client."""
    sleeps = Sleeps()
    sandbox = _sandbox(clock, receiver, sleeps)
    base_url = "http://jira.test"
    transport = ContractCheckingTransport(httpx.ASGITransport(app=sandbox.app), contract)
    client = httpx.AsyncClient(transport=transport, base_url=base_url, auth=sandbox.auth)
    try:
        await sandbox.start()
        yield Jira(sandbox, client, contract, clock, receiver, sleeps, base_url)
    finally:
        await client.aclose()
        await sandbox.aclose()


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # leave pytest's signal handlers alone
        yield


@contextlib.asynccontextmanager
async def serve(app: object) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yield its base URL.

    The socket is bound and listening before uvicorn starts, so a client may connect at
    once (the connection waits in the backlog); server and socket are released on exit,
    whatever happened inside.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    server = _Server(uvicorn.Config(app, log_level="warning", lifespan="on"))  # type: ignore[arg-type]
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, timeout=30)
        finally:
            listener.close()


@pytest.fixture
async def sandbox(
    contract: JiraContract, clock: FakeClock, receiver: Receiver
) -> AsyncIterator[Jira]:
    """The sandbox on real uvicorn on a free loopback port, with a checked client."""
    sleeps = Sleeps()
    stand_in = _sandbox(clock, receiver, sleeps)
    async with serve(stand_in.app) as base_url:
        stand_in.base_url = base_url
        transport = ContractCheckingTransport(httpx.AsyncHTTPTransport(), contract)
        client = httpx.AsyncClient(transport=transport, base_url=base_url, auth=stand_in.auth)
        try:
            yield Jira(stand_in, client, contract, clock, receiver, sleeps, base_url)
        finally:
            await client.aclose()


def _headers(jira: Jira, token: str | None = None) -> dict[str, str]:
    raw = f"{jira.sandbox.email}:{token or jira.sandbox.token}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


ClientFactory = Callable[..., Awaitable[JiraClient]]
"""Makes a `JiraClient` for the in-process sandbox (``token=``, ``wrap=`` a transport)."""


@pytest.fixture
async def make_client(jira: Jira) -> AsyncIterator[ClientFactory]:
    made: list[JiraClient] = []

    async def make(
        *,
        token: str | None = None,
        wrap: Callable[[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport] | None = None,
        **options: object,
    ) -> JiraClient:
        transport: httpx.AsyncBaseTransport = ContractCheckingTransport(
            httpx.ASGITransport(app=jira.sandbox.app), jira.contract
        )
        if wrap is not None:
            transport = wrap(transport)
        options.setdefault("sleep", jira.sleeps)
        client = JiraClient(
            jira.base_url,
            _headers(jira, token),
            transport=transport,
            **options,  # type: ignore[arg-type]
        )
        made.append(client)
        return client

    try:
        yield make
    finally:
        for client in made:
            await client.aclose()
