"""SQLite persistence of routing decisions, outcomes and corrections, for later analysis
and for learning.

One file (WAL mode), three tables: ``decisions`` (the decision JSON and the request's
text and files), ``outcomes`` (did the chosen plugin succeed) and ``corrections`` (the
plugin that should have been chosen). ``":memory:"`` keeps everything in memory.
Thread-safe: one connection behind a lock; several processes may share a file (a writer
waits up to ``timeout`` seconds for another's lock).

The file carries a format tag, as the project's other stores do: a file of another
program (or of another kind of store) is refused with `RoutingStoreError` and left
untouched; a file this project wrote before the tag existed is recognised by its tables
and tagged. Errors name the file and say what went wrong: locked by another process,
disk full, damaged.

Retention: `DecisionStore.prune` drops the decisions and outcomes older than a time;
``retention`` (seconds) does it when the store opens and then about once an hour while
decisions are saved. Corrections are kept: they are few, written by people, and what the
router learns from.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar, NamedTuple, TypeVar

from jira_orchestrator._core.clock import WallClock, wall
from jira_orchestrator._core.errors import JiraOrchestratorError
from jira_orchestrator._core.sqlite import SQLiteStore
from jira_orchestrator.routing.errors import RoutingStoreError
from jira_orchestrator.routing.request import RoutingRequest

__all__ = ["Correction", "DecisionStore", "Outcome", "Pruned", "StoredDecision"]

_T = TypeVar("_T")
_FORMAT = "jira-orchestrator-routing/1"
_META = "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID"
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS outcomes_request ON outcomes (request_id)",
    "CREATE INDEX IF NOT EXISTS decisions_created ON decisions (created_at)",
    "CREATE INDEX IF NOT EXISTS decisions_primary ON decisions (primary_plugin)",
)
_SCHEMA = (
    _META,
    """CREATE TABLE decisions (
        request_id TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        text TEXT NOT NULL,
        files TEXT NOT NULL,
        primary_plugin TEXT,
        decision TEXT NOT NULL,
        extra TEXT NOT NULL DEFAULT '{}'
    )""",
    """CREATE TABLE outcomes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        request_id TEXT NOT NULL,
        plugin TEXT NOT NULL,
        success INTEGER NOT NULL,
        created_at REAL NOT NULL
    )""",
    """CREATE TABLE corrections (
        request_id TEXT PRIMARY KEY,
        plugin TEXT NOT NULL,
        text TEXT NOT NULL,
        files TEXT NOT NULL,
        created_at REAL NOT NULL,
        extra TEXT NOT NULL DEFAULT '{}'
    )""",
    *_INDEXES,
)
# The columns of the files written before the format tag: the first release's, and the
# later ``extra`` (labels, components, issue type and key, requester) of two of them.
_UNTAGGED = {
    "decisions": {"request_id", "created_at", "text", "files", "primary_plugin", "decision"},
    "outcomes": {"id", "request_id", "plugin", "success", "created_at"},
    "corrections": {"request_id", "plugin", "text", "files", "created_at"},
}
_EXTRA_TABLES = ("decisions", "corrections")
_MAX_ROWS = 2**62
# Below this much free space, an I/O error writing the file is taken for a full disk
# (SQLite reports a failed write of its WAL index as "disk I/O error").
_FULL_BELOW = 1024 * 1024


def _extra(request: RoutingRequest) -> str:
    fields = {
        "labels": list(request.labels),
        "components": list(request.components),
        "issueType": request.issue_type,
        "issueKey": request.issue_key,
        "requester": request.requester,
    }
    return json.dumps({k: v for k, v in fields.items() if v}, separators=(",", ":"))


def _request(request_id: str, text: str, files: tuple[str, ...], extra: str) -> RoutingRequest:
    found = json.loads(extra or "{}")
    return RoutingRequest(
        text=text,
        files=files,
        labels=tuple(found.get("labels", ())),
        components=tuple(found.get("components", ())),
        issue_type=found.get("issueType"),
        issue_key=found.get("issueKey"),
        requester=found.get("requester"),
        request_id=request_id,
    )


# Each record's columns, in the order its reader below takes them.
_DECISION_COLUMNS = (
    "d.request_id, d.text, d.files, d.primary_plugin, d.decision, d.created_at, d.extra"
)
_OUTCOME_COLUMNS = "o.request_id, o.plugin, o.success, o.created_at"
_CORRECTION_COLUMNS = "request_id, plugin, text, files, created_at, extra"


def _files(text: str) -> tuple[str, ...]:
    files = json.loads(text)
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ValueError(f"files is not a list of strings: {text[:60]!r}")
    return tuple(files)


def _stored(row: Sequence[Any]) -> StoredDecision:
    rid, text, files, primary, decision, created, extra = row
    found = json.loads(decision)
    if not isinstance(found, dict):
        raise ValueError(f"decision is not a JSON object: {decision[:60]!r}")
    return StoredDecision(
        str(rid), str(text), _files(files), primary, found, float(created), str(extra)
    )


def _outcome(row: Sequence[Any]) -> Outcome:
    rid, plugin, success, created = row
    return Outcome(str(rid), str(plugin), bool(success), float(created))


def _correction(row: Sequence[Any]) -> Correction:
    rid, plugin, text, files, created, extra = row
    return Correction(str(rid), str(plugin), str(text), _files(files), float(created), str(extra))


@dataclass(frozen=True, slots=True)
class StoredDecision:
    """A decision as stored: its request and the decision's wire form."""

    request_id: str
    text: str
    files: tuple[str, ...]
    primary_plugin: str | None
    decision: dict[str, Any]
    created_at: float
    extra: str = "{}"
    """The request's labels, components, issue type and key, requester (JSON)."""

    def request(self) -> RoutingRequest:
        """The request as it was routed."""
        return _request(self.request_id, self.text, self.files, self.extra)


@dataclass(frozen=True, slots=True)
class Outcome:
    """Whether ``plugin`` handled request ``request_id`` successfully."""

    request_id: str
    plugin: str
    success: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class Correction:
    """The plugin that should have handled a request, with the request itself."""

    request_id: str
    plugin: str
    text: str
    files: tuple[str, ...]
    created_at: float
    extra: str = "{}"
    """The request's labels, components, issue type and key, requester (JSON)."""

    def request(self) -> RoutingRequest:
        """The request as it was routed."""
        return _request(self.request_id, self.text, self.files, self.extra)


def correction_from_request(request: RoutingRequest, plugin: str, created_at: float) -> Correction:
    """The `Correction` of ``request`` to ``plugin`` made at ``created_at`` (seconds)."""
    return Correction(
        request.request_id,
        plugin,
        request.text,
        request.files,
        created_at,
        _extra(request),
    )


class Imported(NamedTuple):
    """What `DecisionStore.import_corrections` did (or would do)."""

    added: int
    """Corrections of requests the store had none for."""
    replaced: int
    """Older corrections of the same request, replaced by the imported ones."""
    kept: int
    """Imported corrections not stored: the store's own is as new or newer."""


class Pruned(NamedTuple):
    """What `DecisionStore.prune` dropped (or would drop)."""

    decisions: int
    outcomes: int


class DecisionStore(SQLiteStore):
    """Decisions, outcomes and corrections in one SQLite file.

    ``timeout`` (seconds) is how long to wait for another process's lock; ``retention``
    (seconds, or a `timedelta`) how long decisions and outcomes are kept (None: for
    ever); ``clock`` stamps them. Raises `RoutingStoreError` naming the file when it
    cannot be opened, read or written.
    """

    KIND = "routing store"
    FORMAT = _FORMAT
    SCHEMA = _SCHEMA
    INDEXES = _INDEXES
    TABLES = frozenset(_UNTAGGED)
    ERROR = RoutingStoreError
    CORRUPT = RoutingStoreError
    # Decisions are for analysis and learning: a commit need not wait for the disk (WAL
    # keeps the file consistent; a power cut may lose the last few).
    PRAGMAS = ("synchronous=NORMAL",)
    PRUNE_EVERY: ClassVar[float] = 3600.0
    """With a ``retention``, how often (seconds) saving a decision prunes the old ones."""

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        *,
        timeout: float = 5.0,
        retention: float | timedelta | None = None,
        clock: WallClock = wall,
    ) -> None:
        if isinstance(retention, timedelta):
            retention = retention.total_seconds()
        if retention is not None and not retention > 0:
            raise ValueError(f"retention must be a positive number of seconds, got {retention}")
        self.timeout = timeout
        self.retention = retention
        self.clock = clock
        super().__init__(path, timeout=timeout)
        self._pruned_at = clock()
        if retention is not None:
            try:
                self.prune(before=self._pruned_at - retention)
            except BaseException:
                self.close()
                raise

    def _open(self) -> None:
        self._tag_untagged()
        super()._open()

    def _tag_untagged(self) -> None:
        """Tag a file of this store written before the format tag (recognised by its
        tables and their columns, and nothing else), adding the columns it lacks."""
        db = self._conn()
        try:
            names = self._table_names(db)
            if "meta" in names or names != set(_UNTAGGED):
                return  # new, tagged, or not ours: the base class decides
            db.execute("BEGIN IMMEDIATE")
            if self._table_names(db) != set(_UNTAGGED):
                db.execute("ROLLBACK")
                return
            columns = {
                table: {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                for table in _UNTAGGED
            }
            if not all(
                first <= columns[table] <= first | {"extra"} for table, first in _UNTAGGED.items()
            ):
                db.execute("ROLLBACK")
                return
            for table in _EXTRA_TABLES:
                if "extra" not in columns[table]:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN extra TEXT NOT NULL DEFAULT '{{}}'")
            for statement in (_META, *_INDEXES):
                db.execute(statement)
            db.execute("INSERT INTO meta VALUES ('format', ?)", (self.FORMAT,))
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise self._error(exc, "opening") from exc

    @staticmethod
    def _table_names(db: sqlite3.Connection) -> set[str]:
        rows = db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
        return {row[0] for row in rows}

    def _error(self, exc: sqlite3.Error, doing: str) -> JiraOrchestratorError:
        code = getattr(exc, "sqlite_errorname", "") or ""
        if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return self.ERROR(
                f"{self.KIND} {self.path} is locked by another process"
                f" (waited {self.timeout:g} s): {doing} failed"
            )
        if code.startswith("SQLITE_FULL") or (code.startswith("SQLITE_IOERR") and self._full()):
            return self.ERROR(f"{self.KIND} {self.path}: disk full: {doing} failed ({exc})")
        return super()._error(exc, doing)

    def _full(self) -> bool:
        if self.in_memory:
            return False
        try:
            space = os.statvfs(self.path.parent)
        except OSError:
            return False
        return space.f_bavail * space.f_frsize < _FULL_BELOW

    def _rows(
        self, sql: str, arguments: Sequence[Any], reader: Callable[[Sequence[Any]], _T]
    ) -> list[_T]:
        """The rows of a query, each through ``reader``; a row that cannot be read (written
        by hand, damaged) is an error naming its request."""
        found = []
        for row in self._read(sql, arguments):
            try:
                found.append(reader(row))
            except (ValueError, TypeError, AttributeError) as exc:
                raise self.ERROR(
                    f"{self.KIND} {self.path}: damaged row for request {row[0]!r}: {exc}"
                ) from None
        return found

    def save_decision(self, request: RoutingRequest, decision: dict[str, Any]) -> None:
        """Store (or replace) the decision made for ``request``."""
        now = self.clock()
        with self._write("saving a decision") as db:
            db.execute(
                "INSERT OR REPLACE INTO decisions"
                " (request_id, created_at, text, files, primary_plugin, decision, extra)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    request.request_id,
                    now,
                    request.text,
                    json.dumps(list(request.files)),
                    decision.get("primaryPlugin"),
                    json.dumps(decision, separators=(",", ":")),
                    _extra(request),
                ),
            )
        if self.retention is not None and now - self._pruned_at >= min(
            self.PRUNE_EVERY, self.retention
        ):
            self._pruned_at = now
            self.prune(before=now - self.retention)

    def get_decision(self, request_id: str) -> StoredDecision | None:
        """The stored decision for ``request_id``, or None."""
        rows = self._rows(
            f"SELECT {_DECISION_COLUMNS} FROM decisions d WHERE request_id = ?",
            (request_id,),
            _stored,
        )
        return rows[0] if rows else None

    def recent_decisions(self, limit: int = 20) -> list[StoredDecision]:
        """The ``limit`` latest decisions, newest first."""
        return self._rows(
            f"SELECT {_DECISION_COLUMNS} FROM decisions d"
            " ORDER BY d.created_at DESC, d.request_id LIMIT ?",
            (max(0, min(limit, _MAX_ROWS)),),
            _stored,
        )

    def count_decisions(self, *, plugin: str | None = None) -> int:
        """How many decisions are stored (whose primary plugin is ``plugin``)."""
        if plugin is None:
            return int(self._read("SELECT COUNT(*) FROM decisions")[0][0])
        sql = "SELECT COUNT(*) FROM decisions WHERE primary_plugin = ?"
        return int(self._read(sql, (plugin,))[0][0])

    def page_decisions(
        self, *, plugin: str | None = None, below: int | None = None, limit: int = 50
    ) -> tuple[list[StoredDecision], int | None]:
        """Up to ``limit`` decisions, latest saved first (whose primary plugin is
        ``plugin``), and the cursor of the next page (None on the last): pass it as
        ``below``. Keyset paging on indexed columns."""
        clauses: list[str] = []
        args: list[Any] = []
        if plugin is not None:
            clauses.append("d.primary_plugin = ?")
            args.append(plugin)
        if below is not None:
            clauses.append("d.rowid < ?")
            args.append(max(0, min(int(below), _MAX_ROWS)))
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        limit = max(1, min(int(limit), 10_000))
        rows = self._rows(
            f"SELECT {_DECISION_COLUMNS}, d.rowid FROM decisions d{where}"
            " ORDER BY d.rowid DESC LIMIT ?",
            (*args, limit + 1),
            lambda row: (_stored(row[:7]), int(row[7])),
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return [stored for stored, _ in rows], (rows[-1][1] if more else None)

    def record_outcome(self, request_id: str, plugin: str, success: bool) -> None:
        """Append an outcome."""
        with self._write("recording an outcome") as db:
            db.execute(
                "INSERT INTO outcomes (request_id, plugin, success, created_at)"
                " VALUES (?, ?, ?, ?)",
                (request_id, plugin, int(success), self.clock()),
            )

    def outcomes(self) -> list[Outcome]:
        """Every outcome, oldest first."""
        return self._rows(f"SELECT {_OUTCOME_COLUMNS} FROM outcomes o ORDER BY o.id", (), _outcome)

    def outcomes_of(self, request_id: str) -> list[Outcome]:
        """The outcomes of one request, oldest first."""
        return self._rows(
            f"SELECT {_OUTCOME_COLUMNS} FROM outcomes o WHERE o.request_id = ? ORDER BY o.id",
            (request_id,),
            _outcome,
        )

    def correction_of(self, request_id: str) -> Correction | None:
        """The correction of one request, or None."""
        rows = self._rows(
            f"SELECT {_CORRECTION_COLUMNS} FROM corrections WHERE request_id = ?",
            (request_id,),
            _correction,
        )
        return rows[0] if rows else None

    def record_correction(self, request: RoutingRequest, plugin: str) -> None:
        """Store (or replace) the right plugin for ``request``."""
        with self._write("recording a correction") as db:
            db.execute(
                "INSERT OR REPLACE INTO corrections"
                " (request_id, plugin, text, files, created_at, extra) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    request.request_id,
                    plugin,
                    request.text,
                    json.dumps(list(request.files)),
                    self.clock(),
                    _extra(request),
                ),
            )

    def import_corrections(
        self, corrections: Iterable[Correction], *, dry_run: bool = False
    ) -> Imported:
        """Store ``corrections`` (from `routing.corrections.read_corrections`, say) with
        their own times, in one transaction. Of two corrections of the same request the
        newer wins, so importing a file twice, or a file exported from here, changes
        nothing. ``dry_run``: only count."""
        added = replaced = kept = 0
        with self._write("importing corrections") as db:
            for correction in corrections:
                row = db.execute(
                    "SELECT created_at FROM corrections WHERE request_id = ?",
                    (correction.request_id,),
                ).fetchone()
                if row is not None and float(row[0]) >= correction.created_at:
                    kept += 1
                    continue
                if row is None:
                    added += 1
                else:
                    replaced += 1
                if dry_run:
                    continue
                db.execute(
                    "INSERT OR REPLACE INTO corrections"
                    " (request_id, plugin, text, files, created_at, extra)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        correction.request_id,
                        correction.plugin,
                        correction.text,
                        json.dumps(list(correction.files)),
                        correction.created_at,
                        correction.extra,
                    ),
                )
        return Imported(added, replaced, kept)

    def corrections(self) -> list[Correction]:
        """Every correction, oldest first."""
        return self._rows(
            f"SELECT {_CORRECTION_COLUMNS} FROM corrections ORDER BY created_at, request_id",
            (),
            _correction,
        )

    def outcome_requests(self) -> list[tuple[Outcome, StoredDecision]]:
        """Every outcome with the decision it is about (for learning:
        ``stored.request()`` is the request as routed)."""
        return self._rows(
            f"SELECT {_DECISION_COLUMNS}, {_OUTCOME_COLUMNS}"
            " FROM outcomes o JOIN decisions d ON d.request_id = o.request_id ORDER BY o.id",
            (),
            lambda row: (_outcome(row[7:]), _stored(row[:7])),
        )

    def prune(self, *, before: float, dry_run: bool = False) -> Pruned:
        """Drop the outcomes recorded and the decisions made before ``before`` (seconds
        since the epoch), and say how many; ``dry_run`` only counts them.

        A decision with a later outcome stays while that outcome does (together they are
        an example the router learns from). Corrections are kept.
        """
        outcomes_sql = "FROM outcomes WHERE created_at < ?"
        decisions_sql = (
            "FROM decisions WHERE created_at < ? AND NOT EXISTS (SELECT 1 FROM outcomes o"
            " WHERE o.request_id = decisions.request_id AND o.created_at >= ?)"
        )
        cut = float(before)
        if dry_run:
            return Pruned(
                int(self._read(f"SELECT COUNT(*) {decisions_sql}", (cut, cut))[0][0]),
                int(self._read(f"SELECT COUNT(*) {outcomes_sql}", (cut,))[0][0]),
            )
        with self._write("pruning") as db:
            outcomes = db.execute(f"DELETE {outcomes_sql}", (cut,)).rowcount
            decisions = db.execute(f"DELETE {decisions_sql}", (cut, cut)).rowcount
        return Pruned(decisions, outcomes)
