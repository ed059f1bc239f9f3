"""``jira-orchestrator demo`` runs the example plugins and writes their outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from jira_orchestrator.cli import app

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "plugins"


def test_demo_dispatches_work_and_writes_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the demo points the plugins' output and state at --output through the environment
    monkeypatch.setenv("JIRA_ORCHESTRATOR_OUTPUT", "unused")
    monkeypatch.setenv("JIRA_ORCHESTRATOR_STATE_DIR", "unused")
    result = CliRunner().invoke(
        app, ["demo", "--plugins", str(EXAMPLES), "--output", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "out" / "fastapi-backend").glob("*.py"))
    assert written == ["routes_api_users.py", "routes_api_users_id.py"]
    assert "1 request(s) answered with an error" in " ".join(result.output.split())


def test_demo_with_a_missing_plugins_folder_says_so(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--plugins", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "no such folder" in result.output
