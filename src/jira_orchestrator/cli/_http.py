"""The orchestrator's HTTP server for ``up --http``: the dashboard, ``/metrics``,
``/healthz`` and ``/readyz`` on one server, as ``serve`` and ``dashboard`` run them.

``--http off`` turns it off. Any address other than loopback needs the dashboard's token
(``$JIRA_ORCHESTRATOR_DASHBOARD_TOKEN``), which then also guards ``/metrics``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import typer

from jira_orchestrator._core import tracing
from jira_orchestrator.cli._errors import EXIT_USAGE, fail, need_web_extra

if TYPE_CHECKING:
    from jira_orchestrator.orchestrator import Orchestrator
    from jira_orchestrator.web import HTTPServer

__all__ = ["HTTP_OFF", "HttpAddress", "check_http", "orchestrator_http", "start_tracing"]

HTTP_OFF = ("off", "none", "no", "false", "")
HttpAddress = tuple[str, int, str | None]
"""(host, port, token) of the server to run."""


def check_http(
    text: str, *, default: str | None = None, command: str = "up --http", option: str = "--http"
) -> HttpAddress | None:
    """The parsed ``--http`` value, None for ``off``; exits 2 (bad usage) for a bad address
    or a non-loopback one without a token, and 1 without the ``web`` extra (unless
    ``text`` is the ``default``: then a note says what is missing, and None)."""
    if text.strip().lower() in HTTP_OFF:
        return None
    if default is not None and text == default and not _web_extra_installed():
        typer.echo(
            "note: no dashboard or /metrics: they need the 'web' extra "
            "(pip install 'jira-orchestrator[web]')",
            err=True,
        )
        return None
    need_web_extra(command)
    from jira_orchestrator.web import HTTPServerError, parse_address
    from jira_orchestrator.web.dashboard import TOKEN_ENV, DashboardSecurityError, check_bind

    try:
        host, port = parse_address(text)
    except HTTPServerError as error:
        raise fail(f"{option}: {error}", EXIT_USAGE) from None
    token = os.environ.get(TOKEN_ENV) or None
    try:
        check_bind(host, token)
    except DashboardSecurityError as error:
        raise fail(f"{option} {text}: {error} (or --http off)", EXIT_USAGE) from None
    return host, port, token


def start_tracing(service_name: str) -> None:
    """Trace this process when the ``OTEL_*`` variables ask for it; exits 1 with the
    install command when the SDK is missing."""
    try:
        tracing.configure_from_env(service_name=service_name)
    except RuntimeError as error:
        raise fail(str(error), 1) from None


@contextlib.asynccontextmanager
async def orchestrator_http(
    orchestrator: Orchestrator, address: HttpAddress, say: Callable[[str], None]
) -> AsyncIterator[HTTPServer]:
    """The dashboard and ``/metrics`` of ``orchestrator`` on one server, for the block."""
    from jira_orchestrator.web import HTTPServer
    from jira_orchestrator.web.dashboard import Dashboard
    from jira_orchestrator.web.metrics import MetricsEndpoint

    host, port, token = address
    dashboard = Dashboard.of(orchestrator, token=token)
    metrics = MetricsEndpoint(bus=orchestrator.bus, token=token)

    server = HTTPServer(
        [*metrics.routes(), *dashboard.routes()],
        host=host,
        port=port,
        ready_checks={"dashboard": dashboard.ready},
    )
    async with metrics, dashboard:
        await server.start()
        try:
            say(f"[orchestrator] dashboard and /metrics on {server.url}")
            yield server
        finally:
            await dashboard.stop()  # ends the pages' event streams, so the server stops
            await server.stop()


def _web_extra_installed() -> bool:
    for name in ("starlette", "uvicorn", "httpx", "jinja2", "prometheus_client"):
        try:
            importlib.import_module(name)
        except ImportError:
            return False
    return True
