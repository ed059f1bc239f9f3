"""``jira-orchestrator route``, through a test-local typer app (the lead registers it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from jira_orchestrator.cli.route import PLUGINS_ENV, route

app = typer.Typer()
app.command()(route)


@app.callback()
def _root() -> None:
    """Test root."""


runner = CliRunner()


def test_route_text_prints_the_primary_plugin(ecosystem: Path) -> None:
    result = runner.invoke(app, ["route", "Write a README", "--plugins", str(ecosystem)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("doc-scribe")


def test_route_json_and_explain(ecosystem: Path) -> None:
    result = runner.invoke(
        app,
        ["route", "fix this", "--file", "charts/Chart.yaml", "--plugins", str(ecosystem), "--json"],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["primaryPlugin"] == "cloud-ops"
    assert document["classification"]["technologies"][:2] == ["helm", "chart"]
    explained = runner.invoke(
        app, ["route", "Write a README", "--plugins", str(ecosystem), "--explain"]
    )
    assert "goes to doc-scribe" in explained.stdout
    both = runner.invoke(
        app, ["route", "Write a README", "--plugins", str(ecosystem), "--json", "--explain"]
    )
    assert "goes to doc-scribe" in json.loads(both.stdout)["explanation"]


def test_plugins_default_from_the_environment(ecosystem: Path) -> None:
    result = runner.invoke(app, ["route", "Write a README"], env={PLUGINS_ENV: str(ecosystem)})
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("doc-scribe")


def test_bad_input_exits_2_and_says_what(ecosystem: Path, tmp_path: Path) -> None:
    missing = runner.invoke(app, ["route", "x", "--plugins", str(tmp_path / "nope")])
    assert missing.exit_code == 2
    assert "does not exist" in missing.stderr
    assert "nope" in missing.stderr
    empty = runner.invoke(app, ["route", "   ", "--plugins", str(ecosystem)])
    assert empty.exit_code == 2
    assert "empty request" in empty.stderr
    nothing = runner.invoke(app, ["route", "--plugins", str(ecosystem)])
    assert nothing.exit_code == 2
    assert "TEXT" in nothing.stderr
    unreadable = runner.invoke(
        app, ["route", "--plugins", str(ecosystem), "--batch", str(tmp_path / "none.jsonl")]
    )
    assert unreadable.exit_code == 2
    assert "none.jsonl: batch file not found" in unreadable.stderr


def test_batch_json_lines_in_input_order(ecosystem: Path, tmp_path: Path) -> None:
    batch = tmp_path / "in.jsonl"
    batch.write_text(
        '{"id": "r1", "text": "Write a getting started guide"}\n'
        "{broken\n"
        '{"id": "r2", "text": "Helm chart for the API", "files": ["Chart.yaml"]}\n'
        '{"id": "r3", "text": "React signup form"}\n'
    )
    result = runner.invoke(
        app, ["route", "--plugins", str(ecosystem), "--batch", str(batch), "--json"]
    )
    assert result.exit_code == 1  # one bad line, the rest routed
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(d["id"], d["primaryPlugin"]) for d in lines] == [
        ("r1", "doc-scribe"),
        ("r2", "cloud-ops"),
        ("r3", "pixel-kit"),
    ]
    assert set(lines[0]) == {"id", "primaryPlugin", "fallbackPlugins", "scores"}
    assert {"plugin", "score"} == set(lines[0]["scores"][0])
    assert f"{batch}:2: invalid JSON" in result.stderr
    assert "3 requests routed, 1 bad lines skipped" in result.stderr


def test_batch_jira_csv(ecosystem: Path, tmp_path: Path) -> None:
    batch = tmp_path / "export.csv"
    batch.write_text(
        "Issue key,Summary,Description,Labels,Component/s\n"
        "DOC-1,Guide,Write the onboarding guide and README,docs,\n"
        "OPS-2,Cluster,Terraform and Kubernetes cluster,,Infra\n"
    )
    result = runner.invoke(app, ["route", "--plugins", str(ecosystem), "--batch", str(batch)])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["primaryPlugin"] for line in result.stdout.splitlines()] == [
        "doc-scribe",
        "cloud-ops",
    ]


@pytest.mark.parametrize("flag", ["--file"])
def test_text_and_batch_together_are_refused(ecosystem: Path, tmp_path: Path, flag: str) -> None:
    batch = tmp_path / "in.jsonl"
    batch.write_text('{"text": "x"}\n')
    result = runner.invoke(app, ["route", "x", "--plugins", str(ecosystem), "--batch", str(batch)])
    assert result.exit_code == 2
    assert "not both" in result.stderr


def test_decisions_are_persisted_with_db(ecosystem: Path, tmp_path: Path) -> None:
    db = tmp_path / "decisions.db"
    result = runner.invoke(
        app, ["route", "Write a README", "--plugins", str(ecosystem), "--db", str(db)]
    )
    assert result.exit_code == 0, result.output
    from jira_orchestrator.routing import DecisionStore

    with DecisionStore(db) as store:
        assert store.count_decisions() == 1
