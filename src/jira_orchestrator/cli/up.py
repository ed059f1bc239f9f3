"""``jira-orchestrator up`` and ``nats-config``: the ecosystem as separate processes on NATS.

``up`` starts an embedded nats-server (unless ``--bus`` names one) configured with one user
per plugin, one process per plugin that has a ``plugin.py`` entry point or a ``runtime`` in
its manifest (a plugin in another language), and the orchestrator in this process. Every
line a process prints is prefixed with its name. Ctrl-C (or ``--exit-after``) stops
everything: the orchestrator, then the plugins (SIGTERM, they drain), then the server.

It supervises what it started (`jira_orchestrator.cli._supervisor`): a plugin that exits
during start-up stops ``up`` at once, naming it; one that dies later is reported, its
requests in flight go to fallbacks, and it is restarted with backoff (``--restarts`` in a
row, then ``up`` gives up on it); a dead nats-server is restarted on its port. No child
outlives ``up``, and an ``up`` on the output folder of a killed one ends what it left.

``--cluster N`` runs N embedded nodes instead of one server (`jira_orchestrator.cli._cluster`),
each watched like the single one, each process starting on another node. The orchestrator
also serves the intake that orchestrator replicas share (`jira_orchestrator.orchestrator.replicas`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qs, unquote, urlsplit

import typer
from rich.console import Console

from jira_orchestrator._core.errors import TransportError
from jira_orchestrator._core.observe import METRICS_ENV
from jira_orchestrator._core.protocol import (
    BUS_URL_ENV,
    NATS_INBOX_PREFIX_ENV,
    NATS_PASSWORD_ENV,
    NATS_SERVERS_ENV,
    NATS_TOKEN_ENV,
    NATS_USER_ENV,
    OUTPUT_ENV,
    PASS_ENV,
    STATE_DIR_ENV,
)
from jira_orchestrator.cli import _errors
from jira_orchestrator.cli._cluster import (
    check_local_size,
    spread_urls,
    start_local_cluster,
    write_cluster_config,
)
from jira_orchestrator.cli._errors import EXIT_USAGE, fail
from jira_orchestrator.cli._files import write_text
from jira_orchestrator.cli._http import HttpAddress, check_http, orchestrator_http, start_tracing
from jira_orchestrator.cli._launch import Launch, NotStartable, plan_launch
from jira_orchestrator.cli._results import ResultLines
from jira_orchestrator.cli._supervisor import (
    Busy,
    PluginProcess,
    RestartPolicy,
    RunFolder,
    Supervisor,
    describe_exit,
)
from jira_orchestrator.cli.demo import dispatch_all, read_issues
from jira_orchestrator.orchestrator.dispatcher import ORCHESTRATOR_ID, Orchestrator
from jira_orchestrator.orchestrator.natsconfig import (
    NatsUser,
    nats_authorization,
    provision_consumers,
)
from jira_orchestrator.orchestrator.replicas import Intake
from jira_orchestrator.plugins import discover_plugins

if TYPE_CHECKING:
    from jira_orchestrator.transports.nats_server import NatsServer

__all__ = ["bus_urls", "nats_config", "up"]

READY_TIMEOUT = 60.0
DEFAULT_HTTP = "127.0.0.1:8642"
METRICS_INTERVAL = 5.0
"""Seconds between the metric snapshots of the plugin processes (with ``--http``)."""
SERVER_RESTARTS = 3


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
    cluster: Annotated[
        int | None,
        typer.Option(
            help="write the configuration of a cluster of this many nodes into the --output "
            "folder (one file per node, one of users)"
        ),
    ] = None,
    hosts: Annotated[
        str | None,
        typer.Option(help="the nodes' host names, comma-separated (default nats-1..nats-N)"),
    ] = None,
) -> None:
    """Write a nats-server authorization block: one user per plugin, permissions from its
    manifest (or, with --cluster, the configuration of every node of a cluster)."""
    if cluster is not None and cluster < 1:
        raise fail(f"--cluster {cluster}: a cluster has at least 1 node", EXIT_USAGE)
    text, users = nats_authorization(_plugins_or_exit(plugins))
    if cluster is not None:
        write_cluster_config(cluster, output, hosts, text, len(users))
    elif output is None:
        typer.echo(text, nl=False)
    else:
        write_text(output, text, private=True)
        typer.echo(f"wrote {output} ({len(users)} users)", err=True)
    if credentials is not None:
        passwords = json.dumps({u.name: u.password for u in users}, indent=2)
        write_text(credentials, passwords, private=True)


async def _wait_ready(orchestrator: Orchestrator, expected: list[str]) -> None:
    """Until every expected plugin answers its health check and has work capacity."""

    def waiting() -> list[str]:
        return [
            p
            for p in expected
            if orchestrator.availability(p) == 0
            or orchestrator.health[p].status in ("unknown", "stopped")
        ]

    while waiting():
        await asyncio.sleep(0.2)  # polling other processes' readiness, bounded by the caller
        await orchestrator.refresh_health()


async def _serve(
    orchestrator: Orchestrator,
    supervisor: Supervisor,
    url: str,
    expected: list[str],
    issues: list[dict[str, Any]] | None,
    console: Console,
    lines: ResultLines | None = None,
) -> int | None:
    """Wait for the plugins, resume, dispatch the issues; the exit code so far, or None
    when the plugins did not get ready."""
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await _wait_ready(orchestrator, expected)
    except TimeoutError:
        late = [p for p in expected if orchestrator.availability(p) == 0]
        console.print(
            f"[orchestrator] plugins not ready within {READY_TIMEOUT:g}s: {', '.join(late)}",
            markup=False,
        )
        return None
    supervisor.running()
    console.print(
        f"[orchestrator] {len(expected)} plugin(s) ready on {_address(url)}", markup=False
    )
    code = 0
    resumed = await orchestrator.resume()
    if resumed:
        console.print(f"[orchestrator] resumed {len(resumed)} unfinished task(s)", markup=False)
    if issues is not None:
        results = await dispatch_all(orchestrator, issues, console, lines)
        code = 0 if all(r.outcome == "completed" for r in results) else 1
    return code


def _address(url: str) -> str:
    """The servers of a bus URL, without credentials or options."""
    servers = url.partition("?")[0].split(",")
    return ",".join(server.rpartition("@")[2] for server in servers)


async def _orchestrate(
    plugins: Path,
    url: str,
    runnable: list[PluginProcess],
    issues: list[dict[str, Any]] | None,
    exit_after: bool,
    folder: RunFolder,
    policy: RestartPolicy,
    servers: dict[str, NatsServer],
    console: Console,
    http: HttpAddress | None = None,
    lines: ResultLines | None = None,
) -> int:
    orchestrator = Orchestrator(
        plugins,
        bus_url=url,
        tasks=folder.root / "tasks.db",
        decisions=folder.root / "decisions.db",
        dead_letters=folder.root / "dead-letters.db",
        heartbeat=5.0,
    )
    try:
        await orchestrator.bus.transport.flush()  # connect now: a wrong --bus fails fast
        # The plugins' users may not create JetStream consumers: the orchestrator's does,
        # before any plugin starts, and each plugin binds to its own.
        from jira_orchestrator.transports.nats import NatsTransport

        transport = orchestrator.bus.transport
        if isinstance(transport, NatsTransport):
            await provision_consumers(transport, orchestrator.catalog)
    except TransportError as error:
        console.print(f"[orchestrator] error: {error}", markup=False)
        orchestrator.close()
        return 1

    def say(text: str) -> None:
        console.print(text, markup=False, soft_wrap=True)  # one line each, to grep

    def lost(name: str, how: str) -> None:
        orchestrator.plugin_lost(name, f"its process {how}")

    supervisor = Supervisor(folder, runnable, say=say, policy=policy, on_exit=lost)
    intake = Intake(orchestrator)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watching: list[asyncio.Task[None]] = []
    code = 0
    serving_http = contextlib.AsyncExitStack()
    try:
        await supervisor.start()
        for name, server in servers.items():
            watching.append(loop.create_task(_watch_server(server, supervisor, folder, say, name)))
        await orchestrator.start()
        if http is not None:  # the dashboard and /metrics while up runs
            try:
                await serving_http.enter_async_context(orchestrator_http(orchestrator, http, say))
            except OSError as error:  # HTTPServerError: the port is taken, say
                say(f"[orchestrator] error: {error} (choose another --http, or --http off)")
                return 1
        intake.start()  # issues from other programs (and other orchestrator replicas')
        expected = [p.name for p in runnable]
        serving = loop.create_task(
            _serve(orchestrator, supervisor, url, expected, issues, console, lines)
        )
        stopped = loop.create_task(stop.wait())
        try:
            await asyncio.wait(
                (serving, stopped, supervisor.failure), return_when=asyncio.FIRST_COMPLETED
            )
            if serving.done():
                served = serving.result()
                code = 1 if served is None else served
                if served is not None and not exit_after:
                    say("[orchestrator] running; Ctrl-C stops everything")
                    await asyncio.wait(
                        (stopped, supervisor.failure), return_when=asyncio.FIRST_COMPLETED
                    )
        finally:
            stopped.cancel()
            serving.cancel()
            await asyncio.gather(serving, stopped, return_exceptions=True)
        if supervisor.failure.done():
            say(f"[up] {supervisor.failure.result()}; stopping")
            code = 1
        elif stopped.done() and not stopped.cancelled():
            say("[orchestrator] stopping")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        intake.stop()
        await serving_http.aclose()
        await orchestrator.stop()
        orchestrator.close()
        await supervisor.stop()
        for watcher in watching:
            watcher.cancel()
    return code


async def _watch_server(
    server: NatsServer,
    supervisor: Supervisor,
    folder: RunFolder,
    say: Callable[[str], None],
    name: str = "nats-server",
) -> None:
    """Restart the embedded server (or one node of the embedded cluster) when it dies
    (same ports, same store), a few times."""
    restarts = 0
    while server.process is not None:
        code = await asyncio.to_thread(server.process.wait)
        if supervisor.stopping:
            return
        how = describe_exit(code)
        if restarts >= SERVER_RESTARTS:
            supervisor.fail(f"{name} {how} again after {restarts} restart(s)")
            return
        restarts += 1
        say(
            f"[{name}] {how}; restarting it on {server.url} "
            f"(restart {restarts} of {SERVER_RESTARTS}); log: {server.log}"
        )
        try:
            server.restart()  # from the loop's thread, so it still dies with us
        except RuntimeError as error:
            supervisor.fail(f"{name} {how} and could not be restarted: {error}")
            return
        assert server.process is not None
        folder.record(name, server.process.pid)
        say(f"[{name}] running again on {server.url}; the plugins reconnect")


def bus_urls(server: NatsServer, users: list[NatsUser]) -> dict[str, str]:
    """The bus URL of each user of the embedded server: its own credentials and, for a
    plugin, ``jetstream=bind``: it uses the consumer the orchestrator made for it."""
    return {
        user.name: server.url_for(user.name, user.password)
        + ("" if user.name == ORCHESTRATOR_ID else "?jetstream=bind")
        for user in users
    }


async def _up(
    catalog: Any,
    plugins: Path,
    bus: str | None,
    runnable: list[Launch],
    env: dict[str, str],
    issues: list[dict[str, Any]] | None,
    exit_after: bool,
    output: Path,
    policy: RestartPolicy,
    console: Console,
    http: HttpAddress | None = None,
    lines: ResultLines | None = None,
    cluster: int | None = None,
) -> int:
    from jira_orchestrator.transports.nats_server import NatsServer

    folder = RunFolder(output)
    try:
        folder.acquire()
    except Busy as error:
        console.print(f"[up] error: {error}", markup=False, soft_wrap=True)
        return 1
    try:
        cleared = folder.clear_leftovers()
        if cleared:
            console.print(
                "[up] an earlier up on this output folder was killed; ended what it left "
                f"running: {', '.join(cleared)}",
                markup=False,
                soft_wrap=True,
            )
        servers: dict[str, NatsServer] = {}

        def stop_servers() -> None:
            return None

        if bus is None and cluster is not None:
            folder.nats.mkdir(mode=0o700)  # its configuration holds every user's password
            text, users = nats_authorization(catalog)
            try:
                # from the loop's thread, so the nodes die with us (parent-death signal)
                nodes = start_local_cluster(folder.nats, cluster, text)
            except RuntimeError as error:
                console.print(f"[nats-server] error: {error}", markup=False)
                return 1
            stop_servers = nodes.stop
            servers = {f"nats-{i + 1}": node for i, node in enumerate(nodes.nodes)}
            spread = spread_urls(
                nodes, users, [launch.name for launch in runnable] + [ORCHESTRATOR_ID]
            )
            # as on one server: a plugin binds to the consumer the orchestrator made for it
            urls = {
                name: url if name == ORCHESTRATOR_ID else f"{url}&jetstream=bind"
                for name, url in spread.items()
            }
            console.print(
                f"[nats-server] embedded cluster of {cluster} nodes on "
                f"{', '.join(node.url for node in nodes.nodes)}, streams replicated "
                f"{nodes.replicas}-wise, one user per plugin",
                markup=False,
                soft_wrap=True,
            )
        elif bus is None:
            folder.nats.mkdir(mode=0o700)  # its configuration holds every user's password
            text, users = nats_authorization(catalog)
            try:
                server = NatsServer(folder.nats, extra_config=text).start()
            except RuntimeError as error:
                console.print(f"[nats-server] error: {error}", markup=False)
                return 1
            servers = {"nats-server": server}
            stop_servers = server.stop
            urls = bus_urls(server, users)
            console.print(
                f"[nats-server] embedded on {server.url}, one user per plugin", markup=False
            )
        else:
            urls = dict.fromkeys([ORCHESTRATOR_ID, *(launch.name for launch in runnable)], bus)
        for name, server in servers.items():
            assert server.process is not None
            folder.record(name, server.process.pid)
        children = [
            PluginProcess(
                launch.name,
                launch.argv,
                {**env, **bus_environment(urls[launch.name]), "PYTHONUNBUFFERED": "1"},
                launch.cwd,
            )
            for launch in runnable
        ]
        try:
            return await _orchestrate(
                plugins,
                urls[ORCHESTRATOR_ID],
                children,
                issues,
                exit_after,
                folder,
                policy,
                servers,
                console,
                http,
                lines,
            )
        finally:
            if servers:
                stop_servers()
                folder.clear_server()
    finally:
        folder.release()


def bus_environment(url: str) -> dict[str, str]:
    """What a plugin process learns of its bus: the URL, and the same split into servers,
    credentials and inbox prefix for a NATS client in another language (nats.js ignores
    credentials written in a URL)."""
    env = {BUS_URL_ENV: url}
    base, _, query = url.partition("?")
    servers = [part.strip() for part in base.split(",") if part.strip()]
    parts = [urlsplit(server) for server in servers]
    if not parts or any(part.scheme not in ("nats", "tls") for part in parts):
        return env  # memory:// or something only the SDK reads
    hosts = []
    for part in parts:
        host = part.hostname or "127.0.0.1"
        hosts.append(f"{f'[{host}]' if ':' in host else host}:{part.port or 4222}")
    env[NATS_SERVERS_ENV] = ",".join(hosts)
    first = parts[0]
    if first.username and first.password is not None:
        env[NATS_USER_ENV] = unquote(first.username)
        env[NATS_PASSWORD_ENV] = unquote(first.password)
    elif first.username:
        env[NATS_TOKEN_ENV] = unquote(first.username)
    from jira_orchestrator.transports._nats_connection import inbox_prefix_for  # nats extra

    chosen = parse_qs(query).get("inbox_prefix", [""])[-1]
    env[NATS_INBOX_PREFIX_ENV] = chosen or inbox_prefix_for(servers)
    return env


_PASSED = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TZ", "TMPDIR", "LANG",
        "LANGUAGE", "PYTHONPATH", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE",
        "VIRTUAL_ENV", "SSL_CERT_FILE", "SSL_CERT_DIR", "HF_HUB_OFFLINE",
        "JIRA_ORCHESTRATOR_CACHE", "JIRA_ORCHESTRATOR_PLUGINS",
    }
)  # fmt: skip


def plugin_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """What a plugin process started by ``up`` sees of the operator's environment: an
    allow-list (the locale, paths and Python settings, and the names in
    ``$JIRA_ORCHESTRATOR_PASS_ENV``), never the operator's other secrets (a Jira token, the
    dashboard token, the orchestrator's bus URL). Each plugin gets its own bus URL apart."""
    extra = {name.strip() for name in environ.get(PASS_ENV, "").split(",") if name.strip()}
    return {
        name: value
        for name, value in environ.items()
        if name in _PASSED or name in extra or name.startswith("LC_") or _tracing_setting(name)
    }


def _tracing_setting(name: str) -> bool:
    """The ``OTEL_*`` variables, so the plugins trace where the orchestrator does; not
    ``OTEL_SERVICE_NAME`` (each plugin is a service of its own) nor the exporter's headers
    (they may carry the backend's API key: name them in $JIRA_ORCHESTRATOR_PASS_ENV)."""
    return name.startswith("OTEL_") and name != "OTEL_SERVICE_NAME" and not name.endswith("HEADERS")


def _launches(catalog: Any, path: str | None, console: Console) -> list[Launch]:
    """The processes to start; one line for each plugin that cannot start here (``node``
    missing, its ``node_modules`` not installed), and ``up`` carries on without it."""
    launches = []
    for plugin in catalog.plugins:
        try:
            launch = plan_launch(plugin, python=sys.executable, path=path)
        except NotStartable as error:
            console.print(
                f"[up] {plugin.name} not started: {error}; carrying on without it",
                markup=False,
                soft_wrap=True,
            )
            continue
        if launch is not None:
            launches.append(launch)
    return sorted(launches, key=lambda launch: launch.name)


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
    restarts: Annotated[
        int,
        typer.Option(
            min=0, help="restarts in a row of a plugin that keeps dying before up gives up on it"
        ),
    ] = RestartPolicy.limit,
    http: Annotated[
        str,
        typer.Option(
            "--http",
            metavar="HOST:PORT",
            help="Serve the dashboard, /metrics, /healthz and /readyz here ('off': none).",
        ),
    ] = DEFAULT_HTTP,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="print one JSON object a line per issue of --issues (key, routedTo, doneBy,"
            " outcome, fallback, ms, ...) on standard output, everything else on standard error",
        ),
    ] = False,
    cluster: Annotated[
        int | None,
        typer.Option(
            help="run an embedded NATS cluster of this many nodes (3, 5 or 7) and spread "
            "the processes over them"
        ),
    ] = None,
) -> None:
    """Start the orchestrator and one process per plugin on NATS, until Ctrl-C."""
    if as_json and issues is None:
        raise _errors.fail("--json prints the results of --issues: give --issues FILE")
    if cluster is not None:
        check_local_size(cluster, bus)
    address = check_http(http, default=DEFAULT_HTTP)
    catalog = _plugins_or_exit(plugins)
    loaded = read_issues(issues) if issues is not None else None
    output = output.resolve()
    env = {
        **plugin_environment(os.environ),
        OUTPUT_ENV: str(output),
        STATE_DIR_ENV: str(output / ".state"),
        "DEMO_FAIL": ",".join(fail or []),
    }
    if address is not None:  # the plugins send their metrics to the orchestrator's /metrics
        env[METRICS_ENV] = os.environ.get(METRICS_ENV) or str(METRICS_INTERVAL)
    start_tracing(ORCHESTRATOR_ID)
    console = Console(width=max(Console().width, 100))  # plugin names fit on one line
    logging.basicConfig(level=logging.WARNING, format="[orchestrator] %(levelname)s %(message)s")
    with ResultLines.redirecting() if as_json else contextlib.nullcontext() as lines:
        runnable = _launches(catalog, env.get("PATH"), console)  # says so on stderr with --json
        code = asyncio.run(
            _up(
                catalog,
                plugins,
                bus,
                runnable,
                env,
                loaded,
                exit_after,
                output,
                RestartPolicy(limit=restarts),
                console,
                address,
                lines,
                cluster,
            )
        )
    raise typer.Exit(code)
