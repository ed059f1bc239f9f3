"""SQLite persistence of routing decisions, outcomes and corrections, for later analysis
and for learning.

One file (WAL mode), three tables: ``decisions`` (the decision JSON and the request's
text and files), ``outcomes`` (did the chosen plugin succeed) and ``corrections`` (the
plugin that should have been chosen). ``":memory:"`` keeps everything in memory.
Thread-safe: one connection behind a lock.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jira_orchestrator.routing.errors import RoutingError
from jira_orchestrator.routing.request import RoutingRequest

__all__ = ["Correction", "DecisionStore", "Outcome", "StoredDecision"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    request_id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    text TEXT NOT NULL,
    files TEXT NOT NULL,
    primary_plugin TEXT,
    decision TEXT NOT NULL,
    extra TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS outcomes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    plugin TEXT NOT NULL,
    success INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS corrections (
    request_id TEXT PRIMARY KEY,
    plugin TEXT NOT NULL,
    text TEXT NOT NULL,
    files TEXT NOT NULL,
    created_at REAL NOT NULL,
    extra TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS outcomes_request ON outcomes (request_id);
"""
# The rest of a request besides its text and files (``extra``: labels, components, issue
# type and key, requester), added after the first release: older files gain the column.
_EXTRA_TABLES = ("decisions", "corrections")


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


def _stored(row: tuple[Any, ...]) -> StoredDecision:
    rid, text, files, primary, decision, created, extra = row
    return StoredDecision(
        rid, text, tuple(json.loads(files)), primary, json.loads(decision), created, extra
    )


def _outcome(row: tuple[Any, ...]) -> Outcome:
    rid, plugin, success, created = row
    return Outcome(rid, plugin, bool(success), created)


def _correction(row: tuple[Any, ...]) -> Correction:
    rid, plugin, text, files, created, extra = row
    return Correction(rid, plugin, text, tuple(json.loads(files)), created, extra)


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


class DecisionStore:
    """Decisions, outcomes and corrections in one SQLite file."""

    def __init__(self, path: str | os.PathLike[str] = ":memory:") -> None:
        self.path = str(path)
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            for table in _EXTRA_TABLES:
                columns = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
                if "extra" not in columns:
                    self._db.execute(
                        f"ALTER TABLE {table} ADD COLUMN extra TEXT NOT NULL DEFAULT '{{}}'"
                    )
        except (sqlite3.Error, OSError) as exc:
            raise RoutingError(f"routing store {self.path}: cannot open: {exc}") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the file; later calls raise."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> DecisionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise RoutingError(f"routing store {self.path}: {exc}") from None

    def save_decision(self, request: RoutingRequest, decision: dict[str, Any]) -> None:
        """Store (or replace) the decision made for ``request``."""
        self._execute(
            "INSERT OR REPLACE INTO decisions"
            " (request_id, created_at, text, files, primary_plugin, decision, extra)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                request.request_id,
                time.time(),
                request.text,
                json.dumps(list(request.files)),
                decision.get("primaryPlugin"),
                json.dumps(decision, separators=(",", ":")),
                _extra(request),
            ),
        )

    def get_decision(self, request_id: str) -> StoredDecision | None:
        """The stored decision for ``request_id``, or None."""
        rows = self._execute(
            f"SELECT {_DECISION_COLUMNS} FROM decisions d WHERE request_id = ?", (request_id,)
        )
        return _stored(rows[0]) if rows else None

    def recent_decisions(self, limit: int = 20) -> list[StoredDecision]:
        """The ``limit`` latest decisions, newest first."""
        rows = self._execute(
            f"SELECT {_DECISION_COLUMNS} FROM decisions d"
            " ORDER BY d.created_at DESC, d.request_id LIMIT ?",
            (max(0, limit),),
        )
        return [_stored(row) for row in rows]

    def count_decisions(self) -> int:
        """How many decisions are stored."""
        return int(self._execute("SELECT COUNT(*) FROM decisions")[0][0])

    def record_outcome(self, request_id: str, plugin: str, success: bool) -> None:
        """Append an outcome."""
        self._execute(
            "INSERT INTO outcomes (request_id, plugin, success, created_at) VALUES (?, ?, ?, ?)",
            (request_id, plugin, int(success), time.time()),
        )

    def outcomes(self) -> list[Outcome]:
        """Every outcome, oldest first."""
        rows = self._execute(f"SELECT {_OUTCOME_COLUMNS} FROM outcomes o ORDER BY o.id")
        return [_outcome(row) for row in rows]

    def outcomes_of(self, request_id: str) -> list[Outcome]:
        """The outcomes of one request, oldest first."""
        rows = self._execute(
            f"SELECT {_OUTCOME_COLUMNS} FROM outcomes o WHERE o.request_id = ? ORDER BY o.id",
            (request_id,),
        )
        return [_outcome(row) for row in rows]

    def correction_of(self, request_id: str) -> Correction | None:
        """The correction of one request, or None."""
        rows = self._execute(
            f"SELECT {_CORRECTION_COLUMNS} FROM corrections WHERE request_id = ?", (request_id,)
        )
        return _correction(rows[0]) if rows else None

    def record_correction(self, request: RoutingRequest, plugin: str) -> None:
        """Store (or replace) the right plugin for ``request``."""
        self._execute(
            "INSERT OR REPLACE INTO corrections"
            " (request_id, plugin, text, files, created_at, extra) VALUES (?, ?, ?, ?, ?, ?)",
            (
                request.request_id,
                plugin,
                request.text,
                json.dumps(list(request.files)),
                time.time(),
                _extra(request),
            ),
        )

    def corrections(self) -> list[Correction]:
        """Every correction, oldest first."""
        rows = self._execute(
            f"SELECT {_CORRECTION_COLUMNS} FROM corrections ORDER BY created_at, request_id"
        )
        return [_correction(row) for row in rows]

    def outcome_requests(self) -> list[tuple[Outcome, StoredDecision]]:
        """Every outcome with the decision it is about (for learning:
        ``stored.request()`` is the request as routed)."""
        rows = self._execute(
            f"SELECT {_OUTCOME_COLUMNS}, {_DECISION_COLUMNS}"
            " FROM outcomes o JOIN decisions d ON d.request_id = o.request_id ORDER BY o.id"
        )
        return [(_outcome(row[:4]), _stored(row[4:])) for row in rows]
