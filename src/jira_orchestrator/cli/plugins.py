"""``jira-orchestrator plugins ...``: validate, list and scaffold plugins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from jira_orchestrator._core.errors import ManifestError
from jira_orchestrator.cli._errors import EXIT_FAILURE, EXIT_USAGE, fail
from jira_orchestrator.cli._files import exit_for, write_text
from jira_orchestrator.cli._text import cell
from jira_orchestrator.plugins import (
    AgentCriteria,
    AgentRegistry,
    discover_plugins,
    is_plugin_dir,
    load_plugin,
    manifest_json_schema_text,
    validate_manifest,
)
from jira_orchestrator.plugins.scaffold import scaffold_plugin

__all__ = ["plugins_app"]

_KEYWORDS_SHOWN = 6

plugins_app = typer.Typer(help="Validate, list and scaffold plugins.", no_args_is_help=True)


def _check(path: Path) -> tuple[list[str], list[str], str]:
    """(problems, warnings, what was checked) for one path given to ``validate``."""
    if not path.exists():
        return [f"{path}: $: no such file or directory"], [], ""
    if path.is_file():
        problems = validate_manifest(path)
        return problems, [], "" if problems else f"{path}: manifest is valid"
    if is_plugin_dir(path):
        try:
            plugin = load_plugin(path)
        except ManifestError as exc:
            return exc.problems, [], ""
        counts = (
            f"{len(plugin.agents)} agents, {len(plugin.commands)} commands,"
            f" {len(plugin.skills)} skills"
        )
        return (
            list(plugin.problems),
            list(plugin.warnings),
            f"{path}: {plugin.name} {plugin.version} is valid ({counts})",
        )
    catalog = discover_plugins(path)
    if not catalog.plugins and not catalog.problems:
        return [f"{path}: $: no plugin here (no .claude-plugin/plugin.json in it or below)"], [], ""
    return (
        list(catalog.problems),
        list(catalog.warnings),
        f"{path}: {len(catalog)} plugins checked",
    )


@plugins_app.command("validate")
def validate(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="plugin.json files, plugin folders, or folders of plugins.", show_default=False
        ),
    ],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the problems.")] = False,
) -> None:
    """Check manifests (and, for folders, agent, command and skill files).

    Prints every problem as ``file: json.path: message``; exits 1 if there is any
    (a path that does not exist is one).
    """
    failed = 0
    for path in paths:
        problems, warnings, summary = _check(path)
        for problem in problems:
            typer.echo(problem)
        if not quiet:
            for warning in warnings:
                typer.echo(f"warning: {warning}")
            if summary and not problems:
                typer.echo(f"ok: {summary}")
        failed += len(problems)
    if failed:
        if not quiet:
            typer.echo(f"{failed} problem{'s' if failed != 1 else ''} found", err=True)
        raise typer.Exit(EXIT_FAILURE)


@plugins_app.command("list")
def list_plugins(
    directory: Annotated[Path, typer.Argument(help="A folder of plugin folders.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON list of objects instead of a table.")
    ] = False,
) -> None:
    """List the plugins in DIRECTORY with their agents, commands and skills.

    Manifests with problems are left out and reported on standard error; the exit code is
    then 1.
    """
    try:
        catalog = discover_plugins(directory)
    except NotADirectoryError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    if as_json:
        typer.echo(json.dumps([plugin.summary() for plugin in catalog], indent=2))
    else:
        table = Table(
            title=f"Plugins in {escape(str(directory))}",
            caption=(
                f"{len(catalog)} plugins, {len(catalog.agents)} agents,"
                f" {sum(len(p.commands) for p in catalog)} commands,"
                f" {sum(len(p.skills) for p in catalog)} skills"
            ),
        )
        table.add_column("name", overflow="fold")
        table.add_column("version")
        table.add_column("agents", justify="right")
        table.add_column("commands", justify="right")
        table.add_column("skills", justify="right")
        table.add_column("keywords", ratio=1, overflow="fold")
        for plugin in catalog:
            keywords = list(plugin.manifest.keywords)
            shown = ", ".join(keywords[:_KEYWORDS_SHOWN])
            if len(keywords) > _KEYWORDS_SHOWN:
                shown += f" (+{len(keywords) - _KEYWORDS_SHOWN})"
            table.add_row(
                cell(plugin.name),
                cell(plugin.version, 20),
                str(len(plugin.agents)),
                str(len(plugin.commands)),
                str(len(plugin.skills)),
                cell(shown, 200),
            )
        Console().print(table)
    for problem in catalog.problems:
        typer.echo(f"problem: {problem}", err=True)
    if catalog.problems:
        count = len(catalog.problems)
        raise fail(
            f"{count} problem{'s' if count != 1 else ''} in {directory}: see "
            f"jira-orchestrator plugins validate {directory}",
            EXIT_FAILURE,
        )


@plugins_app.command("agents")
def find_agents(
    directory: Annotated[Path, typer.Argument(help="A folder of plugin folders.")],
    query: Annotated[str, typer.Argument(help="Free text, e.g. a request.")] = "",
    keyword: Annotated[
        list[str] | None, typer.Option("--keyword", "-k", help="A keyword (repeatable).")
    ] = None,
    capability: Annotated[
        list[str] | None, typer.Option("--capability", "-c", help="A capability (repeatable).")
    ] = None,
    category: Annotated[str | None, typer.Option(help="A category.")] = None,
    context: Annotated[
        list[str] | None, typer.Option("--file", "-f", help="A file in the context (repeatable).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many results.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Rank the agents of the plugins in DIRECTORY against a query, with the reasons."""
    try:
        registry = AgentRegistry(discover_plugins(directory).plugins)
    except NotADirectoryError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    criteria = AgentCriteria(
        query=query,
        keywords=keyword or [],
        capabilities=capability or [],
        category=category,
        context=context or [],
        limit=limit,
    )
    matches = registry.find_agents(criteria)
    if as_json:
        typer.echo(json.dumps([match.to_dict() for match in matches], indent=2))
        return
    table = Table(title=f"{len(matches)} agents")
    table.add_column("score", justify="right")
    table.add_column("agent", no_wrap=True)
    table.add_column("why", overflow="fold")
    for match in matches:
        table.add_row(
            f"{match.score:.2f}",
            cell(match.agent.qualified_name, 80),
            cell("; ".join(match.reasons), 200),
        )
    Console().print(table)


@plugins_app.command("schema")
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
) -> None:
    """Print the JSON Schema of plugin.json (stored as schemas/plugin.schema.json)."""
    text = manifest_json_schema_text()
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_text(output, text)


@plugins_app.command("new")
def new(
    name: Annotated[str, typer.Argument(help="the plugin id, e.g. billing-reports")],
    directory: Annotated[
        Path, typer.Argument(help="where to create the plugin folder", show_default=True)
    ] = Path("."),
    description: Annotated[str, typer.Option(help="one line for the manifest")] = "",
) -> None:
    """Scaffold a working plugin: manifest, entry point, an agent and a passing test."""
    try:
        root = scaffold_plugin(name, directory, description=description)
    except (ValueError, FileExistsError, NotADirectoryError) as error:
        raise fail(str(error), EXIT_USAGE) from None
    except OSError as error:
        raise exit_for(error, f"cannot create plugin {name!r} in {directory}") from None
    typer.echo(f"created {root}")
    typer.echo(f"  run it:   python {root / 'plugin.py'}")
    typer.echo(f"  test it:  python -m pytest {root / 'tests'}")
