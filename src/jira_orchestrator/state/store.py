"""Durable storage of each key's CRDT state in one SQLite file.

WAL journal with ``synchronous=FULL``: a commit returns only after the WAL is fsynced, so
a mutation survives a process kill *and* a power cut. (``NORMAL`` would survive a kill but
may lose the last commits on power loss, which breaks "acknowledged means on disk".)

The file has one owner: the connection runs in exclusive locking mode and takes the write
lock at open, because two writers sharing a replica id would corrupt the CRDTs (two
processes would issue the same add tags). A second opener gets `StateLocked`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jira_orchestrator._core.errors import StateAccessDenied, StateError
from jira_orchestrator._core.sqlite import connect, write_ahead
from jira_orchestrator.state.errors import (
    InvalidStateKey,
    InvalidStateValue,
    StateClosed,
    StateCorrupt,
    StateLocked,
)

__all__ = ["DEFAULT_MAX_KEY_BYTES", "StateStore", "validate_key"]

DEFAULT_MAX_KEY_BYTES = 256
_FORMAT = "jira-orchestrator-state/2"
_OLDER_FORMATS = ("jira-orchestrator-state/1",)  # upgraded in place when opened
# ``log``: deltas appended since the key's ``state`` row was written (see `StateStore`).
_LOG_TABLE = (
    "CREATE TABLE log (key TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL, "
    "PRIMARY KEY (key, seq)) WITHOUT ROWID"
)
_SCHEMA = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE state (key TEXT PRIMARY KEY, data TEXT NOT NULL) WITHOUT ROWID",
    _LOG_TABLE,
)


def validate_key(key: object, max_bytes: int = DEFAULT_MAX_KEY_BYTES) -> str:
    """Return ``key`` if it is a usable state key, else raise `InvalidStateKey`."""
    if not isinstance(key, str):
        raise InvalidStateKey(f"state key must be a str, got {type(key).__name__}")
    if not key:
        raise InvalidStateKey("state key must not be empty")
    if "\x00" in key:
        raise InvalidStateKey(f"state key {key!r} contains a NUL character")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidStateKey(f"state key {key!r} is not valid Unicode") from None
    if size > max_bytes:
        raise InvalidStateKey(
            f"state key {key[:40]!r}... is {size} bytes, over the limit of {max_bytes}"
        )
    return key


def _fsync_directory(folder: Path) -> None:
    """Make a new entry in ``folder`` durable (where the platform allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _encode(key: str, data: object) -> str:
    if not isinstance(data, Mapping):
        raise InvalidStateValue(f"state of key {key!r} must be a dict")
    try:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        text.encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidStateValue(f"state of key {key!r} is not JSON: {exc}") from None
    return text


class StateStore:
    """One SQLite file of ``key -> CRDT dict form``; every write is one durable transaction.

    A key is a row (`put`) plus the deltas appended since (`append`), so that a small
    change to a large value writes the change, not the value: whoever reads merges a key's
    row with its deltas (`load`, `load_log`), and writing the row again drops them.
    ``bytes_written`` and ``rows_written`` count what was written since opening.

    Thread-safe. ``timeout`` (seconds) is how long to wait for a lock held elsewhere.
    Raises `StateCorrupt` (not SQLite, damaged, or another schema), `StateLocked` (in use),
    `StateAccessDenied` (the file belongs to another plugin), `StateError` (I/O).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        plugin_id: str,
        timeout: float = 5.0,
        max_key_bytes: int = DEFAULT_MAX_KEY_BYTES,
    ) -> None:
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"path must be a str or path, got {type(path).__name__}")
        if not isinstance(plugin_id, str) or not plugin_id:
            raise ValueError(f"plugin_id must be a non-empty str, got {plugin_id!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 0:
            raise ValueError(f"timeout must be seconds >= 0, got {timeout!r}")
        if (
            isinstance(max_key_bytes, bool)
            or not isinstance(max_key_bytes, int)
            or max_key_bytes < 1
        ):
            raise ValueError(f"max_key_bytes must be an int >= 1, got {max_key_bytes!r}")
        self.path = Path(path).absolute()
        self.plugin_id = plugin_id
        self.max_key_bytes = max_key_bytes
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._seq = 0
        self.bytes_written = 0
        self.rows_written = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                self._create()
            elif self.path.is_file() and self.path.stat().st_size == 0:
                # Files are created whole (see _create), so an empty one was truncated.
                raise StateCorrupt(
                    f"state database {self.path} is empty (0 bytes): it was truncated or "
                    "emptied, as a state file is never empty; restore it from a backup, or "
                    "delete it to start this replica afresh"
                )
            self._db = connect(self.path, timeout=timeout)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot open state database {self.path}: {exc}") from exc
        try:
            self.replica_id = self._open()
        except BaseException:
            self.close()
            raise

    def _create(self) -> None:
        """Make a new state file whole: built and fsynced beside the path, then linked there.

        A crash at any point leaves either no file at the path or a complete one, so an
        empty file at the path can only be damage. Losing a race with another creator is
        not an error: the other's file is opened (and it holds the lock, if still open).
        """
        fd, name = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".creating"
        )
        os.close(fd)
        temp = Path(name)
        try:
            db = connect(temp)
            try:
                mode = write_ahead(db)
                if mode is not None:
                    raise StateError(f"state database {self.path}: cannot use WAL (got {mode!r})")
                db.execute("BEGIN IMMEDIATE")
                for statement in _SCHEMA:
                    db.execute(statement)
                meta = {
                    "format": _FORMAT,
                    "plugin_id": self.plugin_id,
                    "replica_id": secrets.token_hex(8),
                }
                db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
                db.execute("COMMIT")
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                db.close()  # the last connection: checkpoints and removes the WAL
            with open(temp, "rb+") as made:
                os.fsync(made.fileno())
            try:
                os.link(temp, self.path)  # never replaces a file another creator linked
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links: rename, unless beaten to it
                if not self.path.exists():
                    os.replace(temp, self.path)
            _fsync_directory(self.path.parent)
        finally:
            for leftover in (temp, Path(f"{temp}-wal"), Path(f"{temp}-shm")):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()

    def _open(self) -> str:
        db = self._conn()
        try:
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            mode = write_ahead(db)
            if mode is not None:
                raise StateError(f"state database {self.path}: cannot use WAL (got {mode!r})")
            db.execute("BEGIN IMMEDIATE")
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            if not {"meta", "state"} <= tables:
                raise StateCorrupt(f"{self.path} is an SQLite file but not a state database")
            meta: dict[str, str] = dict(db.execute("SELECT name, value FROM meta").fetchall())
            if meta.get("format") in _OLDER_FORMATS and "log" not in tables:
                db.execute(_LOG_TABLE)
                db.execute("UPDATE meta SET value = ? WHERE name = 'format'", (_FORMAT,))
                meta["format"] = _FORMAT
            if meta.get("format") != _FORMAT or not meta.get("replica_id"):
                raise StateCorrupt(f"{self.path}: unknown state format {meta.get('format')!r}")
            if meta.get("plugin_id") != self.plugin_id:
                raise StateAccessDenied(
                    f"{self.path} holds the state of plugin {meta.get('plugin_id')!r}, "
                    f"not {self.plugin_id!r}"
                )
            # A write now takes the exclusive lock for the life of the connection.
            db.execute("INSERT OR REPLACE INTO meta VALUES ('opened_by', ?)", (str(os.getpid()),))
            self._seq = db.execute("SELECT coalesce(max(seq), 0) FROM log").fetchone()[0]
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._error(exc, "opening") from exc
        except StateError:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return meta["replica_id"]

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StateClosed(f"state database {self.path} is closed")
        return self._db

    def _error(self, exc: sqlite3.Error, doing: str) -> StateError:
        code = getattr(exc, "sqlite_errorname", "")
        if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return StateLocked(
                f"state database {self.path} is locked by another connection while {doing} "
                "(is another process running this plugin on the same file?)"
            )
        if code.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
            return StateCorrupt(f"state database {self.path} is damaged or not SQLite: {exc}")
        return StateError(f"state database {self.path}: {doing} failed: {exc}")

    def load(self) -> dict[str, dict[str, Any]]:
        """Every key's stored dict form; raises `StateCorrupt` on a row that does not parse."""
        with self._lock:
            db = self._conn()
            try:
                rows = db.execute("SELECT key, data FROM state").fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc, "reading") from exc
        loaded: dict[str, dict[str, Any]] = {}
        for key, text in rows:
            try:
                data = json.loads(text)
            except (TypeError, ValueError):
                data = None
            if not isinstance(key, str) or not isinstance(data, dict):
                raise StateCorrupt(f"state database {self.path}: row {key!r} is not a JSON object")
            loaded[key] = data
        return loaded

    def load_log(self) -> list[tuple[str, dict[str, Any], int]]:
        """The deltas appended since each key's row: ``(key, dict form, bytes)``, in order.

        Raises `StateCorrupt` on one that does not parse.
        """
        with self._lock:
            db = self._conn()
            try:
                rows = db.execute("SELECT key, data FROM log ORDER BY seq").fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc, "reading") from exc
        loaded: list[tuple[str, dict[str, Any], int]] = []
        for key, text in rows:
            try:
                data = json.loads(text)
            except (TypeError, ValueError):
                data = None
            if not isinstance(key, str) or not isinstance(data, dict):
                raise StateCorrupt(
                    f"state database {self.path}: a delta of {key!r} is not a JSON object"
                )
            loaded.append((key, data, len(text.encode("utf-8"))))
        return loaded

    def row_sizes(self) -> dict[str, int]:
        """Bytes of each key's row (without its deltas)."""
        with self._lock:
            db = self._conn()
            try:
                rows = db.execute("SELECT key, length(CAST(data AS BLOB)) FROM state").fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc, "reading") from exc
        return {str(key): int(size) for key, size in rows}

    def put(self, rows: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
        """Write ``rows`` (whole values) in one transaction, dropping their keys' deltas;
        on disk (fsynced) when this returns. Returns the bytes of each row.

        Raises `InvalidStateKey` / `InvalidStateValue` before writing anything.
        """
        if not isinstance(rows, Mapping):
            raise TypeError(f"rows must be a mapping, got {type(rows).__name__}")
        encoded = []
        for key, data in rows.items():
            validate_key(key, self.max_key_bytes)
            encoded.append((key, _encode(key, data)))
        if not encoded:
            return {}
        sizes = {key: len(text.encode("utf-8")) for key, text in encoded}
        with self._lock:
            self._write(
                [
                    (
                        "INSERT INTO state VALUES (?, ?) "
                        "ON CONFLICT (key) DO UPDATE SET data = excluded.data",
                        encoded,
                    ),
                    ("DELETE FROM log WHERE key = ?", [(key,) for key, _ in encoded]),
                ]
            )
            self.bytes_written += sum(sizes.values())
            self.rows_written += len(encoded)
        return sizes

    def append(self, deltas: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
        """Append a delta to each key (its row stays as it is), in one transaction; on
        disk (fsynced) when this returns. Returns the bytes of each delta.

        Raises `InvalidStateKey` / `InvalidStateValue` before writing anything.
        """
        if not isinstance(deltas, Mapping):
            raise TypeError(f"deltas must be a mapping, got {type(deltas).__name__}")
        encoded = []
        for key, data in deltas.items():
            validate_key(key, self.max_key_bytes)
            encoded.append((key, _encode(key, data)))
        if not encoded:
            return {}
        sizes = {key: len(text.encode("utf-8")) for key, text in encoded}
        with self._lock:
            first = self._seq + 1
            numbered = [(key, first + i, text) for i, (key, text) in enumerate(encoded)]
            self._write([("INSERT INTO log VALUES (?, ?, ?)", numbered)])
            self._seq += len(numbered)
            self.bytes_written += sum(sizes.values())
            self.rows_written += len(encoded)
        return sizes

    def _write(self, statements: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
        """Run ``statements`` in one transaction; the caller holds the lock."""
        db = self._conn()
        try:
            db.execute("BEGIN IMMEDIATE")
            for sql, params in statements:
                db.executemany(sql, params)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # the first error is the one to report
                    db.execute("ROLLBACK")
            raise self._error(exc, "writing") from exc

    def close(self) -> None:
        """Close the file; idempotent."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
