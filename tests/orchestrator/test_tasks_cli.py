"""``jira-orchestrator tasks prune`` and `TaskStore.prune`: retention for the task database."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from jira_orchestrator.cli import app
from jira_orchestrator.cli._duration import parse_duration
from jira_orchestrator.orchestrator import TaskStore

DAY = 86400.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Tasks finished 40 and 10 days ago, and one left running 90 days ago."""
    monkeypatch.delenv("JIRA_ORCHESTRATOR_TASK_RETENTION", raising=False)
    monkeypatch.delenv("JIRA_ORCHESTRATOR_TASKS", raising=False)
    path = tmp_path / "tasks.db"
    now = time.time()
    clock = Clock(now - 90 * DAY)
    with TaskStore(path, clock=clock) as store:
        store.create("stuck", {"request": "x"}, "handle_issue")
        store.running("stuck", "p", [])
        for name, age in (("old-done", 40), ("old-failed", 40), ("recent", 10)):
            clock.now = now - age * DAY
            store.create(name, {"request": "x"}, "handle_issue")
            status = "failed" if name == "old-failed" else "completed"
            store.finish(name, status=status, plugin="p", attempts=[])  # type: ignore[arg-type]
    return path


def ids(path: Path) -> list[str]:
    with TaskStore(path) as store:
        return sorted(task.id for task in store.all())


def run(*args: str, **kwargs: Any) -> Any:
    return CliRunner().invoke(app, ["tasks", "prune", *args], **kwargs)


def test_prune_deletes_finished_tasks_older_than_an_age_and_keeps_unfinished(db: Path) -> None:
    result = run("--older-than", "30d", "--db", str(db), "--yes")
    assert result.exit_code == 0, result.output
    assert "pruned 2 tasks finished before" in result.stdout
    assert ids(db) == ["recent", "stuck"]  # running for 90 days, but a restart resumes it
    assert run("--older-than", "30d", "--db", str(db), "--yes").stdout.strip() == (
        "nothing to prune"
    )


def test_the_default_age_is_configurable(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIRA_ORCHESTRATOR_TASK_RETENTION", "1w")
    monkeypatch.setenv("JIRA_ORCHESTRATOR_TASKS", str(db))
    refused = run(input="n\n")
    assert refused.exit_code == 1
    assert "Delete 3 tasks finished before" in refused.stdout
    assert len(ids(db)) == 4
    assert run(input="y\n").exit_code == 0
    assert ids(db) == ["stuck"]


def test_prune_before_a_time(db: Path) -> None:
    result = run("--before", "2000-01-01T00:00:00Z", "--db", str(db), "--yes")
    assert result.stdout.strip() == "nothing to prune"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "soon"], "--older-than: not a duration: 'soon'"),
        (["--older-than", "9" * 400 + "d"], "--older-than: not a duration"),
        (["--before", "yesterday"], "--before: not an ISO 8601 time"),
        (["--older-than", "1d", "--before", "2000-01-01T00:00:00Z"], "not both"),
    ],
)
def test_bad_ages_and_times_are_bad_input(db: Path, args: list[str], message: str) -> None:
    result = run(*args, "--db", str(db), "--yes")
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(ids(db)) == 4


def test_missing_damaged_or_folder_database(tmp_path: Path) -> None:
    missing = run("--db", str(tmp_path / "none.db"), "--yes")
    assert missing.exit_code == 2
    assert f"no task database at {tmp_path / 'none.db'}: give --db PATH" in " ".join(
        missing.stderr.split()
    )
    assert not (tmp_path / "none.db").exists()
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(b"garbage" * 1000)
    result = run("--db", str(damaged), "--yes")
    assert result.exit_code == 1
    assert str(damaged) in result.stderr
    assert run("--db", str(tmp_path), "--yes").exit_code == 2


def test_durations_on_the_command_line() -> None:
    assert [parse_duration(x) for x in ("45s", "90m", "12h", "30d", "2w", "1.5h", "1d12h")] == [
        45,
        5400,
        43200,
        30 * DAY,
        14 * DAY,
        5400,
        36 * 3600,
    ]
    for bad in ("-1d", "1x", "", "d"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)
    with pytest.raises(ValueError, match="more than zero"):
        parse_duration("0s")
    with pytest.raises(ValueError, match="100 years"):
        parse_duration("999999999999w")
