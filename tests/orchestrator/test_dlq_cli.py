"""``jira-orchestrator dlq list|show|replay|purge`` on a test-local app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from jira_orchestrator.cli.dlq import dlq_app
from jira_orchestrator.messagebus import Message
from jira_orchestrator.orchestrator import DeadLetterStore

app = typer.Typer()
app.add_typer(dlq_app, name="dlq")


@app.callback()
def _root() -> None:
    """Test root."""


runner = CliRunner()


def letter(reason: str, **extra: Any) -> dict[str, Any]:
    topic = "plugin/worker/request"
    original = Message(topic=topic, payload={"job": reason}, source="sender").to_dict()
    return {
        "reason": reason,
        "error": {"type": "RuntimeError", "message": f"{reason} happened"},
        "subscriber": "worker",
        "subscription": topic,
        "message": {**original, **extra},
    }


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "dlq.db"
    monkeypatch.delenv("JIRA_ORCHESTRATOR_BUS_URL", raising=False)
    monkeypatch.setenv("JIRA_ORCHESTRATOR_DLQ", str(path))
    with DeadLetterStore(path) as store:
        store.add(letter("handler-error"), received_at=1_000.0)
        store.add(letter("expired"), received_at=2_000.0)
        store.add(letter("rejected-source"), received_at=3_000.0)
        store.add(letter("max-deliveries", topic="plugin//broken"), received_at=4_000.0)
        store.add("garbage", received_at=5_000.0)
    return path


def run(*args: str) -> Any:
    return runner.invoke(app, ["dlq", *args])


def test_list_table_and_json(db: Path) -> None:
    result = run("list")
    assert result.exit_code == 0, result.output
    assert "5 dead letters" in result.stdout
    for text in ("handler-error", "expired", "rejected-source", "invalid-letter", "[malformed]"):
        assert text in result.stdout
    as_json = json.loads(run("list", "--json").stdout)
    assert [x["reason"] for x in as_json] == [
        "handler-error",
        "expired",
        "rejected-source",
        "max-deliveries",
        "invalid-letter",
    ]
    assert as_json[0]["receivedAt"] == "1970-01-01T00:16:40.000Z"
    only = json.loads(run("list", "--reason", "expired", "--json").stdout)
    assert [x["id"] for x in only] == [2]
    assert run("list", "--reason", "nope").stdout.strip() == "no dead letters with reason 'nope'"


def test_db_option_beats_the_environment(db: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    result = run("list", "--db", str(other), "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []
    assert not other.exists()  # listing does not create a store


def test_show(db: Path) -> None:
    result = run("show", "1")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["reason"] == "handler-error"
    assert shown["payload"]["message"]["payload"] == {"job": "handler-error"}
    missing = run("show", "99")
    assert missing.exit_code == 1
    assert "error: no dead letter with id 99" in missing.stderr
    assert run("show", "x").exit_code == 2


def test_replay_one_marks_it(db: Path) -> None:
    result = run("replay", "1", "--bus", "memory://")
    assert result.exit_code == 0, result.output
    assert "replayed 1 on plugin/worker/request as" in result.stdout
    assert "(retryCount 1)" in result.stdout
    with DeadLetterStore(db) as store:
        assert store.get(1).replay_count == 1


def test_replay_all_reports_the_bad_ones_and_keeps_them(db: Path) -> None:
    result = run("replay", "--all")
    assert result.exit_code == 1
    assert result.stdout.count("replayed ") == 3
    assert "dead letter 4 cannot be replayed: the original message is malformed" in result.stderr
    assert "dead letter 5 cannot be replayed: the letter carries no original" in result.stderr
    with DeadLetterStore(db) as store:
        assert [x.replay_count for x in store.list()] == [1, 1, 1, 0, 0]
    again = run("replay", "--all", "--reason", "expired")
    assert again.stdout.strip() == "nothing to replay"


def test_replay_needs_one_id_or_all(db: Path) -> None:
    assert run("replay").exit_code == 2
    assert run("replay", "1", "--all").exit_code == 2
    assert "--reason goes with --all" in run("replay", "1", "--reason", "x").stderr


def test_purge_with_filters_and_confirmation(db: Path) -> None:
    refused = runner.invoke(app, ["dlq", "purge", "--reason", "expired"], input="n\n")
    assert refused.exit_code == 1
    assert "Delete 1 dead letters?" in refused.stdout
    result = run("purge", "--before", "1970-01-01T00:50:00Z", "--yes")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "purged 2 dead letters"  # received at 1000 and 2000 s
    confirmed = runner.invoke(app, ["dlq", "purge"], input="y\n")
    assert "purged 3 dead letters" in confirmed.stdout
    assert run("purge", "--yes").stdout.strip() == "nothing to purge"


def test_purge_bad_time(db: Path) -> None:
    result = run("purge", "--before", "yesterday", "--yes")
    assert result.exit_code == 2
    assert "--before: not an ISO 8601 time: 'yesterday'" in result.stderr


def test_missing_and_corrupt_databases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "none.db"
    assert run("list", "--db", str(missing)).stdout.strip() == "no dead letters"
    result = run("show", "1", "--db", str(missing))
    assert result.exit_code == 1
    assert f"no dead-letter store at {missing}" in result.stderr
    assert run("purge", "--db", str(missing), "--yes").stdout.strip() == "nothing to purge"
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"garbage" * 1000)
    for command in (["list"], ["show", "1"], ["replay", "--all"], ["purge", "--yes"]):
        result = run(*command, "--db", str(corrupt))
        assert result.exit_code == 1, command
        assert "is damaged or not SQLite" in result.stderr


def test_default_path_is_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JIRA_ORCHESTRATOR_DLQ", raising=False)
    monkeypatch.chdir(tmp_path)
    with DeadLetterStore(tmp_path / ".jira-orchestrator" / "dead-letters.db") as store:
        store.add(letter("expired"))
    assert [x["reason"] for x in json.loads(run("list", "--json").stdout)] == ["expired"]
