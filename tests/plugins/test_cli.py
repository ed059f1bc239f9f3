"""``jira-orchestrator plugins validate|list|agents|schema``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from jira_orchestrator.cli import app
from jira_orchestrator.plugins import manifest_json_schema

runner = CliRunner()


def test_validate_valid_folder_and_file(write_plugin: Any) -> None:
    root = write_plugin("good", files={"agents/a.md": "---\nname: a\n---\n"})
    result = runner.invoke(
        app, ["plugins", "validate", str(root), str(root / ".claude-plugin" / "plugin.json")]
    )
    assert result.exit_code == 0, result.output
    assert f"ok: {root}: good 1.0.0 is valid (1 agents, 0 commands, 0 skills)" in result.stdout
    assert "manifest is valid" in result.stdout


def test_validate_lists_every_problem_and_exits_1(write_plugin: Any, tmp_path: Path) -> None:
    good = write_plugin("good")
    bad = write_plugin("bad", {"name": "bad", "routing": {"priority": "x", "keywords": [1]}})
    broken = write_plugin("broken", '{"name": "broken",\n "version": }')
    result = runner.invoke(app, ["plugins", "validate", str(good), str(bad), str(broken)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    manifest = bad / ".claude-plugin" / "plugin.json"
    assert f'{manifest}: routing.priority: Input should be a valid integer (got "x")' in lines
    assert f"{manifest}: routing.keywords[0]: Input should be a valid string (got 1)" in lines
    broken_file = broken / ".claude-plugin" / "plugin.json"
    assert f"{broken_file}: line 2, column 13: invalid JSON: Expecting value" in lines
    assert any(line.startswith(f"ok: {good}") for line in lines)
    assert "3 problems found" in result.stderr


def test_validate_missing_path_and_empty_folder(tmp_path: Path) -> None:
    result = runner.invoke(app, ["plugins", "validate", str(tmp_path / "nope"), str(tmp_path)])
    assert result.exit_code == 1
    assert f"{tmp_path / 'nope'}: $: no such file or directory" in result.stdout
    assert f"{tmp_path}: $: no plugin here" in result.stdout


def test_validate_needs_a_path() -> None:
    result = runner.invoke(app, ["plugins", "validate"])
    assert result.exit_code == 2


def test_validate_reports_bad_component_files(write_plugin: Any) -> None:
    root = write_plugin("p", files={"agents/x.md": "---\nname: x\n", "agents/y.md": "# y\n"})
    result = runner.invoke(app, ["plugins", "validate", "-q", str(root)])
    assert result.exit_code == 1
    assert result.stdout.strip() == f"{root / 'agents' / 'x.md'}: line 1: front matter" + (
        " opened with '---' is never closed"
    )


def test_validate_a_folder_of_plugins_shows_warnings(corpus: Path) -> None:
    result = runner.invoke(app, ["plugins", "validate", str(corpus)])
    assert result.exit_code == 0, result.output
    assert f"ok: {corpus}: 35 plugins checked" in result.stdout
    assert "warning: " in result.stdout  # lenient front matter is shown, not fatal


def test_list_json(corpus: Path) -> None:
    result = runner.invoke(app, ["plugins", "list", str(corpus), "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert len(listed) == 35
    by_name = {item["name"]: item for item in listed}
    eks = by_name["aws-eks-helm-keycloak"]
    assert (eks["version"], eks["agents"], eks["commands"], eks["skills"]) == ("2.0.0", 4, 7, 7)
    assert "helm" in eks["keywords"]
    assert sum(item["agents"] for item in listed) == 261
    assert result.stderr == ""


def test_list_table(corpus: Path) -> None:
    result = runner.invoke(app, ["plugins", "list", str(corpus)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for header in ("name", "version", "agents", "commands", "skills", "keywords"):
        assert header in result.stdout
    assert "fastapi-backend" in result.stdout
    assert "35 plugins, 261 agents, 292 commands, 250 skills" in result.stdout


def test_list_reports_problems_on_stderr(write_plugin: Any, tmp_path: Path) -> None:
    write_plugin("good")
    write_plugin("bad", "{")
    result = runner.invoke(app, ["plugins", "list", str(tmp_path / "plugins"), "--json"])
    assert result.exit_code == 1
    assert [item["name"] for item in json.loads(result.stdout)] == ["good"]
    assert "problem: " in result.stderr
    assert "invalid JSON" in result.stderr
    assert "1 problem in" in result.stderr
    table = runner.invoke(app, ["plugins", "list", str(tmp_path / "plugins")])
    assert table.exit_code == 1
    assert "good" in table.stdout


def test_list_missing_directory(tmp_path: Path) -> None:
    result = runner.invoke(app, ["plugins", "list", str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
    assert result.stdout == ""


def test_agents_search(corpus: Path) -> None:
    result = runner.invoke(
        app, ["plugins", "agents", str(corpus), "helm chart on EKS", "--limit", "3", "--json"]
    )
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert len(found) == 3
    assert found[0]["plugin"] == "aws-eks-helm-keycloak"
    table = runner.invoke(app, ["plugins", "agents", str(corpus), "-k", "helm"])
    assert table.exit_code == 0
    assert "aws-eks-helm-keycloak" in table.stdout


def test_agents_missing_directory_and_bad_limit(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["plugins", "agents", str(tmp_path / "missing"), "x"])
    assert missing.exit_code == 2
    assert "does not exist" in missing.stderr
    assert runner.invoke(app, ["plugins", "agents", str(tmp_path), "--limit", "0"]).exit_code == 2


def test_schema_command(tmp_path: Path) -> None:
    printed = runner.invoke(app, ["plugins", "schema"])
    assert printed.exit_code == 0
    assert json.loads(printed.stdout) == manifest_json_schema()
    target = tmp_path / "schema.json"
    written = runner.invoke(app, ["plugins", "schema", "--output", str(target)])
    assert written.exit_code == 0
    assert target.read_text(encoding="utf-8") == printed.stdout


def test_schema_to_a_folder_or_a_missing_folder_is_a_clean_error(tmp_path: Path) -> None:
    for target, why in ((tmp_path, "it is a folder"), (tmp_path / "no" / "s.json", "No such")):
        result = runner.invoke(app, ["plugins", "schema", "--output", str(target)])
        assert result.exit_code == 2, result.output
        assert isinstance(result.exception, SystemExit)
        assert f"cannot write {target}: {why}" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_list_cuts_long_keywords(write_plugin: Any, tmp_path: Path) -> None:
    write_plugin("wordy", {"name": "wordy", "version": "1.0.0", "keywords": ["k" * 100_000]})
    result = runner.invoke(app, ["plugins", "list", str(tmp_path / "plugins")])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) < 40
