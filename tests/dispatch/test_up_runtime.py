"""``up`` and plugins in other languages: a manifest's ``runtime`` says how to start the
process; one that cannot start here is named in one line and ``up`` carries on without it;
the node example is started, given work, supervised and restarted like a Python plugin."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from jira_orchestrator.cli import app
from jira_orchestrator.cli._launch import NotStartable, plan_launch
from jira_orchestrator.cli.up import bus_environment
from jira_orchestrator.plugins import load_plugin
from tests.dispatch.test_up_supervision import Up, children, run_up

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NODE_EXAMPLE = EXAMPLES / "plugins" / "release-notes"

__all__ = ["run_up"]  # the fixture, shared with the supervision tests


def plugin(root: Path, runtime: dict[str, Any] | None, files: dict[str, str] | None = None) -> Path:
    (root / ".claude-plugin").mkdir(parents=True)
    manifest: dict[str, Any] = {"name": root.name}
    if runtime is not None:
        manifest["runtime"] = runtime
    (root / ".claude-plugin" / "plugin.json").write_text(json.dumps(manifest))
    for name, text in (files or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def plan(root: Path, path: str | None = None) -> Any:
    return plan_launch(load_plugin(root), python="/usr/bin/python3", path=path)


def test_a_python_plugin_runs_its_plugin_py_and_a_plugin_of_agents_runs_nothing(
    tmp_path: Path,
) -> None:
    python = plan(plugin(tmp_path / "py", None, {"plugin.py": ""}))
    assert python.argv == ("/usr/bin/python3", str((tmp_path / "py" / "plugin.py").resolve()))
    assert python.cwd is None  # where up runs, as it always has
    assert plan(plugin(tmp_path / "agents-only", None)) is None


def test_a_runtime_runs_its_program_on_the_entry_in_the_plugin_folder(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "node").write_text("#!/bin/sh\n")
    (bin_dir / "node").chmod(0o755)
    root = plugin(
        tmp_path / "ts",
        {"command": "node", "entry": "dist/plugin.js", "requires": ["node_modules/nats"]},
        {"dist/plugin.js": "", "node_modules/nats/index.js": ""},
    )
    launch = plan(root, path=str(bin_dir))
    assert launch.argv == (str(bin_dir / "node"), str((root / "dist/plugin.js").resolve()))
    assert launch.cwd == root.resolve()
    assert launch.runtime == "node"


def test_each_reason_a_runtime_cannot_start_is_named(tmp_path: Path) -> None:
    setup = {"command": "node", "entry": "dist/plugin.js", "requires": ["node_modules/nats"]}
    not_built = plugin(tmp_path / "a", {**setup, "setup": "npm ci"}, {"dist/plugin.js": ""})
    with pytest.raises(NotStartable) as missing:
        plan(not_built, path=str(tmp_path))
    assert str(missing.value) == f"node_modules/nats is missing (run `npm ci` in {not_built})"

    no_node = plugin(tmp_path / "b", setup, {"dist/plugin.js": "", "node_modules/nats/x": ""})
    with pytest.raises(NotStartable, match=r"^node is not installed \(not found on PATH\)$"):
        plan(no_node, path=str(tmp_path / "empty"))

    outside = tmp_path / "outside.js"
    outside.write_text("")
    escaping = plugin(tmp_path / "c", {"command": "node", "entry": "link.js"})
    (escaping / "link.js").symlink_to(outside)
    with pytest.raises(NotStartable, match=r"entry 'link\.js' resolves outside its folder"):
        plan(escaping, path=os.environ.get("PATH"))

    own = plugin(tmp_path / "d", {"entry": "bin/serve"}, {"bin/serve": "#!/bin/sh\n"})
    with pytest.raises(NotStartable, match=r"'bin/serve' is not executable"):
        plan(own)
    (own / "bin" / "serve").chmod(0o755)
    assert plan(own).argv == (str((own / "bin" / "serve").resolve()),)


def test_the_bus_url_is_also_given_split_for_clients_that_read_no_credentials_from_it() -> None:
    assert bus_environment("nats://release-notes:p%40ss%2Fw0rd@127.0.0.1:4333?ack_wait=5") == {
        "JIRA_ORCHESTRATOR_BUS_URL": "nats://release-notes:p%40ss%2Fw0rd@127.0.0.1:4333?ack_wait=5",
        "JIRA_ORCHESTRATOR_NATS_SERVERS": "127.0.0.1:4333",
        "JIRA_ORCHESTRATOR_NATS_USER": "release-notes",
        "JIRA_ORCHESTRATOR_NATS_PASSWORD": "p@ss/w0rd",
        "JIRA_ORCHESTRATOR_NATS_INBOX_PREFIX": "_INBOX.release-notes",  # its own inboxes
    }
    assert bus_environment("nats://a:4222,nats://b?inbox_prefix=_INBOX.mine") == {
        "JIRA_ORCHESTRATOR_BUS_URL": "nats://a:4222,nats://b?inbox_prefix=_INBOX.mine",
        "JIRA_ORCHESTRATOR_NATS_SERVERS": "a:4222,b:4222",
        "JIRA_ORCHESTRATOR_NATS_INBOX_PREFIX": "_INBOX.mine",
    }
    # a token is a credential, never part of a subject
    assert bus_environment("nats://s3cr3t@h:4222") == {
        "JIRA_ORCHESTRATOR_BUS_URL": "nats://s3cr3t@h:4222",
        "JIRA_ORCHESTRATOR_NATS_SERVERS": "h:4222",
        "JIRA_ORCHESTRATOR_NATS_TOKEN": "s3cr3t",
        "JIRA_ORCHESTRATOR_NATS_INBOX_PREFIX": "_INBOX",
    }
    assert bus_environment("memory://") == {"JIRA_ORCHESTRATOR_BUS_URL": "memory://"}


def test_up_names_each_plugin_it_cannot_start_and_serves_with_the_others(
    tmp_path: Path, run_up: type[Up]
) -> None:
    plugins = tmp_path / "plugins"
    shutil.copytree(EXAMPLES / "plugins" / "exec-automator", plugins / "exec-automator")
    unbuilt = plugins / "release-notes"  # as cloned: sources, no node_modules, no dist
    for part in (".claude-plugin", "agents"):
        shutil.copytree(NODE_EXAMPLE / part, unbuilt / part)
    plugin(plugins / "go-notes", {"command": "no-such-runtime", "entry": "main"}, {"main": ""})
    issues = tmp_path / "issues.json"
    issues.write_text(json.dumps([{"key": "OPS-1", "fields": {"summary": "Plan the steps"}}]))
    up = run_up(
        *("--plugins", str(plugins), "--output", str(tmp_path / "out")),
        *("--issues", str(issues), "--exit-after"),
    )
    assert up.finish() == 0, up.output
    assert (
        "[up] go-notes not started: no-such-runtime is not installed (not found on PATH); "
        "carrying on without it\n"
    ) in up.output
    assert (
        "[up] release-notes not started: node_modules/nats is missing (run `npm ci` in "
        f"{unbuilt}); carrying on without it\n"
    ) in up.output
    assert "[orchestrator] 1 plugin(s) ready" in up.output
    assert "1/1 issues completed" in up.output


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed (CI has it)")
@pytest.mark.timeout(120)
def test_up_runs_the_node_plugin_gives_it_work_and_restarts_it_when_it_dies(
    tmp_path: Path, run_up: type[Up]
) -> None:
    if not (NODE_EXAMPLE / "dist" / "plugin.js").is_file():
        pytest.fail(f"the node example is not built: run `npm ci` in {NODE_EXAMPLE}")
    plugins = tmp_path / "plugins"
    shutil.copytree(EXAMPLES / "plugins" / "exec-automator", plugins / "exec-automator")
    copy = plugins / "release-notes"
    shutil.copytree(NODE_EXAMPLE, copy, ignore=shutil.ignore_patterns("node_modules"))
    (copy / "node_modules").symlink_to(NODE_EXAMPLE / "node_modules")
    issues = tmp_path / "issues.json"
    issue = {"key": "REL-3", "fields": {"summary": "Write the release notes for the 2.4 changelog"}}
    issues.write_text(json.dumps([issue]))
    output = tmp_path / "out"
    up = run_up("--plugins", str(plugins), "--output", str(output), "--issues", str(issues))
    up.wait_for("1/1 issues completed, 0 by a fallback plugin")
    [row] = [line for line in up.lines if "REL-3" in line]
    assert [cell.strip() for cell in row.split("│")[2:5]] == [
        "release-notes",
        "release-notes",
        "completed",
    ], row
    assert "## [Unreleased]" in (output / "release-notes" / "CHANGELOG.md").read_text()
    up.wait_for("Ctrl-C stops everything")
    os.kill(children(output)["release-notes"], signal.SIGKILL)
    up.wait_for("[up] release-notes was killed by SIGKILL; restarting it in 0.5s (restart 1 of 5)")
    up.wait_for("release-notes ready")  # the restarted node process
    up.process.send_signal(signal.SIGINT)
    assert up.finish() == 0, up.output
    assert "] release-notes stopped" in up.output  # drained on SIGTERM


def test_the_demo_names_the_plugin_it_does_not_start_and_runs_the_others(tmp_path: Path) -> None:
    """The demo runs Python plugins in its own process: the node example is named in one
    line, with or without node on the machine, and every example issue is still done."""
    result = CliRunner().invoke(app, ["demo", "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [  # a note, apart from the results
        "release-notes is not started by the demo, which runs Python plugins only "
        "(release-notes runs on node: `jira-orchestrator up` starts it)"
    ]
    assert "12/12 issues completed, 0 by a fallback plugin" in result.stdout
    assert "release-notes" not in result.stdout  # it takes none of the examples' issues
