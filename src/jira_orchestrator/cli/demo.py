"""``jira-orchestrator demo``: the orchestrator and the example ecosystem, in one process.

It starts every plugin under ``--plugins`` that has a ``plugin.py`` entry point (a plugin
in another language, with a ``runtime`` in its manifest, is named in one line and left to
``up``), routes and dispatches each issue of ``--issues`` through the orchestrator, and
shows who did what.
``--fail PLUGIN`` makes a plugin fail (the examples honour ``$DEMO_FAIL``) so that
breakers and fallbacks show. An issue that cannot be dispatched (no summary, a field of
the wrong type) is reported with its index and key and skipped; the others still run.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from jira_orchestrator._core.errors import JiraOrchestratorError
from jira_orchestrator.cli._errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, fail
from jira_orchestrator.cli._results import (
    ResultLines,
    dispatch_line,
    invalid_line,
    processed_line,
)
from jira_orchestrator.cli._text import cell
from jira_orchestrator.orchestrator.deadletters import DeadLetterStore
from jira_orchestrator.orchestrator.dispatcher import (
    DispatchResult,
    Orchestrator,
    issue_parameters,
)
from jira_orchestrator.orchestrator.files import DEFAULT_OUTPUT, OrchestratorFiles
from jira_orchestrator.orchestrator.tasks import TaskStore
from jira_orchestrator.plugins import Issue, Plugin, discover_plugins
from jira_orchestrator.routing import InvalidRequest, RoutingRequest
from jira_orchestrator.routing.store import DecisionStore

__all__ = ["IssueFile", "demo", "dispatch_all", "issue_problem", "load_entry_point", "read_issues"]

_SKIPPED = "not dispatched: "
_KEY_WIDTH = 40


class PluginLoadError(JiraOrchestratorError):
    """A ``plugin.py`` that cannot be imported or defines no plugin."""


def load_entry_point(entry: Path) -> Plugin:
    """The `Plugin` a ``plugin.py`` defines as ``plugin``; raises `PluginLoadError`."""
    spec = importlib.util.spec_from_file_location(f"plugin_{entry.parent.name}", entry)
    if spec is None or spec.loader is None:
        raise PluginLoadError(f"{entry}: cannot load it")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the plugin's own code: whatever it raises is reported
        raise PluginLoadError(f"{entry}: {type(error).__name__}: {error}") from error
    except SystemExit as error:
        raise PluginLoadError(f"{entry}: exited while loading ({error})") from error
    plugin = getattr(module, "plugin", None)
    if not isinstance(plugin, Plugin):
        raise PluginLoadError(f"{entry} defines no `plugin = Plugin(...)`")
    return plugin


class IssueFile(list[Any]):
    """The entries of an issues file, in order, and the file they came from."""

    def __init__(self, entries: list[Any], path: Path | None = None) -> None:
        super().__init__(entries)
        self.path = path


def read_issues(path: Path) -> IssueFile:
    """The entries of a JSON file holding a list of Jira issues; exit 2 with the reason.

    Each entry is checked when it is dispatched (`issue_problem`), so one bad issue is
    reported and skipped, not the whole file.
    """
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise fail(f"{path}: cannot read the issues: {error}", EXIT_USAGE) from None
    if not isinstance(loaded, list):
        raise fail(f"{path}: expected a JSON list of issue objects", EXIT_USAGE)
    return IssueFile(loaded, path)


def _kind(value: object) -> str:
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return "a number"
    return "a list" if isinstance(value, list) else f"a {type(value).__name__}"


def issue_problem(issue: Any) -> str | None:
    """Why ``issue`` cannot be dispatched (``field: reason``), or None when it can.

    The checks are those of dispatch itself: the router must read it and the plugin's
    ``handle_issue`` must accept its parameters (`jira_orchestrator.plugins.Issue`).
    """
    if not isinstance(issue, Mapping):
        return f"expected a JSON object, not {_kind(issue)}"
    try:
        RoutingRequest.from_jira(issue)
        parameters = issue_parameters(issue)
    except InvalidRequest as error:
        return str(error)
    except (TypeError, ValueError, AttributeError) as error:
        return f"unreadable: {error}"
    try:
        Issue.model_validate(parameters)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "issue"
        return f"{where}: {first['msg']}"
    return None


def _label(index: int, issue: Any) -> str:
    key = issue.get("key") or issue.get("id") if isinstance(issue, Mapping) else None
    return f"issue {index}" + (f" ({cell(str(key), _KEY_WIDTH, markup=False)})" if key else "")


def _skipped(index: int, issue: Any, problem: str) -> DispatchResult:
    key = issue.get("key") or issue.get("id") if isinstance(issue, Mapping) else None
    return DispatchResult(
        task_id="",
        request_id=f"issue {index}",
        issue_key=str(key) if key else None,
        primary=None,
        plugin=None,
        outcome="failed",
        result=None,
        error=_SKIPPED + problem,
        duration=0.0,
    )


def _table(results: list[DispatchResult]) -> Table:
    table = Table(title="jira-orchestrator demo: who did what")
    for column, justify in (
        ("issue", "left"),
        ("routed to", "left"),
        ("done by", "left"),
        ("outcome", "left"),
        ("ms", "right"),
        ("fallback", "left"),
    ):
        table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for result in results:
        skipped = (result.error or "").startswith(_SKIPPED)
        if skipped:
            outcome, routed = "[red]skipped[/]", "(invalid issue)"
        else:
            outcome = "[green]completed[/]" if result.outcome == "completed" else "[red]failed[/]"
            routed = cell(result.primary or "(its plugin is down)")
        table.add_row(
            cell(result.issue_key or result.request_id, _KEY_WIDTH),
            routed,
            cell(result.plugin or "-"),
            outcome,
            "" if skipped else f"{result.duration * 1000:.1f}",
            "yes" if result.fallback_used else "",
        )
    return table


def _error(message: str) -> None:
    Console(stderr=True, soft_wrap=True).print(
        f"[red]error:[/red] {escape(message)}", highlight=False
    )


async def dispatch_all(
    orchestrator: Orchestrator,
    issues: list[Any],
    console: Console,
    lines: ResultLines | None = None,
) -> list[DispatchResult]:
    """Dispatch each issue with a progress bar, then print who did what.

    An issue that cannot be dispatched is reported on standard error (its index, key and
    what is wrong), skipped, and counted as failed in the results; the others still run.
    With ``lines``, each issue's result is also written there as it is known.
    """
    where = getattr(issues, "path", None)
    prefix = f"{where}: " if where is not None else ""
    problems = {index: issue_problem(issue) for index, issue in enumerate(issues)}
    for index, problem in problems.items():
        if problem is not None:
            _error(f"{prefix}{_label(index, issues[index])}: {problem}; skipped")
    results: list[DispatchResult] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        bar = progress.add_task("dispatching issues", total=len(issues))
        for index, issue in enumerate(issues):
            problem = problems[index]
            if problem is None:
                key = cell(str(issue.get("key", "")), _KEY_WIDTH)
                progress.update(bar, description=f"dispatching {key}")
                try:
                    results.append(await orchestrator.dispatch(issue))
                except InvalidRequest as error:
                    problem = str(error)
                except JiraOrchestratorError as error:
                    _error(f"{prefix}{_label(index, issue)}: could not be dispatched: {error}")
                    results.append(_skipped(index, issue, str(error)))
                    if lines is not None:
                        lines.write({**dispatch_line(index, results[-1]), "outcome": "error"})
                else:
                    if lines is not None:
                        lines.write(dispatch_line(index, results[-1]))
            if problem is not None:
                if problems[index] is None:  # found by dispatch, not reported yet
                    _error(f"{prefix}{_label(index, issue)}: {problem}; skipped")
                    problems[index] = problem
                results.append(_skipped(index, issue, problem))
                if lines is not None:
                    lines.write(invalid_line(index, results[-1].issue_key, problem))
            progress.advance(bar)
    console.print(_table(results))
    done = sum(result.outcome == "completed" for result in results)
    fallbacks = sum(result.fallback_used for result in results)
    console.print(f"{done}/{len(results)} issues completed, {fallbacks} by a fallback plugin")
    bad = [index for index, problem in problems.items() if problem is not None]
    if bad:
        shown = ", ".join(_label(index, issues[index]) for index in bad[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        _error(f"{prefix}{len(bad)} issue{'s' if len(bad) != 1 else ''} skipped: {shown}{more}")
    return results


def _check_stores(files: OrchestratorFiles) -> None:
    """Exit 1 naming the file when one of the orchestrator's databases is unusable."""
    checks: tuple[tuple[Path, Any], ...] = (
        (files.tasks, TaskStore),
        (files.decisions, DecisionStore),
        (files.dead_letters, DeadLetterStore),
    )
    for path, kind in checks:
        try:
            kind(path).close()
        except JiraOrchestratorError as error:
            raise fail(
                f"{error} (move {path} away or choose another --output)", EXIT_FAILURE
            ) from None


async def _run(
    entries: list[Path],
    plugins_dir: Path,
    issues: list[Any],
    output: Path,
    bus_url: str,
    console: Console,
    lines: ResultLines | None = None,
) -> int:
    files = OrchestratorFiles.of(output)
    plugins: list[Plugin] = []
    try:
        for entry in entries:
            plugins.append(load_entry_point(entry))
    except PluginLoadError as error:
        _error(f"cannot load a plugin: {error}")
        return EXIT_USAGE
    started: list[Plugin] = []
    try:
        for plugin in plugins:
            try:
                await plugin.start()
            except (JiraOrchestratorError, OSError) as error:
                _error(f"plugin {plugin.id} did not start: {error}")
                return EXIT_FAILURE
            started.append(plugin)
        tasks = TaskStore(files.tasks)
        try:
            orchestrator = Orchestrator(
                plugins_dir,
                bus_url=bus_url,
                tasks=tasks,
                decisions=files.decisions,
                dead_letters=files.dead_letters,
            )
        except JiraOrchestratorError as error:
            tasks.close()
            _error(str(error))
            return EXIT_FAILURE
        await orchestrator.start()
        try:
            resumed = await orchestrator.resume()
            if resumed:
                console.print(f"resumed {len(resumed)} task(s) an earlier run left unfinished")
            results = await dispatch_all(orchestrator, issues, console, lines)
        except JiraOrchestratorError as error:
            _error(f"the orchestrator failed: {error}")
            return EXIT_FAILURE
        finally:
            await orchestrator.stop()
            orchestrator.close()
    finally:
        for plugin in reversed(started):
            await plugin.stop()
    console.print(
        f"outputs in {output}; dead letters: jira-orchestrator dlq list --db {files.dead_letters}"
    )
    return EXIT_OK if all(result.outcome == "completed" for result in results) else EXIT_FAILURE


def demo(
    plugins: Annotated[
        Path, typer.Option(help="folder of plugins; those with a plugin.py are started")
    ] = Path("examples/plugins"),
    issues: Annotated[Path, typer.Option(help="JSON list of Jira issues to dispatch")] = Path(
        "examples/issues.json"
    ),
    output: Annotated[
        Path, typer.Option(help="where plugins write their outputs")
    ] = DEFAULT_OUTPUT,
    fail_plugin: Annotated[
        list[str] | None, typer.Option("--fail", help="make this plugin fail (repeatable)")
    ] = None,
    bus: Annotated[str, typer.Option(help="bus URL")] = "memory://",
    jira: Annotated[
        bool,
        typer.Option(
            "--jira",
            help="the whole Jira loop: a local Jira sandbox holds the issues, its webhooks"
            " reach the receiver, decisions and outcomes are written back to it",
        ),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="print one JSON object a line per issue (key, routedTo, doneBy, outcome,"
            " fallback, ms, ...) on standard output, everything else on standard error",
        ),
    ] = False,
) -> None:
    """Route and dispatch sample Jira issues to the example plugins, in this process."""
    if not plugins.is_dir():
        raise fail(f"{plugins}: no such folder of plugins", EXIT_USAGE)
    loaded = read_issues(issues)
    problems = [issue_problem(issue) for issue in loaded]
    if loaded and all(problem is not None for problem in problems):
        for index, problem in enumerate(problems):
            _error(f"{issues}: {_label(index, loaded[index])}: {problem}")
        raise fail(f"{issues}: no issue can be dispatched, nothing done", EXIT_USAGE)
    output = output.resolve()
    _check_stores(OrchestratorFiles.of(output))
    # Plugins log each failure with its traceback; the table tells the story here.
    logging.basicConfig(level=logging.CRITICAL)
    entries = sorted(plugins.glob("*/plugin.py"))
    console = Console(width=max(Console().width, 132 if jira else 100))  # names on one line
    for plugin in discover_plugins(plugins).plugins:
        runtime = plugin.manifest.runtime
        if runtime is not None:  # a note, on standard error: standard output is the results
            program = runtime.command or runtime.entry
            Console(stderr=True).print(
                f"{plugin.name} is not started by the demo, which runs Python plugins only"
                f" ({plugin.name} runs on {program}: `jira-orchestrator up` starts it)",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    # The plugins of this process read where to write and whether to fail from these; they
    # are put back afterwards, so a program calling the command keeps its environment.
    with (
        _environment(
            JIRA_ORCHESTRATOR_OUTPUT=str(output),
            JIRA_ORCHESTRATOR_STATE_DIR=str(output / ".state"),
            DEMO_FAIL=",".join(fail_plugin or []),
        ),
        ResultLines.redirecting() if as_json else contextlib.nullcontext() as lines,
    ):
        if jira:
            code = _jira_demo(entries, plugins, loaded, problems, output, console, lines)
        else:
            code = asyncio.run(_run(entries, plugins, loaded, output, bus, console, lines))
    raise typer.Exit(code)


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for the block, then restore what was there."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _jira_demo(
    entries: list[Path],
    plugins: Path,
    loaded: IssueFile,
    problems: list[str | None],
    output: Path,
    console: Console,
    lines: ResultLines | None = None,
) -> int:
    from jira_orchestrator.cli._demo_jira import run_jira_demo

    good = []
    where: list[int] = []  # the index in the file of each good issue
    for index, (issue, problem) in enumerate(zip(loaded, problems, strict=True)):
        if problem is None:
            good.append(issue)
            where.append(index)
        else:
            _error(f"{loaded.path}: {_label(index, issue)}: {problem}; skipped")
    try:
        rows = asyncio.run(run_jira_demo(entries, plugins, good, output, console))
    except PluginLoadError as error:
        _error(f"cannot load a plugin: {error}")
        return EXIT_USAGE
    except (JiraOrchestratorError, OSError) as error:
        _error(f"the Jira loop failed: {error}")
        return EXIT_FAILURE
    if lines is not None:
        by_index = dict(zip(where, rows, strict=True))
        for index, issue in enumerate(loaded):
            row = by_index.get(index)
            if row is not None:
                lines.write(processed_line(index, row))
            else:
                key = issue.get("key") if isinstance(issue, Mapping) else None
                lines.write(invalid_line(index, str(key) if key else None, str(problems[index])))
    completed = all(row.get("outcome") == "completed" for row in rows)
    return EXIT_OK if completed and len(good) == len(loaded) else EXIT_FAILURE
