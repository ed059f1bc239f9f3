"""The store queries behind the dashboard's tables: keyset pages on indexed columns, and
the indexes they need added to files written before them (without changing the format)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from jira_orchestrator.orchestrator import DeadLetterStore, SagaStore, TaskStore
from jira_orchestrator.routing import RoutingRequest
from jira_orchestrator.routing.store import DecisionStore

# (store, the index added later, a page query that must use an index, its arguments)
CASES: list[tuple[type[Any], str, str, tuple[Any, ...]]] = [
    (
        DeadLetterStore,
        "letters_topic",
        "SELECT id FROM letters WHERE topic = ? AND id < ? ORDER BY id DESC LIMIT 50",
        ("plugin/a/request", 1000),
    ),
    (
        DeadLetterStore,
        "letters_reason_topic",
        "SELECT COUNT(*) FROM letters WHERE reason = ? AND topic >= ? AND topic < ?",
        ("expired", "plugin/a/", "plugin/a/\U0010ffff"),
    ),
    (
        TaskStore,
        "tasks_plugin",
        "SELECT rowid FROM tasks WHERE plugin = ? AND rowid < ? ORDER BY rowid DESC LIMIT 50",
        ("a", 1000),
    ),
    (
        DecisionStore,
        "decisions_primary",
        "SELECT rowid FROM decisions WHERE primary_plugin = ? ORDER BY rowid DESC LIMIT 50",
        ("a",),
    ),
    (
        SagaStore,
        "runs_status",
        "SELECT rowid FROM runs WHERE status = ? ORDER BY rowid DESC LIMIT 50",
        ("running",),
    ),
]


@pytest.mark.parametrize(("kind", "index", "query", "args"), CASES)
def test_a_file_written_before_the_index_gets_it_on_open(
    tmp_path: Path, kind: type[Any], index: str, query: str, args: tuple[Any, ...]
) -> None:
    path = tmp_path / "store.db"
    kind(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"DROP INDEX {index}")  # as the file was before the dashboard
    kind(path).close()
    with sqlite3.connect(path) as db:
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        plan = " ".join(str(row[-1]) for row in db.execute(f"EXPLAIN QUERY PLAN {query}", args))
        fmt = db.execute("SELECT value FROM meta WHERE name = 'format'").fetchone()[0]
    assert index in names
    assert "USING" in plan
    assert "SCAN" not in plan.replace("USING INDEX", "")  # no full table scan
    assert fmt.startswith("jira-orchestrator-")  # the format tag is unchanged


def test_dead_letter_pages_filters_and_deletes(tmp_path: Path) -> None:
    with DeadLetterStore(tmp_path / "dl.db") as store:
        for n in range(30):
            topic = "plugin/a/request" if n % 3 else "plugin/b/events"
            store.add({"reason": "expired", "message": {"topic": topic}}, letter_id=f"l{n}")
        first = store.page(limit=10)
        assert [x.id for x in first] == list(range(30, 20, -1))
        rest = store.page(limit=100, below=first[-1].id)
        assert [x.id for x in rest] == list(range(20, 0, -1))
        assert store.count(topic="plugin/b/events") == 10
        assert store.count(topic="plugin/*") == 30
        assert store.count(topic="plugin/a*") == 20
        assert store.page(below=10**30, limit=1)[0].id == 30  # clamped, not an error
        assert store.delete([1, 2, True, 0, -5, 10**30, 2]) == 2
        assert store.purge(topic="plugin/b/events") == 9  # letter 1 was one of them
        assert store.count() == 19


def test_task_decision_and_saga_pages_end_with_no_cursor(tmp_path: Path) -> None:
    with TaskStore(tmp_path / "t.db") as tasks:
        for n in range(3):
            tasks.create(f"t{n}", {}, "c")
        page, cursor = tasks.page(limit=2)
        assert [t.id for t in page] == ["t2", "t1"]
        assert cursor is not None
        page, cursor = tasks.page(limit=2, below=cursor)
        assert [t.id for t in page] == ["t0"]
        assert cursor is None
    with DecisionStore(tmp_path / "d.db") as decisions:
        for n in range(3):
            request = RoutingRequest.from_text(f"request {n}")
            decisions.save_decision(request, {"primaryPlugin": "a" if n else "b"})
        found, cursor = decisions.page_decisions(plugin="a")
        assert [d.text for d in found] == ["request 2", "request 1"]
        assert cursor is None
        assert decisions.count_decisions(plugin="b") == 1
    with SagaStore(tmp_path / "s.db") as sagas:
        for n in range(3):
            sagas.start_run(f"r{n}", "s", None)
        runs, cursor = sagas.page(limit=2)
        assert [r.run_id for r in runs] == ["r2", "r1"]
        runs, cursor = sagas.page(limit=2, below=cursor)
        assert [r.run_id for r in runs] == ["r0"]
        assert cursor is None
        assert sagas.count(status="running") == 3
