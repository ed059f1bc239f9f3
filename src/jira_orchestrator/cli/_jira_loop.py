"""The Jira loop assembled for ``serve`` and ``demo --jira``: the HTTP server with the
webhook receiver, the operator dashboard and ``/metrics``, the inbox, the orchestrator and
the service that connects them."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
from starlette.routing import BaseRoute

from jira_orchestrator.integrations.jira import (
    JiraClient,
    JiraConfig,
    Secret,
    WebhookInbox,
    WebhookReceiver,
)
from jira_orchestrator.integrations.jira.poller import JqlPoller
from jira_orchestrator.integrations.jira.service import JiraService, Processed
from jira_orchestrator.orchestrator import Orchestrator
from jira_orchestrator.orchestrator.files import OrchestratorFiles
from jira_orchestrator.orchestrator.tasks import TaskStore
from jira_orchestrator.web import HTTPServer
from jira_orchestrator.web.dashboard import TOKEN_ENV, Dashboard, check_bind
from jira_orchestrator.web.metrics import MetricsEndpoint

__all__ = ["JiraLoop", "jira_loop"]


@dataclass
class JiraLoop:
    """The running parts, for the command that started them."""

    server: HTTPServer
    receiver: WebhookReceiver
    inbox: WebhookInbox
    client: JiraClient
    orchestrator: Orchestrator
    service: JiraService
    dashboard: Dashboard
    poller: JqlPoller | None = None


@contextlib.asynccontextmanager
async def jira_loop(
    config: JiraConfig,
    plugins: Path,
    output: Path,
    *,
    host: str,
    port: int,
    bus_url: str,
    environ: Mapping[str, str] | None = None,
    extra_routes: Iterable[BaseRoute] = (),
    on_processed: Callable[[Processed], object] | None = None,
    poll: bool = False,
    concurrency: int = 4,
    jira_transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[JiraLoop]:
    """Start everything, yield it, stop everything (in reverse) whatever happened.

    ``jira_transport`` carries the client's calls to Jira (tests check each exchange
    against Jira's published contract through it)."""
    files = OrchestratorFiles.of(output)
    files.folder.mkdir(parents=True, exist_ok=True)
    secret_bytes = config.jira.webhook.secret_bytes(environ)
    secret = None if secret_bytes is None else Secret(secret_bytes.decode())
    async with contextlib.AsyncExitStack() as stack:
        client = JiraClient.from_config(config, environ, transport=jira_transport)
        stack.push_async_callback(client.aclose)
        inbox = WebhookInbox(files.folder / "jira-inbox.db")
        stack.callback(inbox.close)
        tasks = TaskStore(files.tasks)
        orchestrator = Orchestrator(
            plugins,
            bus_url=bus_url,
            tasks=tasks,
            decisions=files.decisions,
            dead_letters=files.dead_letters,
            min_confidence=config.routing.min_confidence,
        )
        stack.callback(orchestrator.close)
        await orchestrator.start()
        stack.push_async_callback(orchestrator.stop)
        service = JiraService(
            config,
            client,
            orchestrator,
            inbox,
            on_processed=on_processed,
            concurrency=concurrency,
        )
        receiver = WebhookReceiver(
            inbox,
            secret=secret,
            projects=config.jira.projects,
            max_body_bytes=config.jira.webhook.max_body_bytes,
            on_stored=service.notify,
        )
        stack.push_async_callback(receiver.aclose)
        token = (os.environ if environ is None else environ).get(TOKEN_ENV) or None
        check_bind(host, token)
        dashboard = Dashboard.of(orchestrator, token=token, jira_url=config.jira.site)
        metrics = MetricsEndpoint(bus=orchestrator.bus, token=token)
        await stack.enter_async_context(metrics)
        server = HTTPServer(
            [*receiver.routes(), *extra_routes, *metrics.routes(), *dashboard.routes()],
            host=host,
            port=port,
            ready_checks={"inbox": receiver.ready},
        )
        await server.start()
        stack.push_async_callback(server.stop)
        await dashboard.start()
        stack.push_async_callback(dashboard.stop)
        await service.start()
        stack.push_async_callback(service.stop)
        poller: JqlPoller | None = None
        if poll:
            poller = JqlPoller(
                config, client, inbox, files.folder / "jira-poll.json", on_stored=service.notify
            )
            polling = asyncio.create_task(poller.run(), name="jira-poller")
            stack.push_async_callback(_cancel, polling)
        yield JiraLoop(server, receiver, inbox, client, orchestrator, service, dashboard, poller)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
