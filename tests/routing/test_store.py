"""The decision store's file: its format tag, other programs' files, locks, a full disk,
damaged rows, and retention."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from jira_orchestrator.routing import DecisionStore, RoutingRequest, RoutingStoreError

FORMAT = "jira-orchestrator-routing/1"


def _tables(db: Path) -> list[str]:
    connection = sqlite3.connect(db)
    try:
        return sorted(row[0] for row in connection.execute("SELECT name FROM sqlite_master"))
    finally:
        connection.close()


def _sql(db: Path, *statements: str) -> None:
    connection = sqlite3.connect(db, isolation_level=None)
    try:
        for statement in statements:
            connection.execute(statement)
    finally:
        connection.close()


def _request(request_id: str, text: str = "Write the README") -> RoutingRequest:
    return RoutingRequest.from_text(text, request_id=request_id)


def test_a_new_file_carries_the_routing_format_tag(tmp_path: Path) -> None:
    db = tmp_path / "routing.db"
    with DecisionStore(db) as store:
        store.save_decision(_request("A-1"), {"primaryPlugin": "doc-scribe"})
    connection = sqlite3.connect(db)
    try:
        found = connection.execute("SELECT value FROM meta WHERE name = 'format'").fetchone()
    finally:
        connection.close()
    assert found == (FORMAT,)


@pytest.mark.parametrize(
    "statements",
    [
        ["CREATE TABLE foo (a)"],
        ["CREATE TABLE decisions (a)"],
        [
            "CREATE TABLE decisions (request_id TEXT, created_at REAL, text TEXT, files TEXT,"
            " primary_plugin TEXT, decision TEXT)",
            "CREATE TABLE outcomes (id INTEGER PRIMARY KEY, request_id TEXT, plugin TEXT,"
            " success INTEGER, created_at REAL)",
            "CREATE TABLE corrections (request_id TEXT, plugin TEXT, text TEXT, files TEXT,"
            " created_at REAL)",
            "CREATE TABLE invoices (id INTEGER)",
        ],
        ["CREATE TABLE meta (name TEXT, value TEXT)", "INSERT INTO meta VALUES ('format', 'x/1')"],
    ],
    ids=["foreign table", "foreign decisions table", "routing tables and more", "other tag"],
)
def test_another_programs_database_is_refused_and_left_alone(
    tmp_path: Path, statements: list[str]
) -> None:
    db = tmp_path / "other.db"
    _sql(db, *statements)
    before = _tables(db)
    with pytest.raises(RoutingStoreError, match=r"other\.db") as caught:
        DecisionStore(db)
    assert "not a routing store" in str(caught.value) or "format 'x/1'" in str(caught.value)
    assert _tables(db) == before


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "notes.db"
    db.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(RoutingStoreError, match=r"notes\.db.*(damaged|not SQLite)"):
        DecisionStore(db)
    assert db.read_text().startswith("these are my notes")


def test_a_file_this_project_wrote_before_the_format_tag_is_kept_and_tagged(
    tmp_path: Path,
) -> None:
    db = tmp_path / "routing.db"
    _sql(
        db,
        "CREATE TABLE decisions (request_id TEXT PRIMARY KEY, created_at REAL NOT NULL,"
        " text TEXT NOT NULL, files TEXT NOT NULL, primary_plugin TEXT, decision TEXT NOT NULL,"
        " extra TEXT NOT NULL DEFAULT '{}')",
        "CREATE TABLE outcomes (id INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL,"
        " plugin TEXT NOT NULL, success INTEGER NOT NULL, created_at REAL NOT NULL)",
        "CREATE TABLE corrections (request_id TEXT PRIMARY KEY, plugin TEXT NOT NULL,"
        " text TEXT NOT NULL, files TEXT NOT NULL, created_at REAL NOT NULL,"
        " extra TEXT NOT NULL DEFAULT '{}')",
        "CREATE INDEX outcomes_request ON outcomes (request_id)",
        "INSERT INTO decisions VALUES ('OLD-1', 1.0, 'Write docs', '[]', 'doc-scribe', '{}',"
        ' \'{"labels":["docs"]}\')',
        "INSERT INTO outcomes (request_id, plugin, success, created_at)"
        " VALUES ('OLD-1', 'doc-scribe', 1, 2.0)",
    )
    with DecisionStore(db) as store:
        stored = store.get_decision("OLD-1")
        assert stored is not None
        assert stored.request().labels == ("docs",)
        assert [o.plugin for o in store.outcomes()] == ["doc-scribe"]
    assert "meta" in _tables(db)
    with DecisionStore(db) as store:  # and opens again as a tagged file
        assert store.count_decisions() == 1


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[tuple[Path, sqlite3.Connection]]:
    """A routing database and another connection that can lock it."""
    db = tmp_path / "routing.db"
    DecisionStore(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        yield db, holder
    finally:
        holder.close()


def test_a_locked_file_is_reported_as_locked_after_the_timeout(
    locked: tuple[Path, sqlite3.Connection],
) -> None:
    db, holder = locked
    holder.execute("BEGIN EXCLUSIVE")
    with pytest.raises(RoutingStoreError) as caught:
        DecisionStore(db, timeout=0.1)
    assert str(db) in str(caught.value)
    assert "locked by another process (waited 0.1 s)" in str(caught.value)


def test_a_write_to_a_file_locked_after_it_was_opened_says_locked(
    locked: tuple[Path, sqlite3.Connection],
) -> None:
    db, holder = locked
    with DecisionStore(db, timeout=0.1) as store:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(RoutingStoreError, match="locked by another process"):
            store.save_decision(_request("A-1"), {"primaryPlugin": "doc-scribe"})
        holder.execute("ROLLBACK")
        store.save_decision(_request("A-1"), {"primaryPlugin": "doc-scribe"})
        assert store.count_decisions() == 1


def _save_many(db: Path, max_pages: int | None = None) -> None:
    with DecisionStore(db) as store:
        if max_pages is not None:  # as if the disk had no room left past this size
            store._conn().execute(f"PRAGMA max_page_count = {max_pages}")
        for i in range(100):
            store.save_decision(_request(f"A-{i}", "x " * 2000), {"primaryPlugin": None})


def test_a_full_database_says_disk_full(tmp_path: Path) -> None:
    db = tmp_path / "routing.db"
    with pytest.raises(RoutingStoreError, match="disk full") as caught:
        _save_many(db, max_pages=12)
    assert str(db) in str(caught.value)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 600 kB tmpfs (needs the right to mount: root on Linux)."""
    where = tmp_path / "disk"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_file_system_says_disk_full(tiny_disk: Path) -> None:
    db = tiny_disk / "routing.db"
    DecisionStore(db).close()
    filler = (tiny_disk / "filler").open("wb", buffering=0)
    try:
        while True:
            filler.write(b"\0" * 4096)
    except OSError:
        pass  # the disk is full
    finally:
        filler.close()
    with pytest.raises(RoutingStoreError, match="disk full") as caught:
        _save_many(db)
    assert str(db) in str(caught.value)


def test_a_damaged_row_is_an_error_naming_it(tmp_path: Path) -> None:
    db = tmp_path / "routing.db"
    with DecisionStore(db) as store:
        store.save_decision(_request("A-1"), {"primaryPlugin": "doc-scribe"})
    _sql(db, "UPDATE decisions SET files = 'not json' WHERE request_id = 'A-1'")
    with DecisionStore(db) as store:
        with pytest.raises(RoutingStoreError, match=r"damaged row.*'A-1'"):
            store.recent_decisions()
        with pytest.raises(RoutingStoreError, match=r"damaged row.*'A-1'"):
            store.get_decision("A-1")


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _fill(store: DecisionStore, clock: FakeClock) -> None:
    """Decisions A (t=100, an outcome at 100), B (t=200, an outcome at 900), C (t=300,
    corrected), D (t=1000); ``clock`` is left at 1000."""
    for request_id, at in (("A", 100.0), ("B", 200.0), ("C", 300.0), ("D", 1000.0)):
        clock.now = at
        store.save_decision(_request(request_id), {"primaryPlugin": "doc-scribe"})
        if request_id == "A":
            store.record_outcome("A", "doc-scribe", True)
    clock.now = 900.0
    store.record_outcome("B", "doc-scribe", False)
    store.record_correction(_request("C"), "api-forge")
    clock.now = 1000.0


def test_prune_drops_old_decisions_and_outcomes_and_keeps_corrections(tmp_path: Path) -> None:
    clock = FakeClock(0.0)
    with DecisionStore(tmp_path / "routing.db", clock=clock) as store:
        _fill(store, clock)
        assert store.prune(before=500.0, dry_run=True) == (2, 1)
        assert store.count_decisions() == 4
        pruned = store.prune(before=500.0)
        assert (pruned.decisions, pruned.outcomes) == (2, 1)
        # B stays while its outcome (newer than the cut) does: it is still an example.
        assert [d.request_id for d in store.recent_decisions()] == ["D", "B"]
        assert [(o.request_id, o.success) for o in store.outcomes()] == [("B", False)]
        assert [c.request_id for c in store.corrections()] == ["C"]
        assert store.prune(before=500.0) == (0, 0)


def test_retention_prunes_on_open_and_as_decisions_are_saved(tmp_path: Path) -> None:
    db = tmp_path / "routing.db"
    clock = FakeClock(0.0)
    with DecisionStore(db, clock=clock) as store:
        _fill(store, clock)
    clock.now = 1500.0
    with DecisionStore(db, clock=clock, retention=1000.0) as store:  # cut at 500
        assert [d.request_id for d in store.recent_decisions()] == ["D", "B"]
        clock.now = 2500.0 + store.PRUNE_EVERY  # cut at 1500 + PRUNE_EVERY: D and B go
        store.save_decision(_request("E"), {"primaryPlugin": "doc-scribe"})
        assert [d.request_id for d in store.recent_decisions()] == ["E"]
    with pytest.raises(ValueError, match="retention"):
        DecisionStore(db, retention=0)
