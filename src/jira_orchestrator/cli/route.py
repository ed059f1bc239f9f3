"""``jira-orchestrator route``: which plugin should handle a request, or a batch of them.

    jira-orchestrator route "TEXT" [--file PATH]... [--plugins DIR] [--json] [--explain]
        [--id ID] [--db FILE [--retention DURATION]] [--min-confidence X]
    jira-orchestrator route --plugins DIR --batch FILE|- [--json] [--db FILE] [--min-confidence X]

Below ``--min-confidence`` (0..1; ``$JIRA_ORCHESTRATOR_MIN_CONFIDENCE``) a decision is
left to a person: strategy ``triage``, no primary plugin, the best three candidates shown
with their evidence (exit 0: the router did its job).

The index is built once per run, or read from the cache (``--cache DIR``, default
``$JIRA_ORCHESTRATOR_CACHE`` or ``~/.cache/jira-orchestrator``; ``--no-cache``) when the
plugins have not changed since it was built.

A batch FILE (``-``: standard input) is JSON Lines (``id``, ``text``, optional ``files``,
``labels``, ``components``) or a Jira CSV export (Issue key, Summary, Description, Labels,
Component/s). It is read as it is routed: the output is JSON Lines, one decision a line
(``id``, ``primaryPlugin``, ``fallbackPlugins``, ``confidence``, ``executionStrategy``,
``scores``), in input order, each printed
as soon as it is made, with a progress bar on stderr. A bad line is reported on stderr as
``FILE:LINE: reason`` and skipped.

Exit status (as every command's, see `jira_orchestrator.cli._errors`): 0 done; 1 no plugin
fits the request, a batch had bad lines, or the ``--db`` file failed (locked by another
process, disk full, damaged, another program's database: a batch stops there and says at
which line); 2 bad usage or input (no text, an unknown plugins directory, an unreadable
batch file, a bad ``--retention``).
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from jira_orchestrator.cli._duration import parse_duration
from jira_orchestrator.cli._errors import EXIT_FAILURE, fail
from jira_orchestrator.routing import (
    BatchItem,
    BatchProblem,
    BatchReader,
    DecisionStore,
    InvalidRequest,
    NoPlugins,
    Router,
    RoutingDecision,
    RoutingError,
    RoutingRequest,
    RoutingStoreError,
    read_batch,
)
from jira_orchestrator.routing.cache import CACHE_ENV, default_cache_dir

__all__ = ["PLUGINS_ENV", "route"]

PLUGINS_ENV = "JIRA_ORCHESTRATOR_PLUGINS"
DB_ENV = "JIRA_ORCHESTRATOR_ROUTING_DB"
RETENTION_ENV = "JIRA_ORCHESTRATOR_ROUTING_RETENTION"
MIN_CONFIDENCE_ENV = "JIRA_ORCHESTRATOR_MIN_CONFIDENCE"
STORE_TIMEOUT = 5.0
"""How long (seconds) a command waits for another process's lock on a routing database."""
_SHOWN = 5


def open_store(db: Path, retention: float | None = None) -> DecisionStore:
    """The routing database at ``db``, or exit 1 with the reason (locked, disk full,
    damaged, another program's file); exit 2 if it is a directory."""
    if db.is_dir():
        raise fail(f"{db} is a directory, not a routing database")
    try:
        return DecisionStore(db, timeout=STORE_TIMEOUT, retention=retention)
    except RoutingStoreError as exc:
        raise fail(str(exc), EXIT_FAILURE) from None


@contextmanager
def _routing(
    plugins: Path,
    db: Path | None,
    semantic: bool | None = False,
    cache: Path | None = None,
    retention: float | None = None,
    min_confidence: float = 0.0,
) -> Iterator[Router]:
    """A router over ``plugins`` (with the store at ``db``), closed on exit; a store
    failure while it is used exits 1 with the reason."""
    store = None if db is None else open_store(db, retention)
    try:
        try:
            router = Router.from_directory(
                plugins, store=store, cache=cache, min_confidence=min_confidence
            )
        except NoPlugins as exc:
            raise fail(f"{exc} (set --plugins or ${PLUGINS_ENV})") from None
        except RoutingStoreError as exc:
            raise fail(str(exc), EXIT_FAILURE) from None
        except RoutingError as exc:
            raise fail(str(exc)) from None
        try:
            from jira_orchestrator.routing import semantic as embeddings

            # None: blend when the model and NumPy are installed (no PyTorch needed).
            if semantic or (semantic is None and embeddings.available()):
                try:
                    router.semantic = embeddings.SemanticReranker.from_router(router, cache=cache)
                except ImportError as exc:
                    raise fail(str(exc)) from None
            yield router
        except RoutingStoreError as exc:
            raise fail(str(exc), EXIT_FAILURE) from None
        finally:
            router.close()
    finally:
        if store is not None:
            store.close()


def _retention(text: str | None, db: Path | None) -> float | None:
    if text is None:
        return None
    if db is None:
        raise fail("--retention goes with --db FILE")
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise fail(f"--retention: {exc}") from None


def _min_confidence(text: str | None) -> float:
    if text is None:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise fail(f"--min-confidence: must be a number from 0 to 1, not {text!r}")
    return value


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
            help="Route every request of a JSON Lines or Jira CSV file (- for stdin).",
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
    retention: Annotated[
        str | None,
        typer.Option(
            "--retention",
            envvar=RETENTION_ENV,
            help="Drop decisions and outcomes older than this from --db, e.g. 90d "
            f"(or ${RETENTION_ENV}; default: keep them).",
            show_default=False,
        ),
    ] = None,
    semantic: Annotated[
        bool | None,
        typer.Option(
            "--semantic/--no-semantic",
            help="Blend in sentence-embedding similarity (needs the 'semantic' extra; "
            "default: when it is installed).",
            show_default=False,
        ),
    ] = None,
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
    min_confidence: Annotated[
        str | None,
        typer.Option(
            "--min-confidence",
            envvar=MIN_CONFIDENCE_ENV,
            help="Below this confidence (0..1, the probability that the plugin is right), "
            "leave the request to a person: strategy 'triage', the best three candidates "
            f"listed (or ${MIN_CONFIDENCE_ENV}; default 0: always route).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Decide which plugin should handle a request (or each request of a batch), and why."""
    cache = None if no_cache else (cache or default_cache_dir())
    keep = _retention(retention, db)
    floor = _min_confidence(min_confidence)
    if batch is not None:
        if text is not None or file or request_id is not None:
            raise fail("give either TEXT (with --file, --id) or --batch FILE, not both")
        entries = _open_batch(batch)
        with entries, _routing(plugins, db, semantic, cache, keep, floor) as router:
            _route_batch(router, entries)
        return
    if text is None:
        raise fail("give the request TEXT, or --batch FILE")
    try:
        request = RoutingRequest.from_text(text, files=file or (), request_id=request_id)
    except InvalidRequest as exc:
        raise fail(f"request: {exc}") from None
    with _routing(plugins, db, semantic, cache, keep, floor) as router:
        try:
            decision = router.route(request)
        except InvalidRequest as exc:
            raise fail(f"request: {exc}") from None
    if json_output:
        document: dict[str, Any] = decision.to_dict()
        if explain:
            document["explanation"] = decision.explain()
        typer.echo(json.dumps(document, ensure_ascii=False))
    elif explain:
        typer.echo(decision.explain())
    else:
        _print(decision)
    if decision.primary_plugin is None and not decision.triaged:
        raise typer.Exit(1)


def _print(decision: RoutingDecision) -> None:
    console = Console(highlight=False)
    if decision.triaged:
        console.print(
            f"[bold]Not sure enough to route[/bold] (confidence {decision.confidence:.0%},"
            f" needs {decision.min_confidence:.0%}): a person should pick. Candidates:"
        )
        for rank, score in enumerate(decision.candidates, 1):
            console.print(f"{rank}. [bold]{escape(score.plugin)}[/bold] (score {score.score:.1f})")
            for line in score.evidence[:2]:
                console.print(f"   - {escape(line)}")
        return
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


def _open_batch(path: Path) -> BatchReader:
    try:
        return read_batch(sys.stdin.buffer if str(path) == "-" else path)
    except InvalidRequest as exc:
        raise fail(str(exc)) from None


def _route_batch(router: Router, entries: BatchReader) -> None:
    """Route and print each request as it is read; a store failure stops the batch with
    the line it stopped at."""
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    problems = 0
    routed = 0
    progress = Progress(
        TextColumn("routing"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[routed]} requests"),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
        disable=not errors.is_terminal and not os.environ.get("JIRA_ORCHESTRATOR_PROGRESS"),
    )
    source = entries.source
    line = 0
    with progress:
        # A regular file's progress is in bytes read; a pipe's total is unknown.
        task = progress.add_task("routing", total=entries.size, routed=0)
        try:
            for entry in entries:
                line = entry.line
                if isinstance(entry, BatchProblem):
                    problems += 1
                    progress.console.print(f"[red]error:[/red] {escape(str(entry))}")
                elif isinstance(entry, BatchItem):
                    try:
                        decision = router.route(entry.request)
                    except InvalidRequest as exc:
                        problems += 1
                        progress.console.print(
                            f"[red]error:[/red] {escape(f'{source}:{entry.line}: {exc}')}"
                        )
                    else:
                        routed += 1
                        typer.echo(json.dumps(decision.summary(), ensure_ascii=False))
                progress.update(task, completed=entries.position, routed=routed)
        except RoutingStoreError as exc:
            raise fail(
                f"{exc}; stopped at {source}:{line} after {routed} requests routed",
                EXIT_FAILURE,
            ) from None
        except OSError as exc:
            raise fail(
                f"{source}: cannot read after line {line}: {exc.strerror or exc};"
                f" {routed} requests routed",
                EXIT_FAILURE,
            ) from None
    summary = f"{routed} requests routed"
    if problems:
        summary += f", {problems} bad lines skipped"
    errors.print(summary)
    if problems:
        raise typer.Exit(EXIT_FAILURE)
