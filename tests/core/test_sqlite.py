"""The SQLite base the stores share, seen through the task store."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from jira_orchestrator.orchestrator.tasks import TaskStore, TaskStoreError


def test_a_store_survives_a_reopen(tmp_path: Path) -> None:
    with_tasks = TaskStore(tmp_path / "tasks.db")
    with_tasks.create("t1", {"request": "x"}, "handle_issue")
    with_tasks.close()
    again = TaskStore(tmp_path / "tasks.db")
    assert [t.id for t in again.unfinished()] == ["t1"]
    again.close()


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"\x00not a database\xff" * 200)
    with pytest.raises(TaskStoreError, match="damaged or not SQLite"):
        TaskStore(garbage)


def test_a_database_of_another_kind_is_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "other.db"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE letters (id INTEGER)")
    db.commit()
    db.close()
    with pytest.raises(TaskStoreError, match=r"not a task store \(tables: letters\)"):
        TaskStore(foreign)


def test_another_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    TaskStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = 'jira-orchestrator-tasks/99'")
    db.commit()
    db.close()
    with pytest.raises(TaskStoreError, match="unknown task store format"):
        TaskStore(path)


def test_a_closed_store_says_so(tmp_path: Path) -> None:
    store = TaskStore(tmp_path / "tasks.db")
    store.close()
    store.close()  # idempotent
    with pytest.raises(TaskStoreError, match="is closed"):
        store.create("t1", {}, "x")


def test_in_memory_stores_work_without_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = TaskStore(":memory:")
    store.create("t1", {}, "x")
    assert store.counts() == {"pending": 1}
    store.close()
    assert list(tmp_path.iterdir()) == []


def test_a_path_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(TypeError, match="path"):
        TaskStore(42)  # type: ignore[arg-type]


def test_a_new_store_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    store = TaskStore(tmp_path / "private.db")
    try:
        store_path = tmp_path / "private.db"
        for path in (store_path, tmp_path / "private.db-wal"):
            assert path.exists()
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        store.close()
