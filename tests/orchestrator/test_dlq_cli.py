"""``jira-orchestrator dlq list|show|replay|purge`` on a test-local app."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from jira_orchestrator.cli.dlq import dlq_app
from jira_orchestrator.messagebus import Message, get_message_bus, reset_message_bus
from jira_orchestrator.orchestrator import DEFAULT_DLQ_PATH, DeadLetterStore, OrchestratorFiles

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
    # the plugins whose rights replays are checked against: "sender" may call "worker"
    manifest = tmp_path / "plugins" / "sender" / ".claude-plugin" / "plugin.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(
        json.dumps(
            {
                "name": "sender",
                "version": "1.0.0",
                "description": "sends work to worker",
                "routing": {"canRouteTo": ["worker"]},
            }
        )
    )
    monkeypatch.setenv("JIRA_ORCHESTRATOR_PLUGINS", str(tmp_path / "plugins"))
    with DeadLetterStore(path) as store:
        store.add(letter("handler-error"), received_at=1_000.0, sender="sender")
        store.add(letter("expired"), received_at=2_000.0, sender="sender")
        store.add(letter("rejected-source"), received_at=3_000.0, sender="sender")
        store.add(
            letter("max-deliveries", topic="plugin//broken"), received_at=4_000.0, sender="sender"
        )
        store.add("garbage", received_at=5_000.0, sender="sender")
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
    DeadLetterStore(other).close()
    result = run("list", "--db", str(other), "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


def test_show(db: Path) -> None:
    result = run("show", "1")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["reason"] == "handler-error"
    assert shown["payload"]["message"]["payload"] == {"job": "handler-error"}
    missing = run("show", "99")
    assert missing.exit_code == 2
    assert "error: no dead letter with id 99" in missing.stderr
    assert run("show", "x").exit_code == 2


@pytest.mark.parametrize("ident", ["99999999999999999999999", "-99999999999999999999999", "0"])
def test_show_or_replay_an_id_out_of_range_is_bad_input(db: Path, ident: str) -> None:
    for command in ("show", "replay"):
        result = run(command, "--", ident)
        assert result.exit_code == 2, result.output
        assert f"no dead letter with id {ident}" in result.stderr
        assert not isinstance(result.exception, OverflowError)


def test_list_cuts_every_free_text_cell(tmp_path: Path) -> None:
    path = tmp_path / "long.db"
    with DeadLetterStore(path) as store:
        huge = letter("x" * 100_000)
        huge["subscriber"] = "s" * 100_000
        huge["message"]["topic"] = "t/" + "t" * 10_000
        store.add(huge)
    result = run("list", "--db", str(path))
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) < 20
    assert "…" in result.stdout


@pytest.fixture
def worker() -> Iterator[list[Message]]:
    """A subscriber of plugin/worker/request in this process, on memory://."""
    got: list[Message] = []
    get_message_bus("worker", "memory://").subscribe("plugin/worker/request", got.append)
    yield got
    reset_message_bus()


def test_replay_one_marks_it(db: Path, worker: list[Message]) -> None:
    result = run("replay", "1", "--bus", "memory://")
    assert result.exit_code == 0, result.output
    assert "replayed 1 on plugin/worker/request as" in result.stdout
    assert "(retryCount 1)" in result.stdout
    with DeadLetterStore(db) as store:
        assert store.get(1).replay_count == 1


def test_replay_all_reports_the_bad_ones_and_keeps_them(db: Path, worker: list[Message]) -> None:
    result = run("replay", "--all")
    assert result.exit_code == 1
    assert result.stdout.count("replayed ") == 3
    assert "dead letter 4 cannot be replayed: the original message is malformed" in result.stderr
    assert "dead letter 5 cannot be replayed: the letter carries no original" in result.stderr
    with DeadLetterStore(db) as store:
        assert [x.replay_count for x in store.list()] == [1, 1, 1, 0, 0]
    again = run("replay", "--all", "--reason", "expired")
    assert again.stdout.strip() == "nothing to replay"


def test_replay_where_nobody_listens_leaves_the_letters_pending(db: Path) -> None:
    result = run("replay", "--all", "--reason", "expired")
    assert result.exit_code == 1
    assert "replayed" not in result.stdout
    errors = " ".join(result.stderr.split())
    assert (
        "dead letter 2 not replayed: nobody subscribes to 'plugin/worker/request' on memory://"
        in errors
    )
    assert "memory:// reaches only this process" in errors
    with DeadLetterStore(db) as store:
        assert store.get(2).replay_count == 0
    again = run("replay", "--all", "--reason", "expired")  # tried again, not skipped
    assert "dead letter 2 not replayed" in again.stderr


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
    for command in (["list"], ["show", "1"], ["replay", "--all"], ["purge", "--yes"]):
        result = run(*command, "--db", str(missing))
        assert result.exit_code == 2, command
        errors = " ".join(result.stderr.split())
        assert f"no dead-letter store at {missing}" in errors
        assert "--db PATH" in errors
    assert not missing.exists()  # looking does not create a store
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"garbage" * 1000)
    for command in (["list"], ["show", "1"], ["replay", "--all"], ["purge", "--yes"]):
        result = run(*command, "--db", str(corrupt))
        assert result.exit_code == 1, command
        assert "is damaged or not SQLite" in result.stderr
    result = run("list", "--db", str(tmp_path))
    assert result.exit_code == 2
    assert f"{tmp_path} is a folder" in result.stderr


def test_default_path_is_where_demo_and_up_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JIRA_ORCHESTRATOR_DLQ", raising=False)
    monkeypatch.chdir(tmp_path)
    with DeadLetterStore(tmp_path / "output" / ".orchestrator" / "dead-letters.db") as store:
        store.add(letter("expired"))
    assert [x["reason"] for x in json.loads(run("list", "--json").stdout)] == ["expired"]
    assert OrchestratorFiles().dead_letters == DEFAULT_DLQ_PATH


def test_replay_acts_only_with_the_letters_proven_senders_rights(
    db: Path, worker: list[Message], monkeypatch: pytest.MonkeyPatch
) -> None:
    with DeadLetterStore(db) as store:
        # a message of sender's to worker, vouched for by a third plugin
        vouched = store.add(letter("handler-error"), sender="bystander")[0]
        unproven = store.add(letter("handler-error"))[0]
    # first, while the worker listens (each run closes the CLI's bus): the operator's word
    taken = run("replay", str(vouched), "--as", "jira-orchestrator")
    assert taken.exit_code == 0, taken.output
    assert f"replayed {vouched} on plugin/worker/request" in taken.stdout
    assert "from jira-orchestrator" in taken.stdout
    refused = run("replay", str(vouched))
    assert refused.exit_code == 1
    assert "sent by 'bystander' but carries a message from 'sender'" in refused.stderr
    assert "--as bystander" in refused.stderr
    assert "nobody is known to have sent it" in run("replay", str(unproven)).stderr
    monkeypatch.delenv("JIRA_ORCHESTRATOR_PLUGINS")
    unchecked = run("replay", "1")  # sender's own message, but its rights are unknown
    assert unchecked.exit_code == 1
    assert "cannot check what 'sender' may publish: give the plugins (--plugins DIR)" in (
        unchecked.stderr
    )
    with DeadLetterStore(db) as store:
        assert [store.get(i).replay_count for i in (1, vouched, unproven)] == [0, 1, 0]
