"""``jira-orchestrator decisions ...`` and ``route --id``, through the real application."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jira_orchestrator.cli._app import app
from jira_orchestrator.routing import DecisionStore

runner = CliRunner()
TEXT = "Write a README for the new service"


def route(ecosystem: Path, db: Path, text: str, request_id: str) -> dict[str, object]:
    result = runner.invoke(
        app,
        ["route", text, "--plugins", str(ecosystem), "--db", str(db), "--id", request_id, "--json"],
    )
    assert result.exit_code == 0, result.output
    document: dict[str, object] = json.loads(result.stdout)
    return document


def decisions(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["decisions", *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_correction_from_the_shell_sways_the_next_route_with_the_same_db(
    ecosystem: Path, tmp_path: Path
) -> None:
    db = tmp_path / "routing.db"
    first = route(ecosystem, db, TEXT, "DOC-1")
    assert first["requestId"] == "DOC-1"
    assert first["primaryPlugin"] == "doc-scribe"
    code, out, _ = decisions(
        "correct", "DOC-1", "api-forge", "--db", str(db), "--plugins", str(ecosystem)
    )
    assert code == 0
    assert out.strip() == "DOC-1: doc-scribe -> api-forge"
    again = route(ecosystem, db, TEXT, "DOC-2")
    assert again["primaryPlugin"] == "api-forge"

    code, out, _ = decisions("list", "--db", str(db), "--json")
    entries = [json.loads(line) for line in out.splitlines()]
    assert [e["id"] for e in entries] == ["DOC-2", "DOC-1"]
    assert entries[1]["correctedTo"] == "api-forge"
    assert entries[1]["primaryPlugin"] == "doc-scribe"
    code, out, _ = decisions("stats", "--db", str(db), "--json")
    report = json.loads(out)
    assert report["decisions"] == 2
    assert report["corrected"] == 1
    assert report["confusions"] == [{"routedTo": "doc-scribe", "shouldBe": "api-forge", "count": 1}]


def test_outcomes_are_recorded_shown_and_counted(ecosystem: Path, tmp_path: Path) -> None:
    db = tmp_path / "routing.db"
    route(ecosystem, db, TEXT, "DOC-1")
    for flag in ("--failure", "--success"):
        code, out, _ = decisions(
            "outcome", "DOC-1", "doc-scribe", flag, "--db", str(db), "--plugins", str(ecosystem)
        )
        assert code == 0, out
    code, out, _ = decisions("show", "DOC-1", "--db", str(db), "--json")
    shown = json.loads(out)
    assert [(o["plugin"], o["success"]) for o in shown["outcomes"]] == [
        ("doc-scribe", False),
        ("doc-scribe", True),
    ]
    assert shown["decision"]["primaryPlugin"] == "doc-scribe"
    code, out, _ = decisions("show", "DOC-1", "--db", str(db))
    assert "doc-scribe failed" in out
    assert "doc-scribe succeeded" in out
    code, out, _ = decisions("stats", "--db", str(db))
    assert "doc-scribe: 1 succeeded, 1 failed" in out
    code, out, _ = decisions("list", "--db", str(db))
    assert "doc-scribe:failed doc-scribe:ok" in out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["list"], "give --db FILE"),
        (["list", "--db", "{missing}"], "no routing database at"),
        (["show", "NOPE-1", "--db", "{db}"], "no decision for request 'NOPE-1'"),
        (["correct", "NOPE-1", "api-forge", "--db", "{db}"], "no decision for request"),
        (["correct", "DOC-1", "no-such-plugin", "--db", "{db}"], "unknown plugin 'no-such-plugin'"),
        (["outcome", "DOC-1", "doc-scribe", "--db", "{db}"], "say --success or --failure"),
        (["correct", "DOC-1", "api-forge", "--db", "{db}", "--plugins", "{missing}"], "does not"),
        (["list", "--db", "{db}", "--limit", "0"], "greater than or equal to 1"),
    ],
)
def test_bad_input_exits_2_and_says_what(
    ecosystem: Path, tmp_path: Path, args: list[str], says: str
) -> None:
    db = tmp_path / "routing.db"
    route(ecosystem, db, TEXT, "DOC-1")
    filled = [a.format(db=db, missing=tmp_path / "missing") for a in args]
    if filled[0] in ("correct", "outcome") and "--plugins" not in filled:
        filled += ["--plugins", str(ecosystem)]
    code, _, err = decisions(*filled)
    assert code == 2
    assert says in err
    with DecisionStore(db) as store:  # nothing was recorded by a refused command
        assert store.corrections() == []
        assert store.outcomes() == []


def test_an_empty_database_lists_nothing(tmp_path: Path) -> None:
    db = tmp_path / "routing.db"
    DecisionStore(db).close()
    assert decisions("list", "--db", str(db)) == (0, "no decisions\n", "")
    code, out, _ = decisions("stats", "--db", str(db))
    assert code == 0
    assert out.startswith("0 decisions, 0 corrected")


def test_an_id_is_for_one_request_not_a_batch(ecosystem: Path, tmp_path: Path) -> None:
    batch = tmp_path / "in.jsonl"
    batch.write_text('{"id": "A", "text": "Write a README"}\n')
    result = runner.invoke(
        app, ["route", "--plugins", str(ecosystem), "--batch", str(batch), "--id", "X"]
    )
    assert result.exit_code == 2
    assert "not both" in result.stderr


@pytest.mark.parametrize("command", ["list", "stats", "show"])
def test_another_programs_database_is_a_clean_error(tmp_path: Path, command: str) -> None:
    db = tmp_path / "f.db"
    connection = sqlite3.connect(db)
    connection.execute("CREATE TABLE decisions (a)")
    connection.close()
    args = [command, *(["X-1"] if command == "show" else []), "--db", str(db)]
    result = runner.invoke(app, ["decisions", *args])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr == (
        f"error: {db} is an SQLite file but not a routing store (tables: decisions)\n"
    )


@pytest.mark.parametrize(
    "limit", ["99999999999999999999", str(2**63), "1000001", "-99999999999999999999"]
)
def test_a_limit_out_of_range_exits_2_and_says_so(tmp_path: Path, limit: str) -> None:
    db = tmp_path / "routing.db"
    DecisionStore(db).close()
    result = runner.invoke(app, ["decisions", "list", "--db", str(db), "--limit", limit])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "--limit" in result.stderr


@pytest.mark.parametrize("command", ["correct", "outcome"])
def test_a_locked_database_is_a_clean_error(
    ecosystem: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    db = tmp_path / "routing.db"
    route(ecosystem, db, TEXT, "DOC-1")
    monkeypatch.setattr("jira_orchestrator.cli.route.STORE_TIMEOUT", 0.2)
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        extra = ["--success"] if command == "outcome" else []
        result = runner.invoke(
            app,
            [
                *("decisions", command, "DOC-1", "api-forge", *extra),
                *("--db", str(db), "--plugins", str(ecosystem)),
            ],
        )
    finally:
        holder.close()
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"routing store {db} is locked by another process" in result.stderr


def test_prune_drops_old_decisions_keeps_corrections_and_says_how_many(
    ecosystem: Path, tmp_path: Path
) -> None:
    db = tmp_path / "routing.db"
    route(ecosystem, db, TEXT, "OLD-1")
    route(ecosystem, db, TEXT, "OLD-2")
    route(ecosystem, db, TEXT, "NEW-1")
    code, _, _ = decisions(
        "correct", "OLD-2", "api-forge", "--db", str(db), "--plugins", str(ecosystem)
    )
    assert code == 0
    connection = sqlite3.connect(db, isolation_level=None)  # make OLD-1 and OLD-2 old
    connection.execute("UPDATE decisions SET created_at = 1000 WHERE request_id LIKE 'OLD-%'")
    connection.close()
    code, out, _ = decisions("prune", "--older-than", "30d", "--db", str(db), "--dry-run")
    assert (code, out.strip()) == (0, "would prune 2 decisions and 0 outcomes from " + str(db))
    code, out, _ = decisions("prune", "--before", "2001-01-01T00:00:00", "--db", str(db))
    assert code == 0
    assert out.startswith(f"pruned 2 decisions and 0 outcomes from {db}")
    with DecisionStore(db) as store:
        assert [d.request_id for d in store.recent_decisions()] == ["NEW-1"]
        assert [c.request_id for c in store.corrections()] == ["OLD-2"]
    code, out, _ = decisions("stats", "--db", str(db), "--json")
    assert json.loads(out)["corrected"] == 0  # the corrected decision is gone


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ([], "give --older-than DURATION or --before TIME"),
        (["--older-than", "1d", "--before", "2020-01-01"], "not both"),
        (["--older-than", "soon"], "not a duration"),
        (["--older-than", "0d"], "more than zero"),
        (["--older-than", "99999999999999999999d"], "not a duration"),
        (["--older-than", "999999w"], "at most 100 years"),
        (["--before", "yesterday"], "not an ISO 8601 time"),
        (["--before", "99999-01-01"], "not an ISO 8601 time"),
    ],
)
def test_prune_refuses_a_bad_cut_and_changes_nothing(
    ecosystem: Path, tmp_path: Path, args: list[str], says: str
) -> None:
    db = tmp_path / "routing.db"
    route(ecosystem, db, TEXT, "DOC-1")
    code, _, err = decisions("prune", *args, "--db", str(db))
    assert code == 2
    assert says in err
    with DecisionStore(db) as store:
        assert store.count_decisions() == 1


def test_route_with_a_retention_prunes_the_database(ecosystem: Path, tmp_path: Path) -> None:
    db = tmp_path / "routing.db"
    route(ecosystem, db, TEXT, "OLD-1")
    connection = sqlite3.connect(db, isolation_level=None)
    connection.execute("UPDATE decisions SET created_at = 1000")
    connection.close()
    result = runner.invoke(
        app,
        [
            *("route", TEXT, "--plugins", str(ecosystem), "--db", str(db)),
            *("--id", "NEW-1", "--retention", "90d"),
        ],
    )
    assert result.exit_code == 0, result.output
    with DecisionStore(db) as store:
        assert [d.request_id for d in store.recent_decisions()] == ["NEW-1"]
    bad = runner.invoke(app, ["route", TEXT, "--plugins", str(ecosystem), "--retention", "9d"])
    assert bad.exit_code == 2
    assert "--retention goes with --db" in bad.stderr
