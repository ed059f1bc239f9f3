"""``plugins new``: the scaffolded plugin is valid and its own tests pass."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from jira_orchestrator.cli import app
from jira_orchestrator.plugins import load_plugin
from jira_orchestrator.plugins.scaffold import scaffold_plugin


def test_plugins_new_writes_a_plugin_whose_own_tests_pass(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["plugins", "new", "billing-reports", str(tmp_path)])
    assert result.exit_code == 0, result.output
    root = tmp_path / "billing-reports"
    info = load_plugin(root)
    assert info.name == "billing-reports"
    assert not info.problems
    assert [agent.name for agent in info.agents] == ["billing-reports-agent"]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 passed" in run.stdout
    assert not list(root.rglob("*.db")), "tests must keep state out of the plugin folder"


@pytest.mark.parametrize("name", ["bad name", "_leading", "a/b", ""])
def test_a_name_that_cannot_be_a_plugin_id_is_refused(tmp_path: Path, name: str) -> None:
    result = CliRunner().invoke(app, ["plugins", "new", name, str(tmp_path)])
    assert result.exit_code == 2
    assert "cannot be a plugin id" in result.output
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_never_overwritten(tmp_path: Path) -> None:
    scaffold_plugin("reports", tmp_path)
    marker = tmp_path / "reports" / "plugin.py"
    marker.write_text("# mine\n")
    result = CliRunner().invoke(app, ["plugins", "new", "reports", str(tmp_path)])
    assert result.exit_code == 2
    assert "already exists" in result.output
    assert marker.read_text() == "# mine\n"


def test_a_name_too_long_for_the_file_system_is_a_clean_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["plugins", "new", "a" * 300, str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "File name too long" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_target_that_is_a_file_is_a_clean_error(tmp_path: Path) -> None:
    target = tmp_path / "afile"
    target.write_text("mine\n")
    result = CliRunner().invoke(app, ["plugins", "new", "good", str(target)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert f"{target} is not a folder" in result.stderr
    assert target.read_text() == "mine\n"


def test_a_full_disk_leaves_nothing_half_made_and_a_retry_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = Path.write_text
    written: list[Path] = []

    def write_text(self: Path, *args: Any, **kwargs: Any) -> int:
        if len(written) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        written.append(self)
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    result = CliRunner().invoke(app, ["plugins", "new", "reports", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "No space left on device" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no half-made plugin, no temporary folder
    monkeypatch.undo()
    retry = CliRunner().invoke(app, ["plugins", "new", "reports", str(tmp_path)])
    assert retry.exit_code == 0, retry.output
    assert [p.name for p in tmp_path.iterdir()] == ["reports"]
    assert not load_plugin(tmp_path / "reports").problems
    assert oct((tmp_path / "reports").stat().st_mode & 0o777) != "0o700"
