"""``route`` and ``decisions`` never end in a traceback: whatever the arguments and
whatever state the files are in, an error is one line and an exit code of the scheme."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from jira_orchestrator.cli._app import app
from jira_orchestrator.routing import DecisionStore, RoutingRequest

runner = CliRunner()
_SUITE = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Databases and batch files in every state a user may hand the commands."""
    found = {
        "missing": tmp_path / "missing.db",
        "directory": tmp_path / "a-directory",
        "text": tmp_path / "notes.txt",
        "empty": tmp_path / "empty.db",
        "foreign": tmp_path / "foreign.db",
        "good": tmp_path / "good.db",
        "damaged": tmp_path / "damaged.db",
        "batch": tmp_path / "in.jsonl",
        "csv": tmp_path / "in.csv",
        "binary": tmp_path / "bin.jsonl",
    }
    found["directory"].mkdir()
    found["text"].write_text("not a database\n" * 200)
    found["empty"].write_bytes(b"")
    connection = sqlite3.connect(found["foreign"])
    connection.execute("CREATE TABLE decisions (a)")
    connection.close()
    with DecisionStore(found["good"]) as store:
        store.save_decision(RoutingRequest.from_text("Write a README", request_id="D-1"), {})
    with DecisionStore(found["damaged"]) as store:
        store.save_decision(RoutingRequest.from_text("Helm chart", request_id="D-2"), {})
    connection = sqlite3.connect(found["damaged"], isolation_level=None)
    connection.execute("UPDATE decisions SET decision = '[1', files = 'x', created_at = 'y'")
    connection.close()
    found["batch"].write_text('{"id": "a", "text": "Helm chart"}\n{broken\n')
    found["csv"].write_text('Summary,Labels\n"never closed,x\nREADME,docs\n')
    found["binary"].write_bytes(b"\x00\xff" * 64)
    return found


_states = st.sampled_from(
    [
        "missing",
        "directory",
        "text",
        "empty",
        "foreign",
        "good",
        "damaged",
        "batch",
        "csv",
        "binary",
    ]
)
_numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["0", "1", "-1", "1e9", "nan", "", "99999999999999999999"]),
)
_words = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["D-1", "D-2", "doc-scribe", "90d", "0s", "2020-01-01", "-", "--"]),
)


def _check(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{args}: {result.exception!r}"
    )
    assert result.exit_code in (0, 1, 2), (args, result.exit_code, result.output)
    assert "Traceback" not in result.output


@settings(max_examples=60, deadline=None, suppress_health_check=_SUITE)
@given(data=st.data())
def test_decisions_commands_exit_cleanly_whatever_the_input(
    files: dict[str, Path], ecosystem: Path, data: st.DataObject
) -> None:
    command = data.draw(st.sampled_from(["list", "show", "correct", "outcome", "stats", "prune"]))
    args = ["decisions", command]
    if command in ("show", "correct", "outcome"):
        args.append(data.draw(_words))
    if command in ("correct", "outcome"):
        args += [data.draw(_words), "--plugins", str(ecosystem)]
    if command == "outcome":
        args.append(data.draw(st.sampled_from(["--success", "--failure"])))
    if command == "list":
        args += ["--limit", data.draw(_numbers)]
    if command == "prune":
        args += data.draw(
            st.sampled_from([["--older-than"], ["--before"], ["--dry-run", "--older-than"]])
        )
        args.append(data.draw(st.one_of(_words, _numbers)))
    args += ["--db", str(files[data.draw(_states)])]
    _check(args)


@settings(max_examples=30, deadline=None, suppress_health_check=_SUITE)
@given(data=st.data())
def test_route_exits_cleanly_whatever_the_input(
    files: dict[str, Path], ecosystem: Path, data: st.DataObject
) -> None:
    args = ["route", "--plugins", str(ecosystem)]
    if data.draw(st.booleans()):
        args += [data.draw(_words), "--id", data.draw(_words)]
    else:
        args += ["--batch", str(files[data.draw(_states)])]
    if data.draw(st.booleans()):
        args += ["--db", str(files[data.draw(_states)])]
    if data.draw(st.booleans()):
        args += ["--retention", data.draw(st.one_of(_words, _numbers))]
    _check(args)
