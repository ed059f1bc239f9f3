"""``jira-orchestrator demo``: the orchestrator and the example plugins, end to end."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from jira_orchestrator.cli import app
from jira_orchestrator.orchestrator.tasks import TaskStore

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(autouse=True)
def _restore_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # the demo points the plugins' output, state and failures at its options through the
    # environment; monkeypatch puts these back after each test
    for name in ("JIRA_ORCHESTRATOR_OUTPUT", "JIRA_ORCHESTRATOR_STATE_DIR", "DEMO_FAIL"):
        monkeypatch.setenv(name, "")


def run_demo(*options: str) -> str:
    result = CliRunner().invoke(app, ["demo", *options])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_demo_routes_dispatches_and_falls_back(tmp_path: Path) -> None:
    output = run_demo(
        "--plugins",
        str(EXAMPLES / "plugins"),
        "--issues",
        str(EXAMPLES / "issues.json"),
        "--output",
        str(tmp_path / "out"),
        "--fail",
        "frontend-design-system",
    )
    assert "12/12 issues completed" in output
    assert "by a fallback plugin" in output
    assert "0 by a fallback" not in output
    out = tmp_path / "out"
    assert (out / "fastapi-backend" / "routes_api_orders_id_history.py").is_file()
    assert (out / "k8s-helm-deployer" / "charts" / "billing-api" / "values.yaml").is_file()
    assert not (out / "frontend-design-system" / "components").exists()  # it was failing


def test_demo_without_failures_uses_no_fallback(tmp_path: Path) -> None:
    output = run_demo(
        "--plugins",
        str(EXAMPLES / "plugins"),
        "--issues",
        str(EXAMPLES / "issues.json"),
        "--output",
        str(tmp_path / "out"),
    )
    assert "12/12 issues completed, 0 by a fallback plugin" in output
    assert (tmp_path / "out" / "frontend-design-system" / "components").is_dir()


@pytest.mark.parametrize(
    ("content", "message"),
    [("not json", "cannot read the issues"), ('{"key": 1}', "expected a JSON list")],
)
def test_demo_with_bad_issues_says_what_is_wrong(
    tmp_path: Path, content: str, message: str
) -> None:
    issues = tmp_path / "issues.json"
    issues.write_text(content)
    result = CliRunner().invoke(
        app, ["demo", "--plugins", str(EXAMPLES / "plugins"), "--issues", str(issues)]
    )
    assert result.exit_code == 2
    assert message in result.output


def test_demo_with_a_missing_plugins_folder_says_so(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--plugins", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "no such folder" in result.output


def demo_in(output: Path, issues: Path) -> Any:
    arguments = ["--plugins", str(EXAMPLES / "plugins"), "--issues", str(issues)]
    return CliRunner().invoke(app, ["demo", *arguments, "--output", str(output)])


def _two_good_and_bad(tmp_path: Path, *bad: object) -> Path:
    examples = json.loads((EXAMPLES / "issues.json").read_text(encoding="utf-8"))
    issues = tmp_path / "mixed.json"
    issues.write_text(json.dumps([examples[0], *bad, examples[7]]), encoding="utf-8")
    return issues


def test_a_malformed_issue_is_reported_and_skipped_while_the_others_run(tmp_path: Path) -> None:
    issues = _two_good_and_bad(
        tmp_path,
        {"key": "BAD-1", "fields": {"summary": ""}},
        "not an issue",
        {"key": "BAD-3", "fields": {"summary": "Deploy it", "labels": 5}},
    )
    out = tmp_path / "out"
    result = demo_in(out, issues)
    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    errors = " ".join(result.stderr.split())
    assert f"{issues}: issue 1 (BAD-1): text: empty request" in errors
    assert f"{issues}: issue 2: expected a JSON object, not text" in errors
    assert f"{issues}: issue 3 (BAD-3): fields.labels: expected a list of strings" in errors
    assert "3 issues skipped" in errors
    output = " ".join(result.stdout.split())
    assert "2/5 issues completed" in output
    with TaskStore(out / ".orchestrator" / "tasks.db") as tasks:
        assert tasks.counts() == {"completed": 2}  # the issue after the bad ones ran too


def test_demo_with_only_bad_issues_dispatches_nothing(tmp_path: Path) -> None:
    issues = tmp_path / "bad.json"
    issues.write_text(json.dumps([{"fields": {"summary": 3}}]), encoding="utf-8")
    out = tmp_path / "out"
    result = demo_in(out, issues)
    assert result.exit_code == 2, result.output
    assert "issue 0: fields.summary: expected text, not int" in " ".join(result.stderr.split())
    assert not out.exists()


@pytest.mark.parametrize("name", ["tasks.db", "decisions.db", "dead-letters.db"])
def test_demo_with_a_damaged_store_names_it(tmp_path: Path, name: str) -> None:
    out = tmp_path / "out"
    (out / ".orchestrator").mkdir(parents=True)
    damaged = out / ".orchestrator" / name
    damaged.write_bytes(bytes(range(256)) * 200)
    result = demo_in(out, _two_good_and_bad(tmp_path))
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert str(damaged) in " ".join(result.stderr.split())
    assert damaged.read_bytes() == bytes(range(256)) * 200  # left as it was, for a human


def test_the_demo_leaves_the_environment_as_it_found_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEMO_FAIL", raising=False)
    monkeypatch.setenv("JIRA_ORCHESTRATOR_OUTPUT", "/somewhere/else")
    result = CliRunner().invoke(
        app,
        ["demo", "--output", str(tmp_path / "out"), "--fail", "frontend-design-system"],
    )
    assert result.exit_code == 0, result.output
    assert "DEMO_FAIL" not in os.environ  # a later plugin in this process does not fail
    assert os.environ["JIRA_ORCHESTRATOR_OUTPUT"] == "/somewhere/else"


RESULT_FIELDS = {"index", "key", "routedTo", "doneBy", "outcome", "fallback", "ms", "taskId"}


def result_lines(stdout: str) -> list[dict[str, Any]]:
    """Standard output of ``--json``: every line one JSON object with the result fields."""
    lines = [json.loads(line) for line in stdout.splitlines()]
    for line in lines:
        assert isinstance(line, dict)
        assert line.keys() >= RESULT_FIELDS, line
    return lines


def check_consistent(line: dict[str, Any]) -> None:
    """The values of one result line agree with each other."""
    assert isinstance(line["fallback"], bool)
    if line["outcome"] == "completed":
        assert line["doneBy"] is not None
        assert line["fallback"] == (line["doneBy"] != line["routedTo"]), line
        assert isinstance(line["ms"], float)
        assert line["ms"] > 0
        assert isinstance(line["taskId"], str)
        assert line["taskId"]
        assert "error" not in line
    elif line["outcome"] == "invalid":
        assert line["doneBy"] is None
        assert line["routedTo"] is None
        assert line["ms"] is None
        assert line["fallback"] is False
        assert line["taskId"] is None
        assert line["reason"]


def test_demo_json_prints_one_result_line_per_issue_and_nothing_else(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "demo",
            "--plugins",
            str(EXAMPLES / "plugins"),
            "--issues",
            str(EXAMPLES / "issues.json"),
            "--output",
            str(out),
            "--fail",
            "frontend-design-system",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result_lines(result.stdout)
    examples = json.loads((EXAMPLES / "issues.json").read_text(encoding="utf-8"))
    assert [line["key"] for line in lines] == [issue["key"] for issue in examples]
    assert [line["index"] for line in lines] == list(range(len(examples)))
    for line in lines:
        check_consistent(line)
        assert line["outcome"] == "completed"
        assert line["doneBy"] != "frontend-design-system"  # it was failing
    assert any(line["fallback"] for line in lines)
    assert "12/12 issues completed" in " ".join(result.stderr.split())  # the human summary
    with TaskStore(out / ".orchestrator" / "tasks.db") as tasks:
        for line in lines:
            task = tasks.get(line["taskId"])
            assert task is not None
            assert (task.status, task.plugin) == ("completed", line["doneBy"])


def test_demo_json_gives_a_malformed_issue_its_line_and_goes_on(tmp_path: Path) -> None:
    issues = _two_good_and_bad(
        tmp_path, {"key": "BAD-1", "fields": {"summary": ""}}, "not an issue"
    )
    result = CliRunner().invoke(
        app,
        [
            "demo",
            "--plugins",
            str(EXAMPLES / "plugins"),
            "--issues",
            str(issues),
            "--output",
            str(tmp_path / "out"),
            "--json",
        ],
    )
    assert result.exit_code == 1, result.output
    lines = result_lines(result.stdout)
    assert [(line["index"], line["key"], line["outcome"]) for line in lines] == [
        (0, "SHOP-101", "completed"),
        (1, "BAD-1", "invalid"),
        (2, None, "invalid"),
        (3, "OPS-401", "completed"),  # the issue after the bad ones ran too
    ]
    for line in lines:
        check_consistent(line)
    assert lines[1]["reason"].startswith("text: empty request")
    assert lines[2]["reason"] == "expected a JSON object, not text"
    assert "issue 1 (BAD-1): text: empty request" in " ".join(result.stderr.split())


def test_demo_jira_json_prints_what_the_loop_did_with_each_issue(tmp_path: Path) -> None:
    issues = _two_good_and_bad(tmp_path, {"key": "BAD-1", "fields": {"summary": 3}})
    result = CliRunner().invoke(
        app,
        [
            "demo",
            "--jira",
            "--plugins",
            str(EXAMPLES / "plugins"),
            "--issues",
            str(issues),
            "--output",
            str(tmp_path / "out"),
            "--json",
        ],
    )
    assert result.exit_code == 1, result.output  # one issue was skipped
    lines = result_lines(result.stdout)
    assert [(line["index"], line["key"], line["outcome"]) for line in lines] == [
        (0, "SHOP-101", "completed"),
        (1, "BAD-1", "invalid"),
        (2, "OPS-401", "completed"),
    ]
    for line in lines:
        check_consistent(line)
    assert lines[0]["routedTo"] == "fastapi-backend"
    assert lines[2]["routedTo"] == "k8s-helm-deployer"
    assert lines[0]["status"] == "Done"  # the transition Jira shows
