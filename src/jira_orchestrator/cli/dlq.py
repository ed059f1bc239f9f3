"""``jira-orchestrator dlq ...``: list, show, replay and purge dead letters."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from jira_orchestrator._core.clock import format_timestamp, parse_timestamp
from jira_orchestrator._core.errors import JiraOrchestratorError
from jira_orchestrator.messagebus import close_message_bus
from jira_orchestrator.orchestrator import (
    DEFAULT_DLQ_PATH,
    DLQ_ENV,
    DeadLetter,
    DeadLetterError,
    DeadLetterStore,
    replay_letter,
)

__all__ = ["dlq_app"]

BUS_ENV = "JIRA_ORCHESTRATOR_BUS_URL"
_ERROR_WIDTH = 60

dlq_app = typer.Typer(help="Inspect, replay and purge the dead-letter store.", no_args_is_help=True)

DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        help=f"Dead-letter database (default: ${DLQ_ENV} or {DEFAULT_DLQ_PATH}).",
        show_default=False,
    ),
]


def _db_path(db: Path | None) -> Path:
    if db is not None:
        return db
    return Path(os.environ.get(DLQ_ENV) or DEFAULT_DLQ_PATH)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _open(db: Path | None, *, must_exist: bool) -> DeadLetterStore | None:
    """The store, or None when it does not exist and ``must_exist`` is False."""
    path = _db_path(db)
    if not path.exists():
        if must_exist:
            raise _fail(f"no dead-letter store at {path}")
        return None
    try:
        return DeadLetterStore(path)
    except DeadLetterError as exc:
        raise _fail(str(exc)) from None


def _short(text: str | None, width: int = _ERROR_WIDTH) -> str:
    if not text:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


@dlq_app.command("list")
def list_letters(
    db: DbOption = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Only letters with this reason.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List dead letters, oldest first."""
    store = _open(db, must_exist=False)
    letters: list[DeadLetter] = []
    if store is not None:
        with store:
            try:
                letters = store.list(reason=reason)
            except DeadLetterError as exc:
                raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps([letter.to_dict() for letter in letters], indent=2))
        return
    if not letters:
        typer.echo("no dead letters" + (f" with reason {reason!r}" if reason else ""))
        return
    table = Table(title=f"{len(letters)} dead letters")
    for column in ("id", "received", "reason", "topic", "subscriber", "error", "replayed"):
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
            escape(letter.reason),
            escape(letter.topic or "?"),
            escape(letter.subscriber or "?"),
            escape(_short(error)),
            str(letter.replay_count) if letter.replay_count else "",
        )
    Console(width=160).print(table)


@dlq_app.command("show")
def show(
    letter_id: Annotated[int, typer.Argument(metavar="ID", help="The letter's id.")],
    db: DbOption = None,
) -> None:
    """Print one dead letter in full, as JSON."""
    store = _open(db, must_exist=True)
    assert store is not None
    with store:
        try:
            letter = store.get(letter_id)
        except DeadLetterError as exc:
            raise _fail(str(exc)) from None
    typer.echo(json.dumps(letter.to_dict(), indent=2))


async def _replay(store: DeadLetterStore, ids: list[int], url: str | None) -> list[str]:
    problems: list[str] = []
    try:
        for letter_id in ids:
            try:
                sent = await replay_letter(store, letter_id, url=url)
            except JiraOrchestratorError as exc:
                problems.append(str(exc))
                continue
            typer.echo(
                f"replayed {letter_id} on {sent.topic} as {sent.message_id} "
                f"(retryCount {sent.metadata.retry_count})"
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
    db: DbOption = None,
) -> None:
    """Publish a letter's original message again, on its topic, with retryCount + 1."""
    if (letter_id is None) == (not replay_all):
        raise _fail("give one letter ID or --all", 2)
    if reason is not None and not replay_all:
        raise _fail("--reason goes with --all", 2)
    store = _open(db, must_exist=True)
    assert store is not None
    with store:
        try:
            if replay_all:
                ids = [letter.id for letter in store.list(reason=reason, replayed=False)]
            else:
                assert letter_id is not None
                ids = [letter_id]
        except DeadLetterError as exc:
            raise _fail(str(exc)) from None
        if not ids:
            typer.echo("nothing to replay")
            return
        problems = asyncio.run(_replay(store, ids, bus or os.environ.get(BUS_ENV) or None))
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        raise typer.Exit(1)


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
            raise _fail(f"--before: not an ISO 8601 time: {before!r}", 2) from None
    store = _open(db, must_exist=False)
    if store is None:
        typer.echo("nothing to purge")
        return
    with store:
        try:
            count = store.count(reason=reason, before=cutoff)
            if count == 0:
                typer.echo("nothing to purge")
                return
            if not yes and not typer.confirm(f"Delete {count} dead letters?"):
                raise _fail("aborted, nothing deleted")
            deleted = store.purge(reason=reason, before=cutoff)
        except DeadLetterError as exc:
            raise _fail(str(exc)) from None
    typer.echo(f"purged {deleted} dead letters")
