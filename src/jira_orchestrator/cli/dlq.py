"""``jira-orchestrator dlq ...``: list, show, replay and purge dead letters."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from jira_orchestrator._core.clock import format_timestamp, parse_timestamp
from jira_orchestrator._core.errors import JiraOrchestratorError
from jira_orchestrator._core.protocol import BUS_URL_ENV
from jira_orchestrator.cli._errors import EXIT_FAILURE, EXIT_USAGE, fail
from jira_orchestrator.cli._text import cell, escape_control
from jira_orchestrator.messagebus import close_message_bus
from jira_orchestrator.orchestrator import (
    DEFAULT_DLQ_PATH,
    DLQ_ENV,
    STORES_DIR,
    DeadLetterError,
    DeadLetterNotFound,
    DeadLetterStore,
    ReplayNotDelivered,
    replay_letter,
)
from jira_orchestrator.plugins import PluginCatalog, discover_plugins

__all__ = ["dlq_app"]

BUS_ENV = BUS_URL_ENV
PLUGINS_ENV = "JIRA_ORCHESTRATOR_PLUGINS"
_SHORT = 24  # reason and subscriber: names, normally
_MAX_ID = 2**63 - 1  # SQLite's largest integer: no letter has an id outside 1.._MAX_ID

dlq_app = typer.Typer(help="Inspect, replay and purge the dead-letter store.", no_args_is_help=True)

DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        help=f"Dead-letter database (default: ${DLQ_ENV} or {DEFAULT_DLQ_PATH}, where demo and "
        "up write with their default --output).",
        show_default=False,
    ),
]


def _db_path(db: Path | None) -> Path:
    if db is not None:
        return db
    return Path(os.environ.get(DLQ_ENV) or DEFAULT_DLQ_PATH)


def _open(db: Path | None) -> DeadLetterStore:
    """The store; exit 2 when there is none at the path, 1 when it is unusable."""
    path = _db_path(db)
    if path.is_dir():
        raise fail(f"{path} is a folder, not a dead-letter store", EXIT_USAGE)
    if not path.exists():
        raise fail(
            f"no dead-letter store at {path}: give --db PATH or set ${DLQ_ENV} "
            f"(demo and up write OUTPUT/{STORES_DIR}/dead-letters.db)",
            EXIT_USAGE,
        )
    try:
        return DeadLetterStore(path)
    except DeadLetterError as exc:
        raise fail(str(exc), EXIT_FAILURE) from None


def _failed(exc: DeadLetterError) -> typer.Exit:
    return fail(str(exc), EXIT_USAGE if isinstance(exc, DeadLetterNotFound) else EXIT_FAILURE)


def _check_id(letter_id: int) -> None:
    if not 1 <= letter_id <= _MAX_ID:
        raise fail(f"no dead letter with id {letter_id}", EXIT_USAGE)


@dlq_app.command("list")
def list_letters(
    db: DbOption = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Only letters with this reason.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List dead letters, oldest first."""
    with _open(db) as store:
        try:
            letters = store.list(reason=reason)
        except DeadLetterError as exc:
            raise _failed(exc) from None
    if as_json:
        typer.echo(json.dumps([letter.to_dict() for letter in letters], indent=2))
        return
    if not letters:
        typer.echo("no dead letters" + (f" with reason {reason!r}" if reason else ""))
        return
    table = Table(title=f"{len(letters)} dead letters")
    columns = ("id", "received", "reason", "topic", "sender", "subscriber", "error", "replayed")
    for column in columns:
        table.add_column(column, overflow="fold")
    for letter in letters:
        error = (
            f"{letter.error_type}: {letter.error_message}"
            if letter.error_type
            else letter.error_message
        )
        if letter.problem:
            error = f"[malformed] {letter.problem}"
        table.add_row(
            str(letter.id),
            format_timestamp(letter.received_at),
            cell(letter.reason, _SHORT),
            cell(letter.topic or "?"),
            cell(letter.sender or "? (unproven)", _SHORT),
            cell(letter.subscriber or "?", _SHORT),
            cell(error),
            str(letter.replay_count) if letter.replay_count else "",
        )
    Console(width=160).print(table)


@dlq_app.command("show")
def show(
    letter_id: Annotated[int, typer.Argument(metavar="ID", help="The letter's id.")],
    db: DbOption = None,
) -> None:
    """Print one dead letter in full, as JSON."""
    _check_id(letter_id)
    with _open(db) as store:
        try:
            letter = store.get(letter_id)
        except DeadLetterError as exc:
            raise _failed(exc) from None
    typer.echo(json.dumps(letter.to_dict(), indent=2))


async def _replay(
    store: DeadLetterStore,
    ids: list[int],
    url: str | None,
    timeout: float | None,
    plugins: PluginCatalog | None = None,
    as_identity: str | None = None,
) -> list[JiraOrchestratorError]:
    problems: list[JiraOrchestratorError] = []
    try:
        for letter_id in ids:
            try:
                sent = await replay_letter(
                    store,
                    letter_id,
                    url=url,
                    timeout=timeout,
                    plugins=plugins,
                    as_identity=as_identity,
                )
            except JiraOrchestratorError as exc:
                problems.append(exc)
                continue
            typer.echo(
                f"replayed {letter_id} on {sent.topic} as {sent.message_id} from "
                f"{escape_control(sent.source)} (retryCount {sent.metadata.retry_count})"
            )
    finally:
        await close_message_bus()  # the CLI process ends here: deliver and close
    return problems


@dlq_app.command("replay")
def replay(
    letter_id: Annotated[
        int | None, typer.Argument(metavar="[ID]", help="The letter to replay.")
    ] = None,
    replay_all: Annotated[
        bool, typer.Option("--all", help="Replay every letter not replayed yet.")
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="With --all: only this reason.")
    ] = None,
    bus: Annotated[
        str | None,
        typer.Option(
            "--bus",
            help=f"Bus URL (default: ${BUS_ENV} or memory://).",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            min=0.001,
            help="Seconds to wait for the answer to a replayed request on a core NATS topic "
            "(default: the original's timeout, else 30).",
            show_default=False,
        ),
    ] = None,
    plugins: Annotated[
        Path | None,
        typer.Option(
            "--plugins",
            help=f"Folder of plugins whose rights a replay is checked against (default: "
            f"${PLUGINS_ENV}).",
            show_default=False,
        ),
    ] = None,
    as_identity: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="Replay as this identity (a plugin, or jira-orchestrator), on your word, "
            "instead of the letter's proven sender.",
            show_default=False,
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Publish a letter's original message again, on its topic, with retryCount + 1.

    It is sent by the identity that sent the letter (proven by its topic), only when the
    message is that identity's own and its manifest (--plugins) lets it publish there;
    never as the orchestrator unless --as says so. A letter is marked replayed only once
    its delivery is confirmed; one that nobody received stays pending and is reported
    (exit 1).
    """
    if (letter_id is None) == (not replay_all):
        raise fail("give one letter ID or --all", EXIT_USAGE)
    if reason is not None and not replay_all:
        raise fail("--reason goes with --all", EXIT_USAGE)
    if letter_id is not None:
        _check_id(letter_id)
    url = bus or os.environ.get(BUS_ENV) or None
    folder = plugins or (Path(os.environ[PLUGINS_ENV]) if os.environ.get(PLUGINS_ENV) else None)
    catalog = None
    if folder is not None:
        if not folder.is_dir():
            raise fail(f"--plugins: {folder} is not a folder of plugins", EXIT_USAGE)
        catalog = discover_plugins(folder)
    with _open(db) as store:
        try:
            if letter_id is None:
                ids = [letter.id for letter in store.list(reason=reason, replayed=False)]
            else:
                ids = [store.get(letter_id).id]
        except DeadLetterError as exc:
            raise _failed(exc) from None
        if not ids:
            typer.echo("nothing to replay")
            return
        problems = asyncio.run(_replay(store, ids, url, timeout, catalog, as_identity))
    for problem in problems:
        fail(str(problem))
    if any(isinstance(p, ReplayNotDelivered) for p in problems) and (url or "memory://").startswith(
        "memory:"
    ):
        fail(
            "memory:// reaches only this process: give --bus (or $"
            f"{BUS_ENV}) the URL of the running system, such as nats://localhost:4222"
        )
    if problems:
        raise typer.Exit(EXIT_FAILURE)


@dlq_app.command("purge")
def purge(
    before: Annotated[
        str | None,
        typer.Option("--before", help="Only letters received before this ISO 8601 time."),
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Only this reason.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    db: DbOption = None,
) -> None:
    """Delete dead letters (all of them, without filters)."""
    cutoff: float | None = None
    if before is not None:
        try:
            cutoff = parse_timestamp(before)
        except ValueError:
            raise fail(f"--before: not an ISO 8601 time: {before!r}", EXIT_USAGE) from None
    with _open(db) as store:
        try:
            count = store.count(reason=reason, before=cutoff)
            if count == 0:
                typer.echo("nothing to purge")
                return
            if not yes and not typer.confirm(f"Delete {count} dead letters?"):
                raise fail("aborted, nothing deleted", EXIT_FAILURE)
            deleted = store.purge(reason=reason, before=cutoff)
        except DeadLetterError as exc:
            raise _failed(exc) from None
    typer.echo(f"purged {deleted} dead letters")
