"""Dispatched tasks in SQLite: pending, running, completed or failed, with result or error.

A task is written before it is sent and updated as it moves, each write one durable
transaction, so a restarted orchestrator knows every task it had not finished:
`TaskStore.unfinished` lists them for the orchestrator to resume. `TaskStore.prune`
deletes finished tasks older than a retention age (``jira-orchestrator tasks prune``).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any, Literal

from jira_orchestrator._core.clock import WallClock
from jira_orchestrator._core.errors import JiraOrchestratorError
from jira_orchestrator._core.sqlite import SQLiteStore, matching

__all__ = [
    "DEFAULT_TASK_RETENTION",
    "TASKS_ENV",
    "TASK_RETENTION_ENV",
    "TaskRecord",
    "TaskStatus",
    "TaskStore",
    "TaskStoreError",
]

TASKS_ENV = "JIRA_ORCHESTRATOR_TASKS"
"""The task database ``jira-orchestrator tasks`` reads when ``--db`` is not given."""

TASK_RETENTION_ENV = "JIRA_ORCHESTRATOR_TASK_RETENTION"
"""How long finished tasks are kept (``30d``, ``12h``): ``tasks prune``'s default age."""

DEFAULT_TASK_RETENTION = "30d"

TaskStatus = Literal["pending", "running", "completed", "failed", "triaged"]
_FORMAT = "jira-orchestrator-tasks/1"
_SCHEMA = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    """CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        request TEXT NOT NULL,
        command TEXT NOT NULL,
        status TEXT NOT NULL,
        plugin TEXT,
        attempts TEXT NOT NULL DEFAULT '[]',
        result TEXT,
        error TEXT,
        created REAL NOT NULL,
        updated REAL NOT NULL
    )""",
    "CREATE INDEX tasks_status ON tasks (status)",
)
_INDEXES = ("CREATE INDEX IF NOT EXISTS tasks_plugin ON tasks (plugin)",)
_COLUMNS = "id, request, command, status, plugin, attempts, result, error, created, updated"


class TaskStoreError(JiraOrchestratorError):
    """The task database cannot be opened or written (corrupt, foreign, locked)."""


@dataclass(frozen=True)
class TaskRecord:
    """One task as stored."""

    id: str
    request: dict[str, Any]
    command: str
    status: TaskStatus
    plugin: str | None
    attempts: list[dict[str, Any]]
    result: Any
    error: str | None
    created: float
    updated: float


class TaskStore(SQLiteStore):
    """Tasks of one orchestrator in one SQLite file (``":memory:"`` for a throwaway)."""

    KIND = "task store"
    FORMAT = _FORMAT
    SCHEMA = _SCHEMA
    INDEXES = _INDEXES
    TABLES = frozenset({"tasks"})
    ERROR = TaskStoreError
    CORRUPT = TaskStoreError

    def __init__(
        self, path: str | os.PathLike[str], *, timeout: float = 5.0, clock: WallClock = time.time
    ) -> None:
        self._clock = clock
        super().__init__(path, timeout=timeout)

    def create(self, task_id: str, request: dict[str, Any], command: str) -> None:
        """Record a new pending task."""
        now = self._clock()
        with self._write("recording a task") as db:
            db.execute(
                "INSERT INTO tasks (id, request, command, status, created, updated) "
                "VALUES (?, ?, ?, 'pending', ?, ?)",
                (task_id, json.dumps(request), command, now, now),
            )

    def running(self, task_id: str, plugin: str, attempts: list[dict[str, Any]]) -> None:
        """The task was sent to ``plugin``."""
        with self._write("recording a task") as db:
            db.execute(
                "UPDATE tasks SET status='running', plugin=?, attempts=?, updated=? WHERE id=?",
                (plugin, json.dumps(attempts), self._clock(), task_id),
            )

    def finish(
        self,
        task_id: str,
        *,
        status: Literal["completed", "failed", "triaged"],
        plugin: str | None,
        attempts: list[dict[str, Any]],
        result: Any = None,
        error: str | None = None,
    ) -> None:
        """The task ended with a result or an error."""
        with self._write("recording a task") as db:
            db.execute(
                "UPDATE tasks SET status=?, plugin=?, attempts=?, result=?, error=?, updated=? "
                "WHERE id=?",
                (
                    status,
                    plugin,
                    json.dumps(attempts),
                    json.dumps(result),
                    error,
                    self._clock(),
                    task_id,
                ),
            )

    def get(self, task_id: str) -> TaskRecord | None:
        """One task, or None."""
        rows = self._select("WHERE id=?", (task_id,))
        return rows[0] if rows else None

    def unfinished(self) -> list[TaskRecord]:
        """Tasks left pending or running (by a crash), oldest first."""
        return self._select("WHERE status IN ('pending', 'running') ORDER BY created", ())

    def all(self, *, limit: int = 1000) -> list[TaskRecord]:
        """The most recent tasks first."""
        return self._select("ORDER BY created DESC LIMIT ?", (limit,))

    def prune(self, before: float) -> int:
        """Delete the completed, failed and triaged tasks last updated before ``before``
        (seconds since the epoch); pending and running ones are kept whatever their age.
        Returns how many were deleted."""
        with self._write("pruning tasks") as db:
            return int(
                db.execute(
                    "DELETE FROM tasks WHERE status IN ('completed', 'failed', 'triaged')"
                    " AND updated < ?",
                    (float(before),),
                ).rowcount
            )

    def prunable(self, before: float) -> int:
        """How many tasks `prune` would delete."""
        rows = self._read(
            "SELECT COUNT(*) FROM tasks WHERE status IN ('completed', 'failed', 'triaged')"
            " AND updated < ?",
            (float(before),),
        )
        return int(rows[0][0])

    def counts(self) -> dict[str, int]:
        """How many tasks are in each status."""
        return dict(self._read("SELECT status, COUNT(*) FROM tasks GROUP BY status"))

    def _filter(self, status: str | None, plugin: str | None) -> tuple[list[str], list[Any]]:
        return matching(status=status, plugin=plugin)

    def page(
        self,
        *,
        status: str | None = None,
        plugin: str | None = None,
        below: int | None = None,
        limit: int = 50,
    ) -> tuple[list[TaskRecord], int | None]:
        """Up to ``limit`` tasks, newest first, by status and plugin, and the cursor of the
        next page (None on the last): pass it as ``below``. Keyset paging on indexed columns."""
        clauses, args = self._filter(status, plugin)
        if below is not None:
            clauses.append("rowid < ?")
            args.append(max(0, min(int(below), 2**63 - 1)))
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        limit = max(1, min(int(limit), 10_000))
        rows = self._read(
            f"SELECT rowid, {_COLUMNS} FROM tasks{where} ORDER BY rowid DESC LIMIT ?",
            (*args, limit + 1),
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return [_record(row[1:]) for row in rows], (rows[-1][0] if more else None)

    def count(self, *, status: str | None = None, plugin: str | None = None) -> int:
        """How many tasks match."""
        clauses, args = self._filter(status, plugin)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        return int(self._read(f"SELECT COUNT(*) FROM tasks{where}", args)[0][0])

    def _select(self, where: str, arguments: tuple[Any, ...]) -> list[TaskRecord]:
        return [
            _record(row) for row in self._read(f"SELECT {_COLUMNS} FROM tasks {where}", arguments)
        ]


def _record(row: tuple[Any, ...]) -> TaskRecord:
    return TaskRecord(
        id=row[0],
        request=json.loads(row[1]),
        command=row[2],
        status=row[3],
        plugin=row[4],
        attempts=json.loads(row[5]),
        result=None if row[6] is None else json.loads(row[6]),
        error=row[7],
        created=row[8],
        updated=row[9],
    )
