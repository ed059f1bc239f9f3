"""Dispatched tasks in SQLite: pending, running, completed or failed, with result or error.

A task is written before it is sent and updated as it moves, each write one durable
transaction (WAL, ``synchronous=FULL``), so a restarted orchestrator knows every task it
had not finished: `TaskStore.unfinished` lists them for the orchestrator to resume.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from jira_orchestrator._core.errors import JiraOrchestratorError

__all__ = ["TaskRecord", "TaskStatus", "TaskStore", "TaskStoreError"]

TaskStatus = Literal["pending", "running", "completed", "failed"]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
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
);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status);
"""


class TaskStoreError(JiraOrchestratorError):
    """The task database cannot be opened or written (corrupt, locked, unwritable)."""


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


class TaskStore:
    """Tasks of one orchestrator in one SQLite file (``":memory:"`` for a throwaway)."""

    def __init__(self, path: str | os.PathLike[str], *, clock: Any = time.time) -> None:
        self.path = str(path)
        self._clock = clock
        self._lock = threading.Lock()
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as error:
            raise TaskStoreError(f"{self.path}: cannot open the task database: {error}") from None

    def _write(self, sql: str, arguments: tuple[Any, ...]) -> None:
        with self._lock:
            try:
                self._db.execute(sql, arguments)
            except sqlite3.DatabaseError as error:
                raise TaskStoreError(f"{self.path}: cannot record the task: {error}") from None

    def create(self, task_id: str, request: dict[str, Any], command: str) -> None:
        """Record a new pending task."""
        now = self._clock()
        self._write(
            "INSERT INTO tasks (id, request, command, status, created, updated) "
            "VALUES (?, ?, ?, 'pending', ?, ?)",
            (task_id, json.dumps(request), command, now, now),
        )

    def running(self, task_id: str, plugin: str, attempts: list[dict[str, Any]]) -> None:
        """The task was sent to ``plugin``."""
        self._write(
            "UPDATE tasks SET status='running', plugin=?, attempts=?, updated=? WHERE id=?",
            (plugin, json.dumps(attempts), self._clock(), task_id),
        )

    def finish(
        self,
        task_id: str,
        *,
        status: Literal["completed", "failed"],
        plugin: str | None,
        attempts: list[dict[str, Any]],
        result: Any = None,
        error: str | None = None,
    ) -> None:
        """The task ended with a result or an error."""
        self._write(
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

    def counts(self) -> dict[str, int]:
        """How many tasks are in each status."""
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status")
            return dict(rows.fetchall())

    def _select(self, where: str, arguments: tuple[Any, ...]) -> list[TaskRecord]:
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT id, request, command, status, plugin, attempts, result, error, "
                    f"created, updated FROM tasks {where}",
                    arguments,
                ).fetchall()
            except sqlite3.DatabaseError as error:
                raise TaskStoreError(f"{self.path}: cannot read tasks: {error}") from None
        return [
            TaskRecord(
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
            for row in rows
        ]

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
