"""The base of the project's SQLite files (tasks, dead letters, sagas).

One file, one kind: opened in WAL mode with ``synchronous=FULL`` (a commit returns once it
is fsynced, so what a call acknowledged survives a crash or a power cut), created with its
schema and a format tag on first use, and recognised on every later open, so a file of
another kind, another format or no SQLite at all is refused with a clear error rather than
misread. Thread-safe; several processes may share a file (writers wait up to ``timeout``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

from jira_orchestrator._core.errors import JiraOrchestratorError

__all__ = [
    "SQLiteStore",
    "connect",
    "matching",
    "write_ahead",
]


def connect(path: str | os.PathLike[str], *, timeout: float = 5.0) -> sqlite3.Connection:
    """Open an SQLite file the project's way: transactions explicit (autocommit otherwise),
    usable from any thread (callers hold their own lock), waiting up to ``timeout``
    seconds for another connection's lock. Every store opens its files with this."""
    return sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)


def write_ahead(db: sqlite3.Connection, *, synchronous: str = "FULL") -> str | None:
    """Put ``db`` in WAL mode with ``synchronous`` (FULL: a commit returns once fsynced);
    None when done, else the journal mode SQLite kept (WAL refused, or in memory)."""
    mode = str(db.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
    db.execute(f"PRAGMA synchronous={synchronous}")
    return None if mode == "wal" else mode


class SQLiteStore:
    """A durable SQLite file of one kind. Subclasses say which:

    ``KIND`` names it in errors ("dead-letter store"), ``FORMAT`` is the tag kept in its
    ``meta`` table, ``SCHEMA`` the statements that create it (with ``meta``), ``TABLES``
    the tables that prove a file is one, ``ERROR`` the exception raised for I/O and
    locking and ``CORRUPT`` the one for a damaged or foreign file (may be ``ERROR``).
    """

    KIND: ClassVar[str]
    FORMAT: ClassVar[str]
    SCHEMA: ClassVar[Sequence[str]]
    TABLES: ClassVar[frozenset[str]]
    ERROR: ClassVar[type[JiraOrchestratorError]]
    CORRUPT: ClassVar[type[JiraOrchestratorError]]
    PRAGMAS: ClassVar[Sequence[str]] = ()
    INDEXES: ClassVar[Sequence[str]] = ()
    """``CREATE INDEX IF NOT EXISTS`` statements added after the first release of a kind:
    run on every open, so a file written before them gets them (the format is unchanged)."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 5.0) -> None:
        """Open (or create) the file at ``path``; ``":memory:"`` keeps it in memory."""
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"path must be a str or path, got {type(path).__name__}")
        self.in_memory = path == ":memory:"
        self.path = Path(path) if self.in_memory else Path(path).absolute()
        self._lock = threading.Lock()
        try:
            if not self.in_memory:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                _create_private(self.path)
            self._db: sqlite3.Connection | None = connect(
                ":memory:" if self.in_memory else self.path, timeout=timeout
            )
        except (OSError, sqlite3.Error) as exc:
            raise self.ERROR(f"cannot open {self.KIND} {self.path}: {exc}") from exc
        try:
            self._open()
        except BaseException:
            self._db.close()
            self._db = None
            raise

    def _open(self) -> None:
        db = self._conn()
        try:
            mode = write_ahead(db)
            if mode is not None and not self.in_memory:
                raise self.ERROR(f"{self.KIND} {self.path}: cannot use WAL ({mode!r})")
            for pragma in self.PRAGMAS:
                db.execute(f"PRAGMA {pragma}")
            db.execute("BEGIN IMMEDIATE")
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            if not tables:
                for statement in self.SCHEMA:
                    db.execute(statement)
                db.execute("INSERT INTO meta VALUES ('format', ?)", (self.FORMAT,))
                found: str | None = self.FORMAT
            elif not ({"meta"} | self.TABLES) <= tables:
                raise self.CORRUPT(
                    f"{self.path} is an SQLite file but not a {self.KIND} "
                    f"(tables: {', '.join(sorted(tables))})"
                )
            else:
                row = db.execute("SELECT value FROM meta WHERE name = 'format'").fetchone()
                found = None if row is None else row[0]
            if found == self.FORMAT:
                self._migrate(db)
                for statement in self.INDEXES:
                    db.execute(statement)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise self._error(exc, "opening") from exc
        except JiraOrchestratorError:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        if found != self.FORMAT:
            raise self.CORRUPT(f"{self.path}: unknown {self.KIND} format {found!r}")

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Bring a file of this format written by an older version up to date (in the
        opening transaction); nothing by default."""

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise self.ERROR(f"{self.KIND} {self.path} is closed")
        return self._db

    def _error(self, exc: sqlite3.Error, doing: str) -> JiraOrchestratorError:
        code = getattr(exc, "sqlite_errorname", "")
        if code.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
            return self.CORRUPT(f"{self.KIND} {self.path} is damaged or not SQLite: {exc}")
        return self.ERROR(f"{self.KIND} {self.path}: {doing} failed: {exc}")

    @contextmanager
    def _write(self, doing: str = "writing") -> Iterator[sqlite3.Connection]:
        """One durable transaction: committed (fsynced) on exit, rolled back on error."""
        with self._lock:
            db = self._conn()
            try:
                db.execute("BEGIN IMMEDIATE")
                yield db
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise self._error(exc, doing) from exc
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def _read(self, sql: str, arguments: Sequence[Any] = ()) -> list[Any]:
        """Rows of one query."""
        with self._lock:
            try:
                return self._conn().execute(sql, arguments).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc, "reading") from exc

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether `close` was called (or opening failed)."""
        return self._db is None

    def close(self) -> None:
        """Close the file; idempotent."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _create_private(path: Path) -> None:
    """Create ``path`` readable by its owner only (0600), unless it exists: the stores hold
    issue texts and letters, and SQLite gives its ``-wal`` and ``-shm`` files the same mode."""
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def matching(**columns: Any) -> tuple[list[str], list[Any]]:
    """``(clauses, args)`` of an equality filter on each column given a value (``None``:
    not filtered). Column names come from the code, never from input."""
    clauses = [f"{name} = ?" for name, value in columns.items() if value is not None]
    return clauses, [value for value in columns.values() if value is not None]
