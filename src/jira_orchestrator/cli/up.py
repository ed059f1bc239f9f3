"""``jira-orchestrator up`` and ``nats-config``: the ecosystem as separate processes on NATS.

``up`` starts an embedded nats-server (unless ``--bus`` names one) configured with one user
per plugin, one process per plugin that has a ``plugin.py`` entry point, and the
orchestrator in this process. Every line a process prints is prefixed with its name.
Ctrl-C (or ``--exit-after``) stops everything: the orchestrator, then the plugins (SIGTERM,
they drain), then the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Console

from jira_orchestrator._core.errors import TransportError
from jira_orchestrator.cli._errors import EXIT_USAGE, fail
from jira_orchestrator.cli._files import write_text
from jira_orchestrator.cli.demo import dispatch_all, read_issues
from jira_orchestrator.orchestrator.dispatcher import ORCHESTRATOR_ID, Orchestrator
from jira_orchestrator.orchestrator.natsconfig import nats_authorization
from jira_orchestrator.plugins import discover_plugins

__all__ = ["nats_config", "up"]

READY_TIMEOUT = 60.0


def _plugins_or_exit(plugins: Path) -> Any:
    if not plugins.is_dir():
        raise fail(f"{plugins}: no such folder of plugins", EXIT_USAGE)
    catalog = discover_plugins(plugins)
    for problem in catalog.problems:
        typer.echo(f"warning: {problem}", err=True)
    if not catalog.plugins:
        typer.echo(f"error: {plugins}: no loadable plugin", err=True)
        raise typer.Exit(1)
    return catalog


def nats_config(
    plugins: Annotated[Path, typer.Argument(help="folder of plugins")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write here instead of stdout")
    ] = None,
    credentials: Annotated[
        Path | None,
        typer.Option(help="also write each user's password here, as JSON (keep it private)"),
    ] = None,
) -> None:
    """Write a nats-server authorization block: one user per plugin, permissions from its
    manifest."""
    text, users = nats_authorization(_plugins_or_exit(plugins))
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_text(output, text, private=True)
        typer.echo(f"wrote {output} ({len(users)} users)", err=True)
    if credentials is not None:
        passwords = json.dumps({u.name: u.password for u in users}, indent=2)
        write_text(credentials, passwords, private=True)


def _pump(name: str, stream: IO[str], width: int) -> None:
    for line in stream:
        sys.stdout.write(f"[{name:<{width}}] {line}")
        sys.stdout.flush()


@contextmanager
def _processes(
    runnable: list[tuple[str, Path]], urls: dict[str, str], env: dict[str, str]
) -> Iterator[list[subprocess.Popen[str]]]:
    width = max([len(name) for name, _ in runnable] + [len("orchestrator")])
    started: list[subprocess.Popen[str]] = []
    pumps: list[threading.Thread] = []
    try:
        for name, entry in runnable:
            process = subprocess.Popen(
                [sys.executable, str(entry)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env={**env, "JIRA_ORCHESTRATOR_BUS_URL": urls[name], "PYTHONUNBUFFERED": "1"},
                # Ctrl-C reaches `up` alone; it stops the plugins after the orchestrator
                start_new_session=True,
            )
            assert process.stdout is not None
            threading.Thread(target=_pump, args=(name, process.stdout, width), daemon=True).start()
            started.append(process)
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pump in pumps:  # print what the plugins said on their way out
            pump.join(timeout=5)


async def _orchestrate(
    plugins: Path,
    url: str,
    expected: list[str],
    issues: list[dict[str, Any]] | None,
    exit_after: bool,
    output: Path,
    console: Console,
) -> int:
    orchestrator = Orchestrator(
        plugins,
        bus_url=url,
        tasks=output / ".orchestrator" / "tasks.db",
        decisions=output / ".orchestrator" / "decisions.db",
        dead_letters=output / ".orchestrator" / "dead-letters.db",
        heartbeat=5.0,
    )
    try:
        await orchestrator.bus.transport.flush()  # connect now: a wrong --bus fails fast
    except TransportError as error:
        console.print(f"[orchestrator] error: {error}", markup=False)
        orchestrator.close()
        return 1
    await orchestrator.start()
    code = 0
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            while any(orchestrator.availability(p) == 0 for p in expected) or any(
                orchestrator.health[p].status in ("unknown", "stopped") for p in expected
            ):
                await asyncio.sleep(0.2)  # polling other processes' readiness, bounded
                await orchestrator.refresh_health()
        console.print(
            f"[orchestrator] {len(expected)} plugin(s) ready on {url.split('@')[-1]}",
            markup=False,
        )
        resumed = await orchestrator.resume()
        if resumed:
            console.print(f"[orchestrator] resumed {len(resumed)} unfinished task(s)", markup=False)
        if issues is not None:
            results = await dispatch_all(orchestrator, issues, console)
            code = 0 if all(r.outcome == "completed" for r in results) else 1
        if not exit_after:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            console.print("[orchestrator] running; Ctrl-C stops everything", markup=False)
            await stop.wait()
            console.print("[orchestrator] stopping", markup=False)
    except TimeoutError:
        console.print(f"[orchestrator] plugins not ready within {READY_TIMEOUT:g}s", markup=False)
        code = 1
    finally:
        await orchestrator.stop()
        orchestrator.close()
    return code


def up(
    plugins: Annotated[Path, typer.Option(help="folder of plugins")] = Path("examples/plugins"),
    bus: Annotated[
        str | None,
        typer.Option(help="NATS URL of a running server (default: start an embedded one)"),
    ] = None,
    issues: Annotated[
        Path | None, typer.Option(help="JSON list of Jira issues to dispatch once ready")
    ] = None,
    output: Annotated[Path, typer.Option(help="where plugins write their outputs")] = Path(
        "output"
    ),
    fail: Annotated[
        list[str] | None, typer.Option(help="make this plugin fail (repeatable)")
    ] = None,
    exit_after: Annotated[
        bool, typer.Option("--exit-after", help="stop once the issues are dispatched")
    ] = False,
) -> None:
    """Start the orchestrator and one process per plugin on NATS, until Ctrl-C."""
    from jira_orchestrator.transports.nats_server import NatsServer

    catalog = _plugins_or_exit(plugins)
    loaded = read_issues(issues) if issues is not None else None
    runnable = sorted(
        (plugin.name, plugin.root / "plugin.py")
        for plugin in catalog.plugins
        if (plugin.root / "plugin.py").is_file()
    )
    names = [name for name, _ in runnable]
    output = output.resolve()
    env = {
        **os.environ,
        "JIRA_ORCHESTRATOR_OUTPUT": str(output),
        "JIRA_ORCHESTRATOR_STATE_DIR": str(output / ".state"),
        "DEMO_FAIL": ",".join(fail or []),
    }
    console = Console(width=max(Console().width, 100))  # plugin names fit on one line
    with tempfile.TemporaryDirectory(prefix="jira-orchestrator-nats-") as scratch:
        server = None
        if bus is None:
            text, users = nats_authorization(catalog)
            server = NatsServer(Path(scratch), extra_config=text).start()
            urls = {u.name: server.url_for(u.name, u.password) for u in users}
            console.print(
                f"[nats-server] embedded on {server.url}, one user per plugin", markup=False
            )
        else:
            urls = dict.fromkeys([ORCHESTRATOR_ID, *names], bus)
        try:
            with _processes(runnable, urls, env):
                code = asyncio.run(
                    _orchestrate(
                        plugins, urls[ORCHESTRATOR_ID], names, loaded, exit_after, output, console
                    )
                )
        finally:
            if server is not None:
                server.stop()
    raise typer.Exit(code)
