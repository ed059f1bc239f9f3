"""Every command, given bad input or a damaged file: one line of error, no traceback, and the
exit code of docs/cli.md (2 bad usage or input, 1 failure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from jira_orchestrator.cli import app
from jira_orchestrator.orchestrator import DeadLetterStore

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PLUGINS = str(EXAMPLES / "plugins")

# (command line, exit code); MISSING, FOLDER, GARBAGE, AFILE, DLQ and BADPLUGINS are
# placeholders.
CASES: list[tuple[list[str], int]] = [
    (["version", "extra"], 2),
    (["route"], 2),
    (["route", "helm chart", "--plugins", "MISSING"], 2),
    (["decisions", "list", "--limit", "0"], 2),
    (["decisions", "show"], 2),
    (["decisions", "correct", "x"], 2),
    (["decisions", "outcome", "x"], 2),
    (["decisions", "stats", "--no-such-option"], 2),
    (["decisions", "prune", "--older-than", "soon", "--db", "MISSING"], 2),
    (["decisions", "export-corrections", "--db", "MISSING"], 2),
    (["decisions", "import-corrections", "GARBAGE", "--db", "MISSING"], 2),
    (["plugins", "validate"], 2),
    (["plugins", "validate", "MISSING"], 1),  # a problem found: validate's answer
    (["plugins", "list", "MISSING"], 2),
    (["plugins", "agents", "MISSING", "helm"], 2),
    (["plugins", "schema", "--output", "FOLDER"], 2),
    (["plugins", "new", "bad name", "FOLDER"], 2),
    (["plugins", "new", "good", "AFILE"], 2),
    (["dlq", "list", "--db", "MISSING"], 2),
    (["dlq", "list", "--db", "GARBAGE"], 1),
    (["dlq", "show", "99999999999999999999999", "--db", "DLQ"], 2),
    (["dlq", "show", "7", "--db", "DLQ"], 2),
    (["dlq", "replay", "--db", "DLQ"], 2),
    (["dlq", "replay", "1", "--db", "DLQ"], 1),  # nobody listens on memory://
    (["dlq", "purge", "--before", "soon", "--db", "DLQ", "--yes"], 2),
    (["tasks", "prune", "--older-than", "soon", "--db", "MISSING"], 2),
    (["tasks", "prune", "--db", "GARBAGE", "--yes"], 1),
    (["demo", "--plugins", "MISSING"], 2),
    (["demo", "--plugins", PLUGINS, "--issues", "GARBAGE"], 2),
    (["up", "--plugins", "MISSING"], 2),
    (["up", "--plugins", PLUGINS, "--issues", "GARBAGE"], 2),
    (["jira", "init", "--sandbox", "ftp://nowhere"], 2),
    (["jira", "check", "--config", "MISSING"], 2),
    (["jira", "check", "--config", "GARBAGE"], 2),
    (["jira", "schema", "--output", "FOLDER"], 2),
    (["serve", "--config", "MISSING"], 2),
    (["serve", "--config", "GARBAGE"], 2),
    (["sandbox", "--issues", "MISSING"], 2),
    (["sandbox", "--issues", "GARBAGE"], 2),
    (["sandbox", "--webhook", "not a url"], 2),
    (["nats-config", "MISSING"], 2),
    (["dashboard", "--bus", "memory://", "--tasks", "MISSING"], 2),
    (["dashboard", "--bus", "memory://", "--tasks", "GARBAGE"], 1),
    (["dashboard", "--bus", "memory://", "--output", "MISSING"], 2),
    (["dashboard", "--bus", "memory://", "--http", "0.0.0.0:0"], 2),  # beyond, without a token
    (["dashboard", "--bus", "memory://", "--http", "localhost:http"], 2),
    (["nats-config", PLUGINS, "--output", "FOLDER"], 2),
    (["nats-config", PLUGINS, "--credentials", "AFILE/users.json"], 2),
    (["asyncapi", "--plugins", "MISSING"], 2),
    (["asyncapi", "--plugins", "BADPLUGINS"], 2),
    (["asyncapi", "--format", "xml"], 2),
    (["asyncapi", "--output", "FOLDER"], 2),
    (["nats-config", PLUGINS, "--cluster", "0", "--output", "FOLDER"], 2),
    (["nats-config", PLUGINS, "--cluster", "abc", "--output", "FOLDER"], 2),
    (["nats-config", PLUGINS, "--cluster", "3"], 2),  # one file per node: needs --output
    (["nats-config", PLUGINS, "--cluster", "3", "--hosts", "a,b", "--output", "FOLDER"], 2),
    (["up", "--cluster", "2"], 2),  # even: no majority left when a node is lost
    (["up", "--cluster", "abc"], 2),
]


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group of commands
            found |= _commands(command, (*prefix, name))
        else:
            found.add((*prefix, name))
    return found


def _command_of(args: list[str]) -> tuple[str, ...]:
    return (
        tuple(args[:2])
        if args[0] in ("plugins", "dlq", "decisions", "tasks", "jira")
        else (args[0],)
    )


def test_every_command_has_a_case() -> None:
    group = typer.main.get_command(app)
    assert _commands(group) == {_command_of(args) for args, _ in CASES}


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in (
        "OUTPUT",
        "STATE_DIR",
        "DLQ",
        "TASKS",
        "BUS_URL",
        "TASK_RETENTION",
        "DASHBOARD_TOKEN",
    ):
        monkeypatch.delenv(f"JIRA_ORCHESTRATOR_{name}", raising=False)
    monkeypatch.setenv("DEMO_FAIL", "")
    folder = tmp_path / "folder"
    folder.mkdir()
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x00not json, not SQLite\xff" * 500)
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    dlq = tmp_path / "dlq.db"
    with DeadLetterStore(dlq) as store:
        store.add(
            {
                "reason": "handler-error",
                "subscriber": "w",
                "message": {"topic": "plugin/w/request", "payload": 1},
            }
        )
    bad_plugins = tmp_path / "bad-plugins" / "broken" / ".claude-plugin"
    bad_plugins.mkdir(parents=True)
    (bad_plugins / "plugin.json").write_text('{"name": "Not A Valid Id", "version": 3}')
    return {
        "BADPLUGINS": str(tmp_path / "bad-plugins"),
        "MISSING": str(tmp_path / "missing"),
        "FOLDER": str(folder),
        "GARBAGE": str(garbage),
        "AFILE": str(afile),
        "DLQ": str(dlq),
    }


@pytest.mark.parametrize(
    ("args", "code"), CASES, ids=lambda x: " ".join(x) if isinstance(x, list) else str(x)
)
def test_bad_input_gets_a_clean_error_and_the_documented_code(
    places: dict[str, str], args: list[str], code: int
) -> None:
    line = [places.get(arg, arg) for arg in args]
    line = [places["AFILE"] + arg[5:] if arg.startswith("AFILE/") else arg for arg in line]
    result = CliRunner().invoke(app, line)
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert result.stderr.strip(), "an error says what is wrong"
    assert "error" in result.stderr.lower() or "problem" in result.stderr.lower()
