"""``jira-orchestrator serve``: the Jira loop in one process.

The webhook receiver (``POST /webhooks/jira``), the poller when asked (``--poll``), the
orchestrator and the write-back. On the embedded bus (``memory://``, the default) the
plugins of ``--plugins`` that have a ``plugin.py`` run in this process; with ``--bus
nats://...`` the process joins a bus where the plugins already run (``up``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from jira_orchestrator._core.errors import JiraOrchestratorError
from jira_orchestrator._core.protocol import OUTPUT_ENV, STATE_DIR_ENV
from jira_orchestrator.cli._errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, fail, need_web_extra
from jira_orchestrator.cli._http import start_tracing
from jira_orchestrator.cli._text import escape_control
from jira_orchestrator.cli.demo import PluginLoadError, load_entry_point
from jira_orchestrator.orchestrator.files import DEFAULT_OUTPUT
from jira_orchestrator.plugins import Plugin

if TYPE_CHECKING:
    from jira_orchestrator.integrations.jira import JiraConfig

__all__ = ["in_process_plugins", "serve"]

log = logging.getLogger("jira_orchestrator.serve")


@contextlib.asynccontextmanager
async def in_process_plugins(entries: list[Path]) -> AsyncIterator[list[Plugin]]:
    """Load and start the plugins of these ``plugin.py`` files; stop them on the way out."""
    loaded = [load_entry_point(entry) for entry in entries]
    started: list[Plugin] = []
    try:
        for plugin in loaded:
            await plugin.start()
            started.append(plugin)
        yield started
    finally:
        for plugin in reversed(started):
            await plugin.stop()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _serve(
    config: JiraConfig,
    plugins: Path,
    entries: list[Path],
    output: Path,
    host: str,
    port: int,
    bus: str,
    poll: bool,
) -> int:
    from jira_orchestrator.cli._jira_loop import jira_loop

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        if bus.startswith("memory:"):
            await stack.enter_async_context(in_process_plugins(entries))
        running = await stack.enter_async_context(
            jira_loop(
                config,
                plugins,
                output,
                host=host,
                port=port,
                bus_url=bus,
                on_processed=lambda done: typer.echo(escape_control(done.line())),
                poll=poll,
            )
        )
        typer.echo(f"jira-orchestrator serve: webhooks at {running.server.url}/webhooks/jira")
        polling = f", polled every {config.jira.poll.interval_seconds:g} s" if poll else ""
        typer.echo(
            f"Jira site {config.jira.site}, projects {', '.join(config.jira.projects)}{polling}"
        )
        await stop.wait()
        typer.echo("stopping: finishing the work in hand")
    return EXIT_OK


def serve(
    config: Annotated[Path, typer.Option("--config", "-c", help="jira-orchestrator.toml")],
    plugins: Annotated[
        Path, typer.Option(help="folder of plugins (started here on the embedded bus)")
    ] = Path("examples/plugins"),
    http: Annotated[
        str, typer.Option(help="HOST:PORT of the HTTP server (webhooks, probes)")
    ] = "127.0.0.1:8642",
    bus: Annotated[str, typer.Option(help="bus URL (memory:// runs the plugins here)")] = (
        "memory://"
    ),
    output: Annotated[
        Path, typer.Option(help="where plugins write and the databases live")
    ] = DEFAULT_OUTPUT,
    poll: Annotated[
        bool,
        typer.Option(
            "--poll", help="also search Jira with JQL every poll.intervalSeconds (no webhooks)"
        ),
    ] = False,
) -> None:
    """Receive Jira's webhooks, route and dispatch the issues, write back to Jira."""
    need_web_extra("serve")
    from jira_orchestrator.integrations.jira import JiraConfigError, load_config
    from jira_orchestrator.web import HTTPServerError, parse_address

    try:
        loaded = load_config(config)
    except JiraConfigError as error:
        raise fail("\n".join(error.problems), EXIT_USAGE) from None
    if not plugins.is_dir():
        raise fail(f"{plugins}: no such folder of plugins", EXIT_USAGE)
    try:
        host, port = parse_address(http)
    except (HTTPServerError, ValueError) as error:
        raise fail(f"--http: {error}", EXIT_USAGE) from None
    try:
        secret = loaded.jira.webhook.secret_bytes()
    except JiraConfigError as error:
        raise fail("; ".join(error.problems), EXIT_USAGE) from None
    if secret is None and not _is_loopback(host):
        raise fail(
            f"--http {http}: webhooks would be accepted from the network without a signature"
            " check; set webhook.secretEnv in the configuration (or bind 127.0.0.1)",
            EXIT_USAGE,
        )
    from jira_orchestrator.web.dashboard import TOKEN_ENV, DashboardSecurityError, check_bind

    try:
        check_bind(host, os.environ.get(TOKEN_ENV) or None)  # the dashboard shares the server
    except DashboardSecurityError as error:
        raise fail(f"--http {http}: {error}", EXIT_USAGE) from None
    output = output.resolve()
    os.environ.setdefault(OUTPUT_ENV, str(output))
    os.environ.setdefault(STATE_DIR_ENV, str(output / ".state"))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    start_tracing("jira-orchestrator")  # when the OTEL_* variables ask for it
    try:
        entries = sorted(plugins.glob("*/plugin.py"))
        code = asyncio.run(_serve(loaded, plugins, entries, output, host, port, bus, poll))
    except PluginLoadError as error:
        raise fail(f"cannot load a plugin: {error}", EXIT_USAGE) from None
    except (HTTPServerError, JiraConfigError, JiraOrchestratorError, OSError) as error:
        raise fail(str(error), EXIT_FAILURE) from None
    raise typer.Exit(code)
