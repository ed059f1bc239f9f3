"""``jira-orchestrator route``, through a test-local typer app (the lead registers it)."""

from __future__ import annotations

import json
import os
import select
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from jira_orchestrator.cli.route import PLUGINS_ENV, route
from jira_orchestrator.routing import RoutingError, RoutingRequest

app = typer.Typer()
app.command()(route)


@app.callback()
def _root() -> None:
    """Test root."""


runner = CliRunner()


def test_route_text_prints_the_primary_plugin(ecosystem: Path) -> None:
    result = runner.invoke(app, ["route", "Write a README", "--plugins", str(ecosystem)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("doc-scribe")


def test_route_json_and_explain(ecosystem: Path) -> None:
    result = runner.invoke(
        app,
        ["route", "fix this", "--file", "charts/Chart.yaml", "--plugins", str(ecosystem), "--json"],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["primaryPlugin"] == "cloud-ops"
    assert document["classification"]["technologies"][:2] == ["helm", "chart"]
    explained = runner.invoke(
        app, ["route", "Write a README", "--plugins", str(ecosystem), "--explain"]
    )
    assert "goes to doc-scribe" in explained.stdout
    both = runner.invoke(
        app, ["route", "Write a README", "--plugins", str(ecosystem), "--json", "--explain"]
    )
    assert "goes to doc-scribe" in json.loads(both.stdout)["explanation"]


def test_plugins_default_from_the_environment(ecosystem: Path) -> None:
    result = runner.invoke(app, ["route", "Write a README"], env={PLUGINS_ENV: str(ecosystem)})
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("doc-scribe")


def test_bad_input_exits_2_and_says_what(ecosystem: Path, tmp_path: Path) -> None:
    missing = runner.invoke(app, ["route", "x", "--plugins", str(tmp_path / "nope")])
    assert missing.exit_code == 2
    assert "does not exist" in missing.stderr
    assert "nope" in missing.stderr
    empty = runner.invoke(app, ["route", "   ", "--plugins", str(ecosystem)])
    assert empty.exit_code == 2
    assert "empty request" in empty.stderr
    nothing = runner.invoke(app, ["route", "--plugins", str(ecosystem)])
    assert nothing.exit_code == 2
    assert "TEXT" in nothing.stderr
    unreadable = runner.invoke(
        app, ["route", "--plugins", str(ecosystem), "--batch", str(tmp_path / "none.jsonl")]
    )
    assert unreadable.exit_code == 2
    assert "none.jsonl: batch file not found" in unreadable.stderr


def test_batch_json_lines_in_input_order(ecosystem: Path, tmp_path: Path) -> None:
    batch = tmp_path / "in.jsonl"
    batch.write_text(
        '{"id": "r1", "text": "Write a getting started guide"}\n'
        "{broken\n"
        '{"id": "r2", "text": "Helm chart for the API", "files": ["Chart.yaml"]}\n'
        '{"id": "r3", "text": "React signup form"}\n'
    )
    result = runner.invoke(
        app, ["route", "--plugins", str(ecosystem), "--batch", str(batch), "--json"]
    )
    assert result.exit_code == 1  # one bad line, the rest routed
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(d["id"], d["primaryPlugin"]) for d in lines] == [
        ("r1", "doc-scribe"),
        ("r2", "cloud-ops"),
        ("r3", "pixel-kit"),
    ]
    assert set(lines[0]) == {
        "id",
        "primaryPlugin",
        "fallbackPlugins",
        "confidence",
        "executionStrategy",
        "scores",
    }
    assert all(0.0 < d["confidence"] <= 1.0 for d in lines)  # on every line
    assert {"plugin", "score"} == set(lines[0]["scores"][0])
    assert f"{batch}:2: invalid JSON" in result.stderr
    assert "3 requests routed, 1 bad lines skipped" in result.stderr


def test_batch_jira_csv(ecosystem: Path, tmp_path: Path) -> None:
    batch = tmp_path / "export.csv"
    batch.write_text(
        "Issue key,Summary,Description,Labels,Component/s\n"
        "DOC-1,Guide,Write the onboarding guide and README,docs,\n"
        "OPS-2,Cluster,Terraform and Kubernetes cluster,,Infra\n"
    )
    result = runner.invoke(app, ["route", "--plugins", str(ecosystem), "--batch", str(batch)])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["primaryPlugin"] for line in result.stdout.splitlines()] == [
        "doc-scribe",
        "cloud-ops",
    ]


@pytest.mark.parametrize("flag", ["--file"])
def test_text_and_batch_together_are_refused(ecosystem: Path, tmp_path: Path, flag: str) -> None:
    batch = tmp_path / "in.jsonl"
    batch.write_text('{"text": "x"}\n')
    result = runner.invoke(app, ["route", "x", "--plugins", str(ecosystem), "--batch", str(batch)])
    assert result.exit_code == 2
    assert "not both" in result.stderr


def test_decisions_are_persisted_with_db(ecosystem: Path, tmp_path: Path) -> None:
    db = tmp_path / "decisions.db"
    result = runner.invoke(
        app, ["route", "Write a README", "--plugins", str(ecosystem), "--db", str(db)]
    )
    assert result.exit_code == 0, result.output
    from jira_orchestrator.routing import DecisionStore

    with DecisionStore(db) as store:
        assert store.count_decisions() == 1


def test_a_broken_quote_in_a_csv_batch_costs_one_row_and_is_reported(
    ecosystem: Path, tmp_path: Path
) -> None:
    batch = tmp_path / "quote_early.csv"
    rows = ["Issue key,Summary,Description"]
    rows += [f"K-{i},Write the README {i},docs" for i in range(1, 51)]
    rows[3] = 'K-3,"Write the README 3,docs'  # line 4 opens a quote it never closes
    batch.write_text("\n".join(rows) + "\n")
    result = runner.invoke(app, ["route", "--plugins", str(ecosystem), "--batch", str(batch)])
    assert result.exit_code == 1
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == [
        f"K-{i}" for i in range(1, 51) if i != 3
    ]
    assert f"{batch}:4: unterminated quote" in result.stderr
    assert "49 requests routed, 1 bad lines skipped" in result.stderr


def test_a_batch_streams_its_first_decision_before_the_file_ends(
    ecosystem: Path, tmp_path: Path
) -> None:
    fifo = tmp_path / "batch.jsonl"
    os.mkfifo(fifo)
    command = [sys.executable, "-m", "jira_orchestrator.cli", "route", "--plugins"]
    process = subprocess.Popen(
        [*command, str(ecosystem), "--batch", str(fifo)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        with fifo.open("wb") as out:  # returns once the command opened the batch
            out.write(b'{"id": "r1", "text": "Write a getting started guide"}\n')
            out.flush()
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], 60)
            assert ready, "no decision while the batch is still open"
            first = json.loads(process.stdout.readline())
            out.write(b'{"id": "r2", "text": "Helm chart for the API"}\n')
        rest, errors = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    assert (first["id"], first["primaryPlugin"]) == ("r1", "doc-scribe")
    assert [json.loads(line)["id"] for line in rest.splitlines()] == ["r2"]
    assert process.returncode == 0, errors


@pytest.fixture
def locked_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A routing database another connection holds an exclusive lock on (the command
    waits 0.2 s for it instead of 5)."""
    monkeypatch.setattr("jira_orchestrator.cli.route.STORE_TIMEOUT", 0.2)
    db = tmp_path / "locked.db"
    from jira_orchestrator.routing import DecisionStore

    DecisionStore(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield db
    finally:
        holder.close()


@pytest.mark.parametrize("how", ["text", "batch"])
def test_a_locked_database_is_a_clean_error(
    ecosystem: Path, tmp_path: Path, locked_db: Path, how: str
) -> None:
    batch = tmp_path / "in.jsonl"
    batch.write_text('{"id": "a", "text": "Helm chart"}\n{"id": "b", "text": "README"}\n')
    given = ["Helm chart"] if how == "text" else ["--batch", str(batch)]
    result = runner.invoke(
        app, ["route", *given, "--plugins", str(ecosystem), "--db", str(locked_db)]
    )
    assert result.exit_code == 1
    assert not isinstance(result.exception, RoutingError)
    assert result.stderr.startswith("error: routing store ")
    assert str(locked_db) in result.stderr
    assert "locked by another process" in result.stderr
    assert "Traceback" not in result.output


def test_a_store_failing_during_a_batch_stops_it_and_says_where(
    ecosystem: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jira_orchestrator.routing import DecisionStore, RoutingStoreError

    saved: list[str] = []

    def save(self: DecisionStore, request: RoutingRequest, decision: dict[str, object]) -> None:
        if len(saved) == 2:
            raise RoutingStoreError(f"routing store {self.path}: disk full: writing failed")
        saved.append(request.request_id)

    monkeypatch.setattr(DecisionStore, "save_decision", save)
    batch = tmp_path / "in.jsonl"
    batch.write_text("".join(f'{{"id": "r{i}", "text": "README {i}"}}\n' for i in range(1, 6)))
    db = tmp_path / "routing.db"
    result = runner.invoke(
        app, ["route", "--batch", str(batch), "--plugins", str(ecosystem), "--db", str(db)]
    )
    assert result.exit_code == 1
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["r1", "r2"]
    assert "disk full" in result.stderr
    assert f"stopped at {batch}:3 after 2 requests routed" in result.stderr


def test_another_programs_database_is_refused_and_left_alone(
    ecosystem: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE foo (a)")
    connection.close()
    result = runner.invoke(
        app, ["route", "Helm chart", "--plugins", str(ecosystem), "--db", str(other)]
    )
    assert result.exit_code == 1
    assert "is an SQLite file but not a routing store" in result.stderr
    with sqlite3.connect(other) as connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master")]
    connection.close()
    assert tables == ["foo"]
