"""``jira-orchestrator route``: which plugin should handle a request, or a batch of them.

    jira-orchestrator route "TEXT" [--file PATH]... [--plugins DIR] [--json] [--explain]
        [--id ID] [--db FILE]
    jira-orchestrator route --plugins DIR --batch FILE [--json]

The index is built once per run, or read from the cache (``--cache DIR``, default
``$JIRA_ORCHESTRATOR_CACHE`` or ``~/.cache/jira-orchestrator``; ``--no-cache``) when the
plugins have not changed since it was built.

A batch FILE is JSON Lines (``id``, ``text``, optional ``files``, ``labels``,
``components``) or a Jira CSV export (Issue key, Summary, Description, Labels,
Component/s). The output is JSON Lines, one decision a line (``id``, ``primaryPlugin``,
``fallbackPlugins``, ``scores``), in input order, with a progress bar on stderr. A bad
line is reported on stderr as ``FILE:LINE: reason`` and skipped; the exit status is then 1.
Bad input (no text, an unknown plugins directory, an unreadable batch file) exits 2.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from jira_orchestrator.cli._errors import fail
from jira_orchestrator.routing import (
    BatchItem,
    BatchProblem,
    InvalidRequest,
    NoPlugins,
    Router,
    RoutingDecision,
    RoutingError,
    RoutingRequest,
    read_batch,
)
from jira_orchestrator.routing.cache import CACHE_ENV, default_cache_dir

__all__ = ["PLUGINS_ENV", "route"]

PLUGINS_ENV = "JIRA_ORCHESTRATOR_PLUGINS"
DB_ENV = "JIRA_ORCHESTRATOR_ROUTING_DB"
_SHOWN = 5


def _build(
    plugins: Path, db: Path | None, semantic: bool = False, cache: Path | None = None
) -> Router:
    try:
        router = Router.from_directory(plugins, store=db, cache=cache)
    except NoPlugins as exc:
        raise fail(f"{exc} (set --plugins or ${PLUGINS_ENV})") from None
    except RoutingError as exc:
        raise fail(str(exc)) from None
    if semantic:
        try:
            from jira_orchestrator.routing.semantic import SemanticReranker

            router.semantic = SemanticReranker.from_router(router, cache=cache)
        except ImportError as exc:
            router.close()
            raise fail(str(exc)) from None
    return router


def route(
    text: Annotated[
        str | None,
        typer.Argument(help="The request: free text, e.g. a Jira summary.", show_default=False),
    ] = None,
    file: Annotated[
        list[str] | None,
        typer.Option(
            "--file", "-f", help="A file the request touches (repeatable).", show_default=False
        ),
    ] = None,
    plugins: Annotated[
        Path,
        typer.Option(
            "--plugins",
            envvar=PLUGINS_ENV,
            help=f"The folder of plugins (default ${PLUGINS_ENV} or ./plugins).",
        ),
    ] = Path("plugins"),
    batch: Annotated[
        Path | None,
        typer.Option(
            "--batch",
            help="Route every request of a JSON Lines or Jira CSV file.",
            show_default=False,
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the decision as JSON (batch: always JSON Lines).")
    ] = False,
    explain: Annotated[
        bool, typer.Option("--explain", help="Say why: scores, evidence, plan.")
    ] = False,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            envvar=DB_ENV,
            help=f"Persist decisions in this SQLite file (or ${DB_ENV}).",
            show_default=False,
        ),
    ] = None,
    semantic: Annotated[
        bool,
        typer.Option(
            "--semantic",
            help="Blend in sentence-embedding similarity (needs the 'semantic' extra).",
        ),
    ] = False,
    cache: Annotated[
        Path | None,
        typer.Option(
            "--cache",
            envvar=CACHE_ENV,
            help=f"Keep the built index here for the next run (default ${CACHE_ENV}, "
            "else ~/.cache/jira-orchestrator).",
            show_default=False,
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Build the index without reading or writing a cache.")
    ] = False,
    request_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="The request's id, e.g. its Jira key (default: a new one); "
            "`decisions correct ID PLUGIN` refers to it.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Decide which plugin should handle a request (or each request of a batch), and why."""
    cache = None if no_cache else (cache or default_cache_dir())
    if batch is not None:
        if text is not None or file or request_id is not None:
            raise fail("give either TEXT (with --file, --id) or --batch FILE, not both")
        _route_batch(_build(plugins, db, semantic, cache), batch)
        return
    if text is None:
        raise fail("give the request TEXT, or --batch FILE")
    router = _build(plugins, db, semantic, cache)
    try:
        request = RoutingRequest.from_text(text, files=file or (), request_id=request_id)
        decision = router.route(request)
    except InvalidRequest as exc:
        raise fail(f"request: {exc}") from None
    finally:
        router.close()
    if json_output:
        document: dict[str, Any] = decision.to_dict()
        if explain:
            document["explanation"] = decision.explain()
        typer.echo(json.dumps(document, ensure_ascii=False))
    elif explain:
        typer.echo(decision.explain())
    else:
        _print(decision)
    if decision.primary_plugin is None:
        raise typer.Exit(1)


def _print(decision: RoutingDecision) -> None:
    console = Console(highlight=False)
    if decision.primary_plugin is None:
        console.print("No plugin fits this request.")
        return
    console.print(
        f"[bold]{escape(decision.primary_plugin)}[/bold]"
        f" (confidence {decision.confidence:.0%}, {decision.execution_strategy})"
    )
    if decision.fallback_plugins:
        console.print("fallbacks: " + ", ".join(decision.fallback_plugins))
    table = Table("plugin", "score", "best matches", box=None, pad_edge=False)
    for score in decision.scores[:_SHOWN]:
        table.add_row(
            escape(score.plugin), f"{score.score:.1f}", escape(", ".join(score.components[:2]))
        )
    console.print(table)
    if decision.recommended_agents:
        names = ", ".join(a.qualified_name for a in decision.recommended_agents[:3])
        console.print(f"agents: {escape(names)}")


def _route_batch(router: Router, path: Path) -> None:
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        entries = list(read_batch(path))
    except InvalidRequest as exc:
        router.close()
        raise fail(str(exc)) from None
    problems = 0
    routed = 0
    progress = Progress(
        TextColumn("routing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
        disable=not errors.is_terminal and not os.environ.get("JIRA_ORCHESTRATOR_PROGRESS"),
    )
    try:
        with progress:
            task = progress.add_task("routing", total=len(entries))
            for entry in entries:
                if isinstance(entry, BatchProblem):
                    problems += 1
                    progress.console.print(f"[red]error:[/red] {escape(str(entry))}")
                elif isinstance(entry, BatchItem):
                    try:
                        decision = router.route(entry.request)
                    except InvalidRequest as exc:
                        problems += 1
                        progress.console.print(
                            f"[red]error:[/red] {escape(f'{path}:{entry.line}: {exc}')}"
                        )
                    else:
                        routed += 1
                        typer.echo(json.dumps(decision.summary(), ensure_ascii=False))
                progress.advance(task)
    finally:
        router.close()
    summary = f"{routed} requests routed"
    if problems:
        summary += f", {problems} bad lines skipped"
    errors.print(summary)
    if problems:
        raise typer.Exit(1)
