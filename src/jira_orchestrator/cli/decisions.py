"""``jira-orchestrator decisions ...``: read the routing decisions a ``--db`` keeps, and
say which were wrong.

    jira-orchestrator decisions list [--limit N] [--json]
    jira-orchestrator decisions show ID [--json]
    jira-orchestrator decisions correct ID PLUGIN
    jira-orchestrator decisions outcome ID PLUGIN --success | --failure
    jira-orchestrator decisions stats [--json]
    jira-orchestrator decisions prune --older-than DURATION | --before TIME [--dry-run]
    jira-orchestrator decisions export-corrections [--output FILE]
    jira-orchestrator decisions import-corrections FILE|- [--dry-run] [--plugins DIR]

The database is the one ``route --db`` (or ``$JIRA_ORCHESTRATOR_ROUTING_DB``) writes.
A correction or an outcome recorded here sways every later ``route`` with the same
database, as `Router.record_correction` and `Router.record_outcome` do. ``prune`` drops
the decisions and outcomes older than a duration (``90d``) or a time; corrections stay.
``export-corrections`` writes the corrections as JSON Lines (see
`jira_orchestrator.routing.corrections`) and ``import-corrections`` reads them into a
database (created if need be), so a team keeps them across upgrades and shares them
between environments; of two corrections of one request the newer wins.

Exit status: 0 done; 1 the database failed (locked by another process for longer than
5 s, disk full, damaged, another program's database); 2 bad input (no database, an
unknown request id or plugin, a value out of range, an unreadable file to import). Nothing
is written on an error; ``import-corrections`` imports the good lines of a file and exits
1 naming each bad one (``FILE:LINE: reason``).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from jira_orchestrator._core.clock import parse_timestamp, wall
from jira_orchestrator.cli._duration import parse_duration
from jira_orchestrator.cli._errors import EXIT_FAILURE, fail
from jira_orchestrator.cli.route import DB_ENV, PLUGINS_ENV, open_store
from jira_orchestrator.plugins import PluginCatalog, discover_plugins
from jira_orchestrator.routing import RoutingStoreError
from jira_orchestrator.routing.corrections import (
    CorrectionProblem,
    read_corrections,
    write_corrections,
)
from jira_orchestrator.routing.store import Correction, DecisionStore, StoredDecision

__all__ = ["decisions_app"]

decisions_app = typer.Typer(
    help="Read the routing decisions a --db keeps, and record which were wrong.",
    no_args_is_help=True,
)

DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        envvar=DB_ENV,
        help=f"The SQLite file `route --db` writes (or ${DB_ENV}).",
        show_default=False,
    ),
]
PluginsOption = Annotated[
    Path,
    typer.Option(
        "--plugins",
        envvar=PLUGINS_ENV,
        help=f"The folder of plugins, to check the plugin's name (default ${PLUGINS_ENV}).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
MAX_LIMIT = 1_000_000


@contextmanager
def _open(db: Path | None) -> Iterator[DecisionStore]:
    """The database at ``db``, closed on exit; its failures exit 1 with the reason."""
    if db is None:
        raise fail(f"give --db FILE (or set ${DB_ENV}): the file `route --db` writes")
    if not db.is_file():
        raise fail(f"no routing database at {db}")
    store = open_store(db)
    try:
        with store:
            yield store
    except RoutingStoreError as exc:
        raise fail(str(exc), EXIT_FAILURE) from None


def _decision(store: DecisionStore, request_id: str) -> StoredDecision:
    found = store.get_decision(request_id)
    if found is None:
        raise fail(f"no decision for request {request_id!r} in {store.path}")
    return found


def _catalog(plugins: Path) -> PluginCatalog:
    try:
        return discover_plugins(plugins)
    except NotADirectoryError as exc:
        raise fail(f"{exc} (set --plugins or ${PLUGINS_ENV})") from None
    except OSError as exc:
        raise fail(f"plugins directory {str(plugins)!r}: {exc.strerror or exc}") from None


def _check_plugin(plugins: Path, plugin: str) -> None:
    names = sorted(info.name for info in _catalog(plugins).plugins)
    if plugin not in names:
        known = ", ".join(names) or "none"
        raise fail(f"unknown plugin {plugin!r} in {plugins} (known: {known})")


def _primary(entry: dict[str, Any]) -> str:
    """The primary plugin, or why there is none (left to a person, or no plugin fits)."""
    if entry["primaryPlugin"]:
        return str(entry["primaryPlugin"])
    return "(triage)" if entry.get("executionStrategy") == "triage" else "-"


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _entry(store: DecisionStore, stored: StoredDecision) -> dict[str, Any]:
    correction = store.correction_of(stored.request_id)
    return {
        "id": stored.request_id,
        "createdAt": _when(stored.created_at),
        "text": stored.text,
        "files": list(stored.files),
        "primaryPlugin": stored.primary_plugin,
        "confidence": stored.decision.get("confidence"),
        "executionStrategy": stored.decision.get("executionStrategy"),
        "correctedTo": correction.plugin if correction else None,
        "outcomes": [
            {"plugin": o.plugin, "success": o.success, "at": _when(o.created_at)}
            for o in store.outcomes_of(stored.request_id)
        ],
    }


@decisions_app.command("list")
def list_decisions(
    db: DbOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many, newest first.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """The latest decisions, newest first, with their corrections and outcomes."""
    if limit > MAX_LIMIT:
        raise fail(f"--limit: at most {MAX_LIMIT:,}, got {limit}")
    with _open(db) as store:
        entries = [_entry(store, stored) for stored in store.recent_decisions(limit)]
    if as_json:
        for entry in entries:
            typer.echo(json.dumps(entry, ensure_ascii=False))
        return
    if not entries:
        typer.echo("no decisions")
        return
    table = Table("id", "when", "primary", "corrected to", "outcomes", "request", box=None)
    for entry in entries:
        outcomes = " ".join(
            f"{o['plugin']}:{'ok' if o['success'] else 'failed'}" for o in entry["outcomes"]
        )
        text = entry["text"] if len(entry["text"]) <= 60 else entry["text"][:59] + "…"
        table.add_row(
            escape(entry["id"]),
            entry["createdAt"],
            escape(_primary(entry)),
            escape(entry["correctedTo"] or ""),
            escape(outcomes),
            escape(text),
        )
    Console(width=160, highlight=False).print(table)


@decisions_app.command("show")
def show(
    request_id: Annotated[str, typer.Argument(metavar="ID", help="The request's id.")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """One decision as it was made (scores, fallbacks, plan), with what came after."""
    with _open(db) as store:
        stored = _decision(store, request_id)
        entry = _entry(store, stored)
    entry["decision"] = stored.decision
    if as_json:
        typer.echo(json.dumps(entry, ensure_ascii=False))
        return
    console = Console(highlight=False, soft_wrap=True)
    console.print(
        f"[bold]{escape(entry['id'])}[/bold] ({entry['createdAt']}): {escape(stored.text)}"
    )
    if stored.files:
        console.print("files: " + escape(", ".join(stored.files)))
    console.print(f"primary: {escape(_primary(entry))}")
    fallbacks = stored.decision.get("fallbackPlugins") or []
    if fallbacks:
        console.print("fallbacks: " + escape(", ".join(map(str, fallbacks))))
    for score in (stored.decision.get("scores") or [])[:5]:
        console.print(f"  {escape(str(score.get('plugin')))}: {score.get('score', 0):.1f}")
    if entry["correctedTo"]:
        console.print(f"corrected to: {escape(entry['correctedTo'])}")
    for outcome in entry["outcomes"]:
        verdict = "succeeded" if outcome["success"] else "failed"
        console.print(f"{escape(outcome['plugin'])} {verdict} ({outcome['at']})")


@decisions_app.command("correct")
def correct(
    request_id: Annotated[str, typer.Argument(metavar="ID", help="The misrouted request.")],
    plugin: Annotated[str, typer.Argument(metavar="PLUGIN", help="The plugin it should go to.")],
    db: DbOption = None,
    plugins: PluginsOption = Path("plugins"),
) -> None:
    """Record the plugin a request should have gone to; later similar requests lean to it."""
    _check_plugin(plugins, plugin)
    with _open(db) as store:
        stored = _decision(store, request_id)
        store.record_correction(stored.request(), plugin)
    was = stored.primary_plugin or "no plugin"
    typer.echo(f"{request_id}: {was} -> {plugin}")


@decisions_app.command("outcome")
def outcome(
    request_id: Annotated[str, typer.Argument(metavar="ID", help="The request.")],
    plugin: Annotated[str, typer.Argument(metavar="PLUGIN", help="The plugin that handled it.")],
    success: Annotated[
        bool | None,
        typer.Option(
            "--success/--failure", help="Whether it handled the request well.", show_default=False
        ),
    ] = None,
    db: DbOption = None,
    plugins: PluginsOption = Path("plugins"),
) -> None:
    """Record whether a plugin handled a request well; later similar requests lean towards
    (success) or away from (failure) it."""
    if success is None:
        raise fail("say --success or --failure")
    _check_plugin(plugins, plugin)
    with _open(db) as store:
        _decision(store, request_id)
        store.record_outcome(request_id, plugin, success)
    typer.echo(f"{request_id}: {plugin} {'succeeded' if success else 'failed'}")


@decisions_app.command("stats")
def stats(db: DbOption = None, as_json: JsonOption = False) -> None:
    """How often decisions were corrected (and to what), and each plugin's outcomes."""
    with _open(db) as store:
        total = store.count_decisions()
        confusions: Counter[tuple[str, str]] = Counter()
        picked = 0  # triaged requests a person picked the plugin for: not the router's error
        for correction in store.corrections():
            stored = store.get_decision(correction.request_id)
            if stored is None:
                continue  # its decision was pruned: the correction still teaches the router
            if stored.decision.get("executionStrategy") == "triage":
                picked += 1
                continue
            chosen = stored.primary_plugin or "-"
            if chosen != correction.plugin:
                confusions[(chosen, correction.plugin)] += 1
        results: dict[str, list[int]] = {}
        for found in store.outcomes():
            counts = results.setdefault(found.plugin, [0, 0])
            counts[0 if found.success else 1] += 1
    wrong = sum(confusions.values())
    share = wrong / total if total else 0.0
    confused = [
        {"routedTo": chosen, "shouldBe": right, "count": count}
        for (chosen, right), count in sorted(confusions.items(), key=lambda i: (-i[1], i[0]))
    ]
    handled = [
        {"plugin": name, "succeeded": ok, "failed": failed}
        for name, (ok, failed) in sorted(results.items())
    ]
    if as_json:
        report = {
            "decisions": total,
            "corrected": wrong,
            "correctedShare": round(share, 4),
            "confusions": confused,
            "triagePicked": picked,
            "outcomes": handled,
        }
        typer.echo(json.dumps(report))
        return
    typer.echo(f"{total} decisions, {wrong} corrected ({share:.1%})")
    if picked:
        typer.echo(f"  {picked} left to a person (triage) and picked")
    for item in confused:
        typer.echo(f"  {item['routedTo']} -> {item['shouldBe']}: {item['count']}")
    for item in handled:
        typer.echo(f"{item['plugin']}: {item['succeeded']} succeeded, {item['failed']} failed")


@decisions_app.command("prune")
def prune(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            help="Drop what is older than this, e.g. 90d, 12h, 2w.",
            show_default=False,
        ),
    ] = None,
    before: Annotated[
        str | None,
        typer.Option(
            "--before",
            metavar="TIME",
            help="Drop what is older than this ISO 8601 time (UTC unless it says).",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say how many would be dropped.")
    ] = False,
    db: DbOption = None,
) -> None:
    """Drop old decisions and outcomes (a decision stays while a newer outcome of it does;
    corrections are kept: they are what the router learns from)."""
    if (older_than is None) == (before is None):
        raise fail(
            "give --older-than DURATION or --before TIME"
            + (", not both" if older_than is not None else "")
        )
    if older_than is not None:
        try:
            cut = wall() - parse_duration(older_than)
        except ValueError as exc:
            raise fail(f"--older-than: {exc}") from None
    else:
        assert before is not None
        try:
            cut = parse_timestamp(before)
        except (ValueError, OverflowError, OSError):
            raise fail(f"--before: not an ISO 8601 time: {before!r}") from None
    with _open(db) as store:
        pruned = store.prune(before=cut, dry_run=dry_run)
    verb = "would prune" if dry_run else "pruned"
    typer.echo(f"{verb} {pruned.decisions} decisions and {pruned.outcomes} outcomes from {db}")


@decisions_app.command("export-corrections")
def export_corrections(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write them to this file (default: standard output)."),
    ] = None,
    db: DbOption = None,
) -> None:
    """Write every correction, with its whole request, as JSON Lines (oldest first)."""
    with _open(db) as store:
        corrections = store.corrections()
    errors = Console(stderr=True, highlight=False)
    if output is None or str(output) == "-":
        count = write_corrections(corrections, sys.stdout)
    else:
        if output.is_dir():
            raise fail(f"--output: {output} is a directory")
        partial = output.with_name(output.name + ".partial")
        try:
            with partial.open("w", encoding="utf-8") as out:
                count = write_corrections(corrections, out)
            partial.replace(output)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise fail(
                f"--output: cannot write {output}: {exc.strerror or exc}", EXIT_FAILURE
            ) from None
    errors.print(f"{count} corrections exported from {db}")


@decisions_app.command("import-corrections")
def import_corrections(
    file: Annotated[
        Path,
        typer.Argument(metavar="FILE", help="JSON Lines from export-corrections (- for stdin)."),
    ],
    db: DbOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would be imported.")
    ] = False,
    plugins: Annotated[
        Path | None,
        typer.Option(
            "--plugins",
            help="Say which corrections name a plugin not in this folder (they are kept).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Read corrections exported by export-corrections into the database (created if need
    be); of two corrections of one request the newer wins. Bad lines are named and skipped."""
    if db is None:
        raise fail(f"give --db FILE (or set ${DB_ENV}): the file `route --db` writes")
    lines = _lines(file)
    found: list[Correction] = []
    problems: list[CorrectionProblem] = []
    for entry in read_corrections(lines, str(file)):
        if isinstance(entry, Correction):
            found.append(entry)
        else:
            problems.append(entry)
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    for problem in problems:
        errors.print(f"[red]error:[/red] {escape(str(problem))}")
    if plugins is not None:
        known = {info.name for info in _catalog(plugins).plugins}
        missing = sorted({c.plugin for c in found} - known)
        if missing:
            errors.print(
                f"warning: {sum(c.plugin in missing for c in found)} corrections name plugins"
                f" not in {plugins}: {', '.join(missing)} (imported; the router uses them once"
                " those plugins are installed)"
            )
    store = open_store(db)
    try:
        with store:
            done = store.import_corrections(found, dry_run=dry_run)
    except RoutingStoreError as exc:
        raise fail(str(exc), EXIT_FAILURE) from None
    verb = "would import" if dry_run else "imported"
    summary = (
        f"{verb} {done.added + done.replaced} corrections into {db}"
        f" ({done.added} new, {done.replaced} replacing older ones);"
        f" {done.kept} already there or older than the database's own"
    )
    if problems:
        summary += f"; {len(problems)} bad lines skipped"
    typer.echo(summary)
    if problems:
        raise typer.Exit(EXIT_FAILURE)


def _lines(file: Path) -> list[str]:
    """The lines of ``file`` (``-``: standard input), or exit 2 naming why not."""
    try:
        data = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    except OSError as exc:
        raise fail(f"{file}: cannot read: {exc.strerror or exc}") from None
    if b"\x00" in data:
        raise fail(f"{file}: not a text file (a NUL byte)")
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise fail(f"{file}: not UTF-8 (byte {exc.start})") from None
