"""Saga progress in SQLite, so that a saga interrupted by a crash is compensated on restart.

Every transition (run started, step started, step completed with its result, compensation
started, compensated or failed) is one transaction with WAL and ``synchronous=FULL``: it
is on disk before the saga goes on. See `Saga.recover` for what a restart does with it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from typing import Any, Literal

from jira_orchestrator._core.clock import WallClock, wall
from jira_orchestrator._core.sqlite import SQLiteStore, matching
from jira_orchestrator.orchestrator.errors import SagaStoreError

__all__ = ["SagaRun", "SagaRunStatus", "SagaStepRecord", "SagaStepStatus", "SagaStore"]

SagaRunStatus = Literal[
    "running", "completed", "compensating", "compensated", "compensation-failed"
]
SagaStepStatus = Literal[
    "started",
    "completed",
    "skipped",
    "failed",
    "interrupted",
    "compensating",
    "compensated",
    "compensation-failed",
]

_KEEP: Any = object()
_FORMAT = "jira-orchestrator-sagas/1"
_SCHEMA = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    """CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        saga TEXT NOT NULL,
        status TEXT NOT NULL,
        input TEXT,
        error TEXT,
        started_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )""",
    """CREATE TABLE steps (
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        step_id TEXT NOT NULL,
        status TEXT NOT NULL,
        result TEXT,
        error TEXT,
        updated_at REAL NOT NULL,
        PRIMARY KEY (run_id, position)
    )""",
    "CREATE INDEX runs_saga_status ON runs (saga, status)",
)
_INDEXES = ("CREATE INDEX IF NOT EXISTS runs_status ON runs (status)",)


@dataclass(frozen=True)
class SagaStepRecord:
    """What the store knows of one step of a run; ``result`` is its JSON-decoded result."""

    position: int
    step_id: str
    status: SagaStepStatus
    result: Any
    error: str | None


@dataclass(frozen=True)
class SagaRun:
    """One run of a saga, with its steps in order."""

    run_id: str
    saga: str
    status: SagaRunStatus
    input: Any
    error: str | None
    started_at: float
    updated_at: float
    steps: tuple[SagaStepRecord, ...]


def _json(value: Any) -> str:
    # Results should be JSON; anything else is kept as its repr so progress is never lost.
    return json.dumps(value, default=repr, ensure_ascii=False)


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class SagaStore(SQLiteStore):
    """The SQLite file of saga runs. Thread-safe.

    Raises `SagaStoreError` when the file is not SQLite, is damaged, is another kind of
    database, or cannot be written.
    """

    KIND = "saga store"
    FORMAT = _FORMAT
    SCHEMA = _SCHEMA
    INDEXES = _INDEXES
    TABLES = frozenset({"runs", "steps"})
    ERROR = SagaStoreError
    CORRUPT = SagaStoreError
    PRAGMAS = ("foreign_keys=ON",)

    def __init__(
        self, path: str | os.PathLike[str], *, timeout: float = 5.0, clock: WallClock = wall
    ) -> None:
        self._clock = clock
        super().__init__(path, timeout=timeout)

    def start_run(self, run_id: str, saga: str, value: Any) -> None:
        """Record a new run; raises `SagaStoreError` if ``run_id`` is taken."""
        now = self._clock()
        try:
            with self._write() as db:
                db.execute(
                    "INSERT INTO runs VALUES (?, ?, 'running', ?, NULL, ?, ?)",
                    (run_id, saga, _json(value), now, now),
                )
        except SagaStoreError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise SagaStoreError(f"saga run {run_id!r} exists already") from None
            raise

    def set_run(self, run_id: str, status: SagaRunStatus, error: str | None = None) -> None:
        """Move a run to ``status``."""
        with self._write() as db:
            db.execute(
                "UPDATE runs SET status = ?, error = coalesce(?, error), updated_at = ? "
                "WHERE run_id = ?",
                (status, error, self._clock(), run_id),
            )

    def step_started(self, run_id: str, position: int, step_id: str) -> None:
        """Record that the step at ``position`` is about to run."""
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO steps VALUES (?, ?, ?, 'started', NULL, NULL, ?)",
                (run_id, position, step_id, self._clock()),
            )

    def set_step(
        self,
        run_id: str,
        position: int,
        status: SagaStepStatus,
        *,
        result: Any = _KEEP,
        error: BaseException | str | None = None,
    ) -> None:
        """Move a step to ``status``, with its result (``completed``) or error."""
        text = error if isinstance(error, str | None) else _error_text(error)
        with self._write() as db:
            if result is _KEEP:
                db.execute(
                    "UPDATE steps SET status = ?, error = coalesce(?, error), updated_at = ? "
                    "WHERE run_id = ? AND position = ?",
                    (status, text, self._clock(), run_id, position),
                )
            else:
                db.execute(
                    "UPDATE steps SET status = ?, result = ?, error = coalesce(?, error), "
                    "updated_at = ? WHERE run_id = ? AND position = ?",
                    (status, _json(result), text, self._clock(), run_id, position),
                )

    def get(self, run_id: str) -> SagaRun | None:
        """The run with this id, or None."""
        runs = self._runs("WHERE run_id = ?", (run_id,))
        return runs[0] if runs else None

    def runs(self, saga: str | None = None, *, unfinished: bool = False) -> list[SagaRun]:
        """Runs oldest first, of one saga or all; ``unfinished``: running or compensating."""
        clauses, args = [], []
        if saga is not None:
            clauses.append("saga = ?")
            args.append(saga)
        if unfinished:
            clauses.append("status IN ('running', 'compensating')")
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        return self._runs(where, tuple(args))

    def page(
        self,
        *,
        saga: str | None = None,
        status: str | None = None,
        below: int | None = None,
        limit: int = 50,
    ) -> tuple[list[SagaRun], int | None]:
        """Up to ``limit`` runs, newest first, by saga and status, and the cursor of the next
        page (None on the last): pass it as ``below``. Keyset paging on indexed columns."""
        clauses, args = self._filter(saga, status)
        if below is not None:
            clauses.append("rowid < ?")
            args.append(max(0, min(int(below), 2**63 - 1)))
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        limit = max(1, min(int(limit), 10_000))
        cursors = [
            row[0]
            for row in self._read(
                f"SELECT rowid FROM runs{where} ORDER BY rowid DESC LIMIT ?", (*args, limit + 1)
            )
        ]
        more = len(cursors) > limit
        cursors = cursors[:limit]
        if not cursors:
            return [], None
        marks = ", ".join("?" * len(cursors))
        runs = self._runs(f"WHERE rowid IN ({marks})", tuple(cursors), order="rowid DESC")
        return runs, (cursors[-1] if more else None)

    def count(self, *, saga: str | None = None, status: str | None = None) -> int:
        """How many runs match."""
        clauses, args = self._filter(saga, status)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        return int(self._read(f"SELECT COUNT(*) FROM runs{where}", args)[0][0])

    @staticmethod
    def _filter(saga: str | None, status: str | None) -> tuple[list[str], list[Any]]:
        return matching(saga=saga, status=status)

    def _runs(
        self, where: str, args: tuple[Any, ...], *, order: str = "started_at, rowid"
    ) -> list[SagaRun]:
        with self._lock:
            db = self._conn()
            try:
                rows = db.execute(
                    "SELECT run_id, saga, status, input, error, started_at, updated_at "
                    f"FROM runs {where} ORDER BY {order}",
                    args,
                ).fetchall()
                found = []
                for run_id, saga, status, value, error, started, updated in rows:
                    steps = db.execute(
                        "SELECT position, step_id, status, result, error FROM steps "
                        "WHERE run_id = ? ORDER BY position",
                        (run_id,),
                    ).fetchall()
                    found.append(
                        SagaRun(
                            run_id,
                            saga,
                            status,
                            _load(value),
                            error,
                            started,
                            updated,
                            tuple(
                                SagaStepRecord(pos, sid, st, _load(res), err)
                                for pos, sid, st, res, err in steps
                            ),
                        )
                    )
            except sqlite3.Error as exc:
                raise SagaStoreError(f"saga store {self.path}: reading failed: {exc}") from exc
        return found


def _load(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
