"""``jira-orchestrator demo``: the orchestrator and the example plugins, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from jira_orchestrator.cli import app

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
    assert result.exit_code == 1
    assert message in result.output


def test_demo_with_a_missing_plugins_folder_says_so(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--plugins", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "no such folder" in result.output
