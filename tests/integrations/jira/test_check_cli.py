"""``jira init`` and ``jira check`` as a user runs them, against a running sandbox."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.integrations.jira.test_sandbox_cli import ROOT, started

__all__ = ["started"]  # the fixture, shared with the sandbox's own CLI tests

JIRA = [sys.executable, "-m", "jira_orchestrator.cli", "jira"]


def _jira(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*JIRA, *args], capture_output=True, text=True, timeout=120, cwd=ROOT, check=False
    )


def test_init_for_a_sandbox_passes_check_unchanged(
    started: tuple[subprocess.Popen[str], str], tmp_path: Path
) -> None:
    _, url = started
    config = tmp_path / "jira-orchestrator.toml"
    made = _jira("init", "--sandbox", url, "--output", str(config))
    assert made.returncode == 0, made.stderr
    checked = _jira("check", "--config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "ok: credentials: signed in as" in checked.stdout
    for project in ("SHOP", "PLAT", "UI", "OPS"):
        assert f"ok: project {project}:" in checked.stdout
    assert "ok: transition completed: 'Done' found in" in checked.stdout
    assert "Traceback" not in checked.stderr


def test_check_says_exactly_what_is_wrong(
    started: tuple[subprocess.Popen[str], str], tmp_path: Path
) -> None:
    _, url = started
    config = tmp_path / "jira-orchestrator.toml"
    text = _jira("init", "--sandbox", url).stdout
    text = text.replace('projects = ["SHOP"', 'projects = ["NOPE", "SHOP"')
    text = text.replace('completed = "Done"', 'completed = "Shipped"')
    config.write_text(text)
    checked = _jira("check", "--config", str(config))
    assert checked.returncode == 1
    assert "error: project NOPE: not found:" in checked.stderr
    assert "error: transition completed: 'Shipped' is not available" in checked.stderr
    assert "ok: project SHOP:" in checked.stdout
    wrong = text.replace('token = "sandbox-token"', 'token = "not-the-token"')
    config.write_text(wrong)
    refused = _jira("check", "--config", str(config))
    assert refused.returncode == 1
    assert "credentials refused" in refused.stderr
    assert "not-the-token" not in refused.stdout + refused.stderr
