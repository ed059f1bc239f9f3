"""``jira-orchestrator dashboard``: the operator dashboard for an ecosystem already running.

    jira-orchestrator dashboard --bus nats://localhost:4222 [--http 127.0.0.1:8642]
        [--output DIR | --dead-letters DB --tasks DB --decisions DB --sagas DB]
        [--plugins DIR] [--jira-url URL]

It watches the bus, reads the stores the orchestrator writes (under ``--output``, as ``up``
and ``demo`` write them, or named one by one) and serves the pages on one HTTP server. It
binds 127.0.0.1 unless told otherwise, and refuses any other address without a token in
``$JIRA_ORCHESTRATOR_DASHBOARD_TOKEN``. Exit status: 0 stopped by Ctrl-C or SIGTERM; 1 the
server or the bus failed; 2 bad usage (no such store, a bad address, no token).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from jira_orchestrator._core.errors import JiraOrchestratorError
from jira_orchestrator._core.protocol import BUS_URL_ENV
from jira_orchestrator.cli._errors import EXIT_FAILURE, EXIT_USAGE, fail, need_web_extra
from jira_orchestrator.cli._http import start_tracing
from jira_orchestrator.orchestrator import (
    DeadLetterStore,
    OrchestratorFiles,
    SagaStore,
    TaskStore,
)
from jira_orchestrator.plugins import PluginManifest, discover_plugins
from jira_orchestrator.routing import NoPlugins, Router, RoutingError
from jira_orchestrator.routing.store import DecisionStore

__all__ = ["dashboard"]

BUS_ENV = BUS_URL_ENV


def _store(kind: type[Any], path: Path | None, option: str, required: bool) -> Any:
    if path is None:
        return None
    if not path.is_file():
        if required:
            raise fail(f"{option}: no database at {path}", EXIT_USAGE)
        return None
    try:
        return kind(path)
    except JiraOrchestratorError as exc:
        raise fail(f"{option}: {exc}", EXIT_FAILURE) from None


def dashboard(
    bus: Annotated[
        str | None,
        typer.Option(
            "--bus",
            help=f"Bus URL of the running ecosystem (default ${BUS_ENV}).",
            show_default=False,
        ),
    ] = None,
    http: Annotated[
        str, typer.Option("--http", metavar="HOST:PORT", help="Where to serve the dashboard.")
    ] = "127.0.0.1:8642",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", help="The output folder of `up` or `demo`: read the stores it holds."
        ),
    ] = None,
    dead_letters: Annotated[
        Path | None, typer.Option("--dead-letters", help="Dead-letter database.")
    ] = None,
    tasks: Annotated[Path | None, typer.Option("--tasks", help="Task database.")] = None,
    decisions: Annotated[
        Path | None, typer.Option("--decisions", help="Routing decisions database.")
    ] = None,
    sagas: Annotated[Path | None, typer.Option("--sagas", help="Saga database.")] = None,
    plugins: Annotated[
        Path | None,
        typer.Option("--plugins", help="Folder of plugins: enables the Route page."),
    ] = None,
    jira_url: Annotated[
        str | None,
        typer.Option(
            "--jira-url", help="The Jira site, to link issue keys (https://x.atlassian.net)."
        ),
    ] = None,
    heartbeat: Annotated[
        float, typer.Option("--heartbeat", min=0.5, help="Seconds between health checks.")
    ] = 10.0,
) -> None:
    """Serve the operator dashboard for an ecosystem that is already running."""
    need_web_extra("dashboard")
    from jira_orchestrator.web import HTTPServerError, parse_address
    from jira_orchestrator.web.dashboard import TOKEN_ENV, DashboardSecurityError, check_bind

    try:
        host, port = parse_address(http)
    except HTTPServerError as exc:
        raise fail(f"--http: {exc}", EXIT_USAGE) from None
    token = os.environ.get(TOKEN_ENV) or None
    try:
        check_bind(host, token)
    except DashboardSecurityError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    if jira_url is not None and not jira_url.startswith(("http://", "https://")):
        raise fail(f"--jira-url: an http(s) URL, got {jira_url!r}", EXIT_USAGE)
    url = bus or os.environ.get(BUS_ENV) or None
    if url is None:
        raise fail(f"give --bus URL (or set ${BUS_ENV}): the bus of the running ecosystem")
    files = OrchestratorFiles.of(output) if output is not None else None
    if output is not None and not output.is_dir():
        raise fail(f"--output: no such folder {output}", EXIT_USAGE)
    opened: list[Any] = []
    try:
        for kind, given, default, option in (
            (
                DeadLetterStore,
                dead_letters,
                files.dead_letters if files else None,
                "--dead-letters",
            ),
            (TaskStore, tasks, files.tasks if files else None, "--tasks"),
            (DecisionStore, decisions, files.decisions if files else None, "--decisions"),
            (SagaStore, sagas, None, "--sagas"),
        ):
            opened.append(_store(kind, given or default, option, required=given is not None))
        router = None
        manifests = None
        if plugins is not None:
            try:
                router = Router.from_directory(plugins, store=opened[2])
                # replays are checked against the rights of the letters' senders
                manifests = [found.manifest for found in discover_plugins(plugins).plugins]
            except NoPlugins as exc:
                raise fail(f"--plugins: {exc}", EXIT_USAGE) from None
            except RoutingError as exc:
                raise fail(str(exc), EXIT_FAILURE) from None
        start_tracing("jira-orchestrator-dashboard")  # when the OTEL_* variables ask for it
        code = asyncio.run(
            _serve(url, host, port, token, opened, router, jira_url, heartbeat, manifests)
        )
    finally:
        for store in opened:
            if store is not None:
                store.close()
    raise typer.Exit(code)


async def _serve(
    url: str,
    host: str,
    port: int,
    token: str | None,
    stores: list[Any],
    router: Router | None,
    jira_url: str | None,
    heartbeat: float,
    manifests: list[PluginManifest] | None = None,
) -> int:
    from jira_orchestrator.messagebus import close_message_bus, get_message_bus
    from jira_orchestrator.web import HTTPServer, HTTPServerError
    from jira_orchestrator.web.dashboard import DASHBOARD_ID, Dashboard, redact_url
    from jira_orchestrator.web.metrics import MetricsEndpoint

    try:
        bus = get_message_bus(DASHBOARD_ID, url)
        await bus.transport.flush()  # connect now: a wrong --bus fails fast
    except (JiraOrchestratorError, OSError, ValueError) as exc:
        fail(f"--bus {redact_url(url)}: {exc}", EXIT_FAILURE)
        await close_message_bus()
        return EXIT_FAILURE
    metrics = MetricsEndpoint(bus=bus, process="dashboard", token=token)
    board = Dashboard(
        bus,
        dead_letters=stores[0],
        tasks=stores[1],
        decisions=stores[2],
        sagas=stores[3],
        router=router,
        token=token,
        jira_url=jira_url,
        heartbeat=heartbeat,
        manifests=manifests,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await board.start()
        await metrics.start()  # the plugin processes' metrics, as they publish them
        server = HTTPServer(
            [*metrics.routes(), *board.routes()],
            host=host,
            port=port,
            ready_checks={"dashboard": board.ready},
        )
        try:
            await server.start()
        except HTTPServerError as exc:
            fail(str(exc), EXIT_FAILURE)
            return EXIT_FAILURE
        typer.echo(
            f"dashboard on {server.url} (bus {redact_url(url)}"
            + (", token required)" if token else ")")
            + "; Ctrl-C stops it",
        )
        try:
            await stop.wait()
        finally:
            await board.stop()  # ends the pages' event streams, so the server stops at once
            await server.stop()
    finally:
        await board.stop()
        await metrics.stop()
        with contextlib.suppress(Exception):
            await close_message_bus()
    return 0
