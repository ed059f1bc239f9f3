"""Corrections exported and imported as JSON Lines: the store API and the commands."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jira_orchestrator.cli._app import app
from jira_orchestrator.routing import DecisionStore, Router, RoutingRequest
from jira_orchestrator.routing.corrections import (
    CorrectionProblem,
    correction_line,
    read_corrections,
    write_corrections,
)
from jira_orchestrator.routing.store import Correction

runner = CliRunner()
TEXT = "Write a README for the new service"


def issue(request_id: str, text: str = TEXT) -> RoutingRequest:
    return RoutingRequest(
        text=text,
        files=("docs/index.md",),
        labels=("docs",),
        components=("Portal",),
        issue_type="Story",
        issue_key=request_id,
        request_id=request_id,
    )


def test_export_then_import_keeps_the_whole_request_and_its_time(tmp_path: Path) -> None:
    now = [1_800_000_000.25]
    with DecisionStore(tmp_path / "a.db", clock=lambda: now[0]) as source:
        source.record_correction(issue("DOC-1"), "api-forge")
        now[0] += 60
        source.record_correction(issue("DOC-2", "Fix the Helm chart"), "cloud-ops")
        out = io.StringIO()
        assert write_corrections(source.corrections(), out) == 2
        exported = source.corrections()
    lines = out.getvalue().splitlines()
    first = json.loads(lines[0])
    assert first["kind"] == "routing-correction"
    assert first["version"] == 1
    assert first["labels"] == ["docs"]
    assert first["issueType"] == "Story"
    assert first["createdAt"] == "2027-01-15T08:00:00.250+00:00"
    read = list(read_corrections(lines, "x.jsonl"))
    assert read == exported
    with DecisionStore(tmp_path / "b.db") as target:
        assert target.import_corrections(read) == (2, 0, 0)
        assert target.corrections() == exported
        assert target.corrections()[0].request() == issue("DOC-1")
        assert target.import_corrections(read) == (0, 0, 2)  # twice: nothing changes
        assert target.corrections() == exported


def test_the_newer_of_two_corrections_of_a_request_wins(tmp_path: Path) -> None:
    now = [1000.0]
    with DecisionStore(tmp_path / "a.db", clock=lambda: now[0]) as store:
        store.record_correction(issue("DOC-1"), "api-forge")
        older = Correction("DOC-1", "doc-scribe", TEXT, (), 500.0)
        newer = Correction("DOC-1", "cloud-ops", TEXT, (), 1500.0)
        assert store.import_corrections([older], dry_run=True) == (0, 0, 1)
        assert store.import_corrections([older]) == (0, 0, 1)
        assert store.correction_of("DOC-1").plugin == "api-forge"  # type: ignore[union-attr]
        assert store.import_corrections([newer], dry_run=True) == (0, 1, 0)
        assert store.correction_of("DOC-1").plugin == "api-forge"  # type: ignore[union-attr]
        assert store.import_corrections([newer]) == (0, 1, 0)
        assert store.correction_of("DOC-1").plugin == "cloud-ops"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{broken", "invalid JSON"),
        ("[1, 2]", "line: expected a JSON object, not a list"),
        ('{"kind": "decision"}', "kind: expected 'routing-correction', not 'decision'"),
        ('{"kind": "routing-correction", "version": 9}', "version: this release reads version 1"),
        ('{"kind": "routing-correction", "version": 1, "id": "A"}', "plugin: expected"),
        ('{"kind": "routing-correction", "version": 1, "plugin": "p"}', "id: expected"),
        (
            '{"kind": "routing-correction", "version": 1, "plugin": "p", "id": "A",'
            ' "text": "x", "createdAt": "yesterday"}',
            "createdAt: expected an ISO 8601 time, not 'yesterday'",
        ),
        (
            '{"kind": "routing-correction", "version": 1, "plugin": "p", "id": "A",'
            ' "text": "", "createdAt": "2026-01-01T00:00:00Z"}',
            "text: empty request",
        ),
        (
            '{"kind": "routing-correction", "version": 1, "plugin": "p", "id": "A",'
            ' "text": "x", "files": [3], "createdAt": "2026-01-01T00:00:00Z"}',
            "files[0]: expected a string, not int",
        ),
        (
            '{"kind": "routing-correction", "version": 1, "plugin": "p", "id": "A",'
            ' "text": "x", "issueType": 3, "createdAt": "2026-01-01T00:00:00Z"}',
            "issueType: expected text or null, not a number",
        ),
    ],
)
def test_a_bad_line_is_named_and_the_others_still_read(line: str, reason: str) -> None:
    good = json.dumps(correction_line(Correction("DOC-1", "doc-scribe", TEXT, (), 1_700_000_000.0)))
    found = list(read_corrections(["", good, line, good], "in.jsonl"))
    assert isinstance(found[0], Correction)
    assert isinstance(found[2], Correction)
    problem = found[1]
    assert isinstance(problem, CorrectionProblem)
    assert str(problem).startswith("in.jsonl:3: ")
    assert reason in problem.reason


def test_a_time_without_a_zone_is_utc() -> None:
    line = json.dumps(
        {
            "kind": "routing-correction",
            "version": 1,
            "id": "A",
            "plugin": "p",
            "text": "x",
            "createdAt": "2026-01-01T00:00:00",
        }
    )
    (found,) = read_corrections([line])
    assert isinstance(found, Correction)
    assert found.created_at == 1_767_225_600.0


def test_commands_carry_corrections_to_another_database_and_the_router_learns(
    ecosystem: Path, tmp_path: Path
) -> None:
    source, target, exported = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "c.jsonl"
    routed = runner.invoke(
        app, ["route", TEXT, "--plugins", str(ecosystem), "--db", str(source), "--id", "DOC-1"]
    )
    assert routed.exit_code == 0, routed.output
    result = runner.invoke(
        app,
        [
            "decisions",
            "correct",
            "DOC-1",
            "api-forge",
            "--db",
            str(source),
            "--plugins",
            str(ecosystem),
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["decisions", "export-corrections", "--db", str(source), "--output", str(exported)]
    )
    assert result.exit_code == 0, result.output
    assert "1 corrections exported" in result.stderr
    assert json.loads(exported.read_text())["plugin"] == "api-forge"
    result = runner.invoke(
        app, ["decisions", "import-corrections", str(exported), "--db", str(target)]
    )
    assert result.exit_code == 0, result.output
    assert "imported 1 corrections" in result.stdout
    assert "(1 new, 0 replacing older ones)" in result.stdout
    router = Router.from_directory(ecosystem, store=target)  # another environment
    try:
        assert router.route(TEXT).primary_plugin == "api-forge"  # it learned from them
    finally:
        router.close()


def test_export_to_standard_output_and_import_from_standard_input(
    ecosystem: Path, tmp_path: Path
) -> None:
    with DecisionStore(tmp_path / "a.db") as store:
        store.record_correction(issue("DOC-1"), "api-forge")
    result = runner.invoke(app, ["decisions", "export-corrections", "--db", str(tmp_path / "a.db")])
    assert result.exit_code == 0, result.output
    exported = result.stdout
    assert json.loads(exported)["id"] == "DOC-1"
    result = runner.invoke(
        app,
        ["decisions", "import-corrections", "-", "--db", str(tmp_path / "b.db"), "--dry-run"],
        input=exported,
    )
    assert result.exit_code == 0, result.output
    assert "would import 1 corrections" in result.stdout
    with DecisionStore(tmp_path / "b.db") as store:
        assert store.corrections() == []  # a dry run writes nothing


def test_import_names_bad_lines_imports_the_rest_and_exits_1(
    ecosystem: Path, tmp_path: Path
) -> None:
    good = json.dumps(correction_line(Correction("DOC-1", "ghost-plugin", TEXT, (), 1e9)))
    file = tmp_path / "in.jsonl"
    file.write_text(f"{good}\n{{broken\n")
    result = runner.invoke(
        app,
        [
            "decisions",
            "import-corrections",
            str(file),
            "--db",
            str(tmp_path / "b.db"),
            "--plugins",
            str(ecosystem),
        ],
    )
    assert result.exit_code == 1
    assert f"{file}:2: invalid JSON" in result.stderr
    assert "1 corrections name plugins not in" in result.stderr
    assert "ghost-plugin" in result.stderr
    assert "imported 1 corrections" in result.stdout
    assert "1 bad lines skipped" in result.stdout
    with DecisionStore(tmp_path / "b.db") as store:
        assert [c.plugin for c in store.corrections()] == ["ghost-plugin"]


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"\x00\x01", "not a text file"), (b"\xff\xfe{", "not UTF-8")],
)
def test_an_unreadable_file_exits_2_and_writes_nothing(
    tmp_path: Path, content: bytes, message: str
) -> None:
    file = tmp_path / "in.jsonl"
    file.write_bytes(content)
    db = tmp_path / "b.db"
    result = runner.invoke(app, ["decisions", "import-corrections", str(file), "--db", str(db)])
    assert result.exit_code == 2
    assert message in result.stderr
    assert not db.exists()
    missing = runner.invoke(
        app, ["decisions", "import-corrections", str(tmp_path / "nope"), "--db", str(db)]
    )
    assert missing.exit_code == 2
    assert "cannot read" in missing.stderr
