"""``jira-orchestrator tasks prune``: delete finished tasks past their retention age."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

from jira_orchestrator._core.clock import format_timestamp, parse_timestamp
from jira_orchestrator.cli._duration import parse_duration
from jira_orchestrator.cli._errors import EXIT_FAILURE, EXIT_USAGE, fail
from jira_orchestrator.orchestrator import (
    DEFAULT_TASK_RETENTION,
    STORES_DIR,
    TASK_RETENTION_ENV,
    TASKS_ENV,
    OrchestratorFiles,
    TaskStore,
    TaskStoreError,
)

__all__ = ["tasks_app"]

tasks_app = typer.Typer(help="Look after the orchestrator's task database.", no_args_is_help=True)


def _cutoff(older_than: str | None, before: str | None, now: float) -> float:
    if older_than is not None and before is not None:
        raise fail("give --older-than or --before, not both", EXIT_USAGE)
    if before is not None:
        try:
            return parse_timestamp(before)
        except ValueError:
            raise fail(f"--before: not an ISO 8601 time: {before!r}", EXIT_USAGE) from None
    if older_than is not None:
        where, age = "--older-than", older_than
    else:
        where = f"${TASK_RETENTION_ENV}"
        age = os.environ.get(TASK_RETENTION_ENV) or DEFAULT_TASK_RETENTION
    try:
        return now - parse_duration(age)
    except ValueError as exc:
        raise fail(f"{where}: {exc}", EXIT_USAGE) from None


@tasks_app.command("prune")
def prune(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help=f"Finished tasks older than this (30d, 12h, 90m, 45s, 2w; default "
            f"${TASK_RETENTION_ENV} or {DEFAULT_TASK_RETENTION}).",
            show_default=False,
        ),
    ] = None,
    before: Annotated[
        str | None,
        typer.Option("--before", help="Finished tasks last updated before this ISO 8601 time."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            help=f"Task database (default: ${TASKS_ENV} or {OrchestratorFiles().tasks}, where "
            "demo and up write with their default --output).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Delete completed and failed tasks past the retention age; pending and running tasks
    (which a restarted orchestrator resumes) are always kept."""
    cutoff = _cutoff(older_than, before, time.time())
    path = db if db is not None else Path(os.environ.get(TASKS_ENV) or OrchestratorFiles().tasks)
    if path.is_dir():
        raise fail(f"{path} is a folder, not a task database", EXIT_USAGE)
    if not path.exists():
        raise fail(
            f"no task database at {path}: give --db PATH or set ${TASKS_ENV} "
            f"(demo and up write OUTPUT/{STORES_DIR}/tasks.db)",
            EXIT_USAGE,
        )
    try:
        with TaskStore(path) as store:
            count = store.prunable(cutoff)
            if count == 0:
                typer.echo("nothing to prune")
                return
            when = format_timestamp(cutoff)
            if not yes and not typer.confirm(f"Delete {count} tasks finished before {when}?"):
                raise fail("aborted, nothing deleted", EXIT_FAILURE)
            deleted = store.prune(cutoff)
    except TaskStoreError as exc:
        raise fail(str(exc), EXIT_FAILURE) from None
    typer.echo(f"pruned {deleted} tasks finished before {when}")
