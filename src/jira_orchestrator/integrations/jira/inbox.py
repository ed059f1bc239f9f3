"""The webhook inbox: every accepted Jira event, durable before Jira gets its 2xx.

Jira retries a delivery only when it does not get a 2xx, so the receiver writes each event
here (one fsynced SQLite transaction, WAL, ``synchronous=FULL``) before it answers: a
crash after the answer loses nothing. Deliveries are keyed by Jira's
``X-Atlassian-Webhook-Identifier`` (unchanged across retries), so a redelivery is
recognised and stored once, across restarts too.

An event moves ``pending`` -> ``processing`` (`WebhookInbox.claim`) -> ``done``
(`complete`), or back to ``pending`` on a retryable failure (`fail`) until
``max_attempts``, then ``failed``. An event still ``processing`` when the process died is
``pending`` again when the inbox is reopened, so the processor resumes it.

Events of one issue arrive out of order and more than once; the issue's ``updated`` time
decides which one is current. An issue event (created, updated, deleted) older than the
last one processed for its issue is stored as ``superseded`` and never handed out.
Comment events are never superseded (each may carry a command), and one issue never has
two events ``processing`` at once, so the processor sees each issue's events in turn.

    JiraOrchestratorError
    └── InboxError                 the inbox file cannot be read or written
        └── InboxCorrupt           not SQLite, damaged, or not a webhook inbox

`InboxWriter` adds group commit on top: concurrent requests share one transaction and one
fsync, and each request still returns only once its own event is on disk.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from jira_orchestrator._core.clock import WallClock
from jira_orchestrator._core.errors import JiraOrchestratorError
from jira_orchestrator._core.sqlite import SQLiteStore
from jira_orchestrator.integrations.jira.events import WebhookEvent, parse_event

__all__ = [
    "InboxCorrupt",
    "InboxError",
    "InboxEvent",
    "InboxState",
    "InboxWriter",
    "Stored",
    "WebhookInbox",
]

log = logging.getLogger("jira_orchestrator.integrations.jira.inbox")

InboxState = Literal["pending", "processing", "done", "failed", "superseded"]
_ORDERED = ("issue_created", "issue_updated", "issue_deleted")
"""Kinds whose ``updated`` time decides whether they are current."""

_FORMAT = "jira-orchestrator-webhook-inbox/1"
_SCHEMA = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    """CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery_id TEXT NOT NULL UNIQUE,
        received_at REAL NOT NULL,
        kind TEXT NOT NULL,
        webhook_event TEXT NOT NULL,
        issue_id TEXT NOT NULL,
        issue_key TEXT NOT NULL,
        project_key TEXT,
        updated REAL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        changed_at REAL NOT NULL,
        body BLOB NOT NULL
    )""",
    "CREATE INDEX events_state ON events (state, seq)",
    "CREATE INDEX events_issue ON events (issue_id, state)",
    """CREATE TABLE issues (
        issue_id TEXT PRIMARY KEY,
        issue_key TEXT NOT NULL,
        processed_updated REAL NOT NULL
    ) WITHOUT ROWID""",
)
_COLUMNS = "seq, delivery_id, received_at, state, attempts, error, body"


class InboxError(JiraOrchestratorError):
    """The webhook inbox cannot be opened, read or written (I/O, locked, misuse)."""


class InboxCorrupt(InboxError):
    """The file is not SQLite, is damaged, or holds something other than a webhook inbox."""


@dataclass(frozen=True)
class Stored:
    """The outcome of an add: the event's ``seq``, whether it is ``new`` and its ``state``."""

    seq: int
    new: bool
    state: InboxState


@dataclass(frozen=True)
class InboxEvent:
    """One stored event, with the raw body it was parsed from."""

    seq: int
    delivery_id: str
    received_at: float
    state: InboxState
    attempts: int
    error: str | None
    body: bytes
    event: WebhookEvent


class WebhookInbox(SQLiteStore):
    """Accepted webhook events in one SQLite file (``":memory:"`` for a throwaway).

    One processor per file: opening it puts back to ``pending`` what a previous process
    left ``processing``. ``max_attempts`` bounds `fail` with ``retry=True``. Thread-safe;
    every write is on disk when the call returns. Raises `InboxCorrupt` or `InboxError`.
    """

    KIND = "webhook inbox"
    FORMAT = _FORMAT
    SCHEMA = _SCHEMA
    TABLES = frozenset({"events", "issues"})
    ERROR = InboxError
    CORRUPT = InboxCorrupt

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 5.0,
        max_attempts: int = 5,
        clock: WallClock = time.time,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.max_attempts = max_attempts
        self._clock = clock
        super().__init__(path, timeout=timeout)
        self.resumed = self._resume()
        if self.resumed:
            log.warning(
                "webhook inbox %s: %d event(s) left processing by a previous run are pending again",
                self.path,
                self.resumed,
            )

    def _resume(self) -> int:
        with self._write("resuming") as db:
            return int(
                db.execute(
                    "UPDATE events SET state = 'pending', changed_at = ? "
                    "WHERE state = 'processing'",
                    (self._clock(),),
                ).rowcount
            )

    @property
    def is_open(self) -> bool:
        """Whether the file is open (for readiness probes)."""
        return self._db is not None

    def add(self, delivery_id: str, event: WebhookEvent, body: bytes) -> Stored:
        """Store one event under ``delivery_id``; on disk when this returns."""
        return self.add_many([(delivery_id, event, body)])[0]

    def add_many(self, items: Sequence[tuple[str, WebhookEvent, bytes]]) -> list[Stored]:
        """Store several events in one transaction (one fsync); one `Stored` each, in order.

        A ``delivery_id`` already stored (or repeated in ``items``) is not stored again: its
        `Stored` has ``new=False`` and the first one's seq and state.
        """
        for delivery_id, _, body in items:
            if not isinstance(delivery_id, str) or not delivery_id:
                raise TypeError(f"delivery_id must be a non-empty str, got {delivery_id!r}")
            if not isinstance(body, bytes | bytearray):
                raise TypeError(f"body must be bytes, got {type(body).__name__}")
        now = self._clock()
        results: list[Stored] = []
        with self._write("storing an event") as db:
            for delivery_id, event, body in items:
                state: InboxState = "pending"
                if event.kind in _ORDERED and self._older(db, event):
                    state = "superseded"
                cursor = db.execute(
                    "INSERT OR IGNORE INTO events (delivery_id, received_at, kind, "
                    "webhook_event, issue_id, issue_key, project_key, updated, state, "
                    "changed_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        delivery_id,
                        now,
                        event.kind,
                        event.webhook_event,
                        event.issue_id,
                        event.issue_key,
                        event.project_key,
                        event.updated,
                        state,
                        now,
                        bytes(body),
                    ),
                )
                if cursor.rowcount == 1 and cursor.lastrowid is not None:
                    results.append(Stored(cursor.lastrowid, True, state))
                else:
                    seq, old_state = db.execute(
                        "SELECT seq, state FROM events WHERE delivery_id = ?", (delivery_id,)
                    ).fetchone()
                    results.append(Stored(int(seq), False, old_state))
        return results

    @staticmethod
    def _older(db: Any, event: WebhookEvent) -> bool:
        if event.updated is None:
            return False
        row = db.execute(
            "SELECT processed_updated FROM issues WHERE issue_id = ?", (event.issue_id,)
        ).fetchone()
        return row is not None and event.updated < row[0]

    def claim(self, limit: int = 1) -> list[InboxEvent]:
        """Up to ``limit`` pending events, oldest first, now ``processing``.

        Skips an issue that already has an event processing; marks ``superseded`` (and
        skips) an issue event older than the last one completed for its issue.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        now = self._clock()
        claimed: list[int] = []
        superseded: list[tuple[int, str]] = []
        with self._write("claiming events") as db:
            busy = {
                row[0]
                for row in db.execute(
                    "SELECT DISTINCT issue_id FROM events WHERE state = 'processing'"
                )
            }
            after = 0
            while len(claimed) < limit:
                rows = db.execute(
                    "SELECT seq, kind, issue_id, issue_key, updated FROM events "
                    "WHERE state = 'pending' AND seq > ? ORDER BY seq LIMIT 64",
                    (after,),
                ).fetchall()
                if not rows:
                    break
                for seq, kind, issue_id, issue_key, updated in rows:
                    after = seq
                    if issue_id in busy:
                        continue
                    if kind in _ORDERED and updated is not None:
                        row = db.execute(
                            "SELECT processed_updated FROM issues WHERE issue_id = ?",
                            (issue_id,),
                        ).fetchone()
                        if row is not None and updated < row[0]:
                            superseded.append((seq, issue_key))
                            continue
                    busy.add(issue_id)
                    claimed.append(seq)
                    if len(claimed) == limit:
                        break
            for seq, _ in superseded:
                db.execute(
                    "UPDATE events SET state = 'superseded', changed_at = ? WHERE seq = ?",
                    (now, seq),
                )
            for seq in claimed:
                db.execute(
                    "UPDATE events SET state = 'processing', attempts = attempts + 1, "
                    "changed_at = ? WHERE seq = ?",
                    (now, seq),
                )
            events = [self._get(db, seq) for seq in claimed]
        for seq, key in superseded:
            log.info(
                "webhook event %d for %s superseded by a newer one already processed", seq, key
            )
        return events

    def complete(self, seq: int) -> None:
        """Mark a claimed event ``done``; its issue's ``updated`` becomes the current one."""
        with self._write("completing an event") as db:
            event = self._processing(db, seq, "complete")
            db.execute(
                "UPDATE events SET state = 'done', error = NULL, changed_at = ? WHERE seq = ?",
                (self._clock(), seq),
            )
            if event.event.kind in _ORDERED and event.event.updated is not None:
                db.execute(
                    "INSERT INTO issues VALUES (?, ?, ?) ON CONFLICT (issue_id) DO UPDATE SET "
                    "issue_key = excluded.issue_key, processed_updated = "
                    "max(processed_updated, excluded.processed_updated)",
                    (event.event.issue_id, event.event.issue_key, event.event.updated),
                )

    def fail(self, seq: int, error: str, *, retry: bool = True) -> InboxState:
        """Record a failure of a claimed event: ``pending`` again, or ``failed`` for good.

        It is ``failed`` when ``retry`` is False or after ``max_attempts`` claims. Logged
        with the issue key either way. Returns the new state.
        """
        with self._write("failing an event") as db:
            event = self._processing(db, seq, "fail")
            state: InboxState = (
                "pending" if retry and event.attempts < self.max_attempts else "failed"
            )
            db.execute(
                "UPDATE events SET state = ?, error = ?, changed_at = ? WHERE seq = ?",
                (state, str(error), self._clock(), seq),
            )
        level = logging.WARNING if state == "pending" else logging.ERROR
        log.log(
            level,
            "webhook event %d (%s %s, attempt %d of %d) failed: %s; now %s",
            seq,
            event.event.webhook_event,
            event.event.issue_key,
            event.attempts,
            self.max_attempts,
            error,
            state,
        )
        return state

    def _processing(self, db: Any, seq: int, doing: str) -> InboxEvent:
        event = self._get(db, seq)
        if event.state != "processing":
            raise InboxError(f"cannot {doing} webhook event {seq}: it is {event.state}")
        return event

    def _get(self, db: Any, seq: int) -> InboxEvent:
        row = db.execute(f"SELECT {_COLUMNS} FROM events WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            raise InboxError(f"no webhook event {seq} in {self.path}")
        return _event(row)

    def get(self, seq: int) -> InboxEvent:
        """The stored event ``seq``; raises `InboxError` if there is none."""
        rows = self._read(f"SELECT {_COLUMNS} FROM events WHERE seq = ?", (seq,))
        if not rows:
            raise InboxError(f"no webhook event {seq} in {self.path}")
        return _event(rows[0])

    def find(self, delivery_id: str) -> InboxEvent | None:
        """The event stored under a delivery identifier, if any."""
        rows = self._read(f"SELECT {_COLUMNS} FROM events WHERE delivery_id = ?", (delivery_id,))
        return _event(rows[0]) if rows else None

    def list(self, *, state: InboxState | None = None, limit: int = 1000) -> list[InboxEvent]:
        """Events oldest first, optionally in one state."""
        where, args = ("WHERE state = ?", (state,)) if state else ("", ())
        rows = self._read(
            f"SELECT {_COLUMNS} FROM events {where} ORDER BY seq LIMIT ?", (*args, int(limit))
        )
        return [_event(row) for row in rows]

    def counts(self) -> dict[str, int]:
        """Number of events by state."""
        rows = self._read("SELECT state, COUNT(*) FROM events GROUP BY state ORDER BY state")
        return {state: int(n) for state, n in rows}


def _event(row: tuple[Any, ...]) -> InboxEvent:
    seq, delivery_id, received_at, state, attempts, error, body = row
    return InboxEvent(
        seq=seq,
        delivery_id=delivery_id,
        received_at=received_at,
        state=state,
        attempts=attempts,
        error=error,
        body=bytes(body),
        event=parse_event(bytes(body)),
    )


class InboxWriter:
    """Group commit for a `WebhookInbox` inside an asyncio program.

    `add` queues the event and returns once it is on disk. While one transaction is being
    written (in a worker thread, so the loop keeps serving), the events of concurrent
    requests queue up and go together in the next one: one fsync for many events, and no
    request waits for a timer.
    """

    def __init__(self, inbox: WebhookInbox, *, max_batch: int = 256) -> None:
        self.inbox = inbox
        self.max_batch = max_batch
        self._queue: list[tuple[tuple[str, WebhookEvent, bytes], asyncio.Future[Stored]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0
        self.events = 0

    async def add(self, delivery_id: str, event: WebhookEvent, body: bytes) -> Stored:
        """Store one event; returns once it is durable. Raises what the inbox raises."""
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._queue.append(((delivery_id, event, body), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        # shield: a client that hangs up must not cancel the write of the others' batch.
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._queue:
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            try:
                results = await asyncio.to_thread(self.inbox.add_many, [item for item, _ in batch])
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                raise
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches += 1
            self.events += len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def aclose(self) -> None:
        """Wait until everything queued is written."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
