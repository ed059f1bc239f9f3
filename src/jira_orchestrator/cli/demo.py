"""``jira-orchestrator demo``: the orchestrator and the example ecosystem, in one process.

It starts every plugin under ``--plugins`` that has a ``plugin.py`` entry point, routes and
dispatches each issue of ``--issues`` through the orchestrator, and shows who did what.
``--fail PLUGIN`` makes a plugin fail (the examples honour ``$DEMO_FAIL``) so that
breakers and fallbacks show.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from jira_orchestrator.orchestrator.dispatcher import DispatchResult, Orchestrator
from jira_orchestrator.plugins import Plugin

__all__ = ["demo", "dispatch_all", "load_entry_point", "read_issues"]


def load_entry_point(entry: Path) -> Plugin:
    """The `Plugin` a ``plugin.py`` defines as ``plugin``."""
    spec = importlib.util.spec_from_file_location(f"plugin_{entry.parent.name}", entry)
    if spec is None or spec.loader is None:
        raise typer.BadParameter(f"cannot load {entry}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugin = getattr(module, "plugin", None)
    if not isinstance(plugin, Plugin):
        raise typer.BadParameter(f"{entry} defines no `plugin = Plugin(...)`")
    return plugin


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
        outcome = "[green]completed[/]" if result.outcome == "completed" else "[red]failed[/]"
        table.add_row(
            result.issue_key or result.request_id,
            result.primary or "(its plugin is down)",
            result.plugin or "-",
            outcome,
            f"{result.duration * 1000:.1f}",
            "yes" if result.fallback_used else "",
        )
    return table


def read_issues(path: Path) -> list[dict[str, Any]]:
    """The issues of a JSON file (a list of Jira issue objects); exit 1 with the reason."""
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        typer.echo(f"error: {path}: cannot read the issues: {error}", err=True)
        raise typer.Exit(1) from None
    if not isinstance(loaded, list) or not all(isinstance(i, dict) for i in loaded):
        typer.echo(f"error: {path}: expected a JSON list of issue objects", err=True)
        raise typer.Exit(1)
    return loaded


async def dispatch_all(
    orchestrator: Orchestrator, issues: list[dict[str, Any]], console: Console
) -> list[DispatchResult]:
    """Dispatch each issue with a progress bar, then print who did what."""
    results: list[DispatchResult] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        bar = progress.add_task("dispatching issues", total=len(issues))
        for issue in issues:
            progress.update(bar, description=f"dispatching {issue.get('key', '')}")
            results.append(await orchestrator.dispatch(issue))
            progress.advance(bar)
    console.print(_table(results))
    done = sum(result.outcome == "completed" for result in results)
    fallbacks = sum(result.fallback_used for result in results)
    console.print(f"{done}/{len(results)} issues completed, {fallbacks} by a fallback plugin")
    return results


async def _run(
    entries: list[Path],
    plugins_dir: Path,
    issues: list[dict[str, Any]],
    output: Path,
    bus_url: str,
    console: Console,
) -> int:
    plugins = [load_entry_point(entry) for entry in entries]
    for plugin in plugins:
        await plugin.start()
    orchestrator = Orchestrator(
        plugins_dir,
        bus_url=bus_url,
        tasks=output / ".orchestrator" / "tasks.db",
        decisions=output / ".orchestrator" / "decisions.db",
        dead_letters=output / ".orchestrator" / "dead-letters.db",
    )
    await orchestrator.start()
    try:
        resumed = await orchestrator.resume()
        if resumed:
            console.print(f"resumed {len(resumed)} task(s) an earlier run left unfinished")
        results = await dispatch_all(orchestrator, issues, console)
    finally:
        await orchestrator.stop()
        orchestrator.close()
        for plugin in plugins:
            await plugin.stop()
    letters = output / ".orchestrator" / "dead-letters.db"
    console.print(f"outputs in {output}; dead letters: jira-orchestrator dlq list --db {letters}")
    return 0 if all(result.outcome == "completed" for result in results) else 1


def demo(
    plugins: Annotated[
        Path, typer.Option(help="folder of plugins; those with a plugin.py are started")
    ] = Path("examples/plugins"),
    issues: Annotated[Path, typer.Option(help="JSON list of Jira issues to dispatch")] = Path(
        "examples/issues.json"
    ),
    output: Annotated[Path, typer.Option(help="where plugins write their outputs")] = Path(
        "output"
    ),
    fail: Annotated[
        list[str] | None, typer.Option(help="make this plugin fail (repeatable)")
    ] = None,
    bus: Annotated[str, typer.Option(help="bus URL")] = "memory://",
) -> None:
    """Route and dispatch sample Jira issues to the example plugins, in this process."""
    if not plugins.is_dir():
        typer.echo(f"error: {plugins}: no such folder of plugins", err=True)
        raise typer.Exit(1)
    loaded = read_issues(issues)
    output = output.resolve()
    os.environ["JIRA_ORCHESTRATOR_OUTPUT"] = str(output)
    os.environ["JIRA_ORCHESTRATOR_STATE_DIR"] = str(output / ".state")
    os.environ["DEMO_FAIL"] = ",".join(fail or [])
    # Plugins log each failure with its traceback; the table tells the story here.
    logging.basicConfig(level=logging.CRITICAL)
    entries = sorted(plugins.glob("*/plugin.py"))
    console = Console(width=max(Console().width, 100))  # plugin names fit on one line
    code = asyncio.run(_run(entries, plugins, loaded, output, bus, console))
    raise typer.Exit(code)
