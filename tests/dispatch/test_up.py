"""``up`` and ``nats-config``: the ecosystem as processes on NATS, with per-plugin users."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from typer.testing import CliRunner

from jira_orchestrator.cli import app
from jira_orchestrator.orchestrator.natsconfig import nats_authorization
from jira_orchestrator.plugins import discover_plugins
from jira_orchestrator.transports.nats_server import NatsServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
OWN_EVENTS = "plugin.fastapi-backend.events"


def test_up_runs_the_demo_over_nats_with_one_process_per_plugin(tmp_path: Path) -> None:
    output = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JIRA_ORCHESTRATOR_")}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "jira_orchestrator.cli",
            "up",
            "--http",
            "127.0.0.1:0",  # a free port: tests run in parallel
            "--plugins",
            str(EXAMPLES / "plugins"),
            "--issues",
            str(EXAMPLES / "issues.json"),
            "--output",
            str(output),
            "--fail",
            "frontend-design-system",
            "--exit-after",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "12/12 issues completed" in run.stdout
    assert "[frontend-design-system]" in run.stdout  # each process's lines are prefixed
    assert "[nats-server] embedded" in run.stdout
    # every process, each with only its own rights, ran without one refusal by the server
    assert "refused this user" not in run.stdout + run.stderr
    assert (output / "k8s-helm-deployer" / "charts" / "billing-api" / "Chart.yaml").is_file()
    assert (output / "fastapi-backend" / "routes_api_users.py").is_file()


def test_nats_config_lists_one_user_per_plugin(tmp_path: Path) -> None:
    credentials = tmp_path / "users.json"
    result = CliRunner().invoke(
        app, ["nats-config", str(EXAMPLES / "plugins"), "--credentials", str(credentials)]
    )
    assert result.exit_code == 0, result.output
    users = json.loads(credentials.read_text())
    assert sorted(users) == sorted(
        ["jira-orchestrator", *(p.name for p in (EXAMPLES / "plugins").iterdir() if p.is_dir())]
    )
    assert '"plugin.fastapi-backend.>"' in result.output
    assert oct(credentials.stat().st_mode & 0o777) == "0o600"


def test_nats_config_of_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["nats-config", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert "no such folder" in result.output


@pytest.fixture
def secured_server(tmp_path: Path) -> Iterator[tuple[NatsServer, dict[str, str]]]:
    """A nats-server with one user per example plugin, and each user's password."""
    text, users = nats_authorization(discover_plugins(EXAMPLES / "plugins"))
    with NatsServer(tmp_path / "nats", extra_config=text) as server:
        yield server, {user.name: user.password for user in users}


@contextlib.asynccontextmanager
async def connected(url: str, **options: Any) -> AsyncIterator[nats.NATS]:
    """A raw nats-py client, closed however the test ends (an open one fails a later test
    through a ResourceWarning when it is collected)."""
    client = await nats.connect(url, allow_reconnect=False, **options)
    try:
        yield client
    finally:
        await client.close()


async def test_the_server_refuses_a_plugin_publishing_on_another_plugins_subjects(
    secured_server: tuple[NatsServer, dict[str, str]],
) -> None:
    server, password = secured_server
    refused: list[Exception] = []
    refusal = asyncio.Event()

    async def on_error(error: Exception) -> None:
        refused.append(error)
        refusal.set()

    seen: list[str] = []
    arrived = {subject: asyncio.Event() for subject in ("plugin.x.probe", OWN_EVENTS)}

    async def record(msg: nats.aio.msg.Msg) -> None:
        seen.append(msg.subject)
        if msg.subject in arrived:
            arrived[msg.subject].set()

    watcher_url = server.url_for("jira-orchestrator", password["jira-orchestrator"])
    backend_url = server.url_for("fastapi-backend", password["fastapi-backend"])
    async with (
        connected(watcher_url) as watcher,
        connected(backend_url, error_cb=on_error) as backend,
        asyncio.timeout(30),  # each wait below is for an event; this only bounds a failure
    ):
        await watcher.subscribe("plugin.>", cb=record)
        # The subscription is live once it carries the watcher's own probe: nats-py's flush()
        # writes its PING ahead of a SUB still queued for its flusher task, so a flush
        # proves nothing about the subscription.
        await watcher.publish("plugin.x.probe", b"{}")
        await arrived["plugin.x.probe"].wait()
        await backend.publish("plugin.lobbi-platform-manager.events", b"{}")  # not its own
        await backend.publish(OWN_EVENTS, b"{}")  # its own, sent after
        await arrived[OWN_EVENTS].wait()
        await refusal.wait()
    assert seen == ["plugin.x.probe", OWN_EVENTS]  # the refused one never reached anybody
    assert ["permissions violation" in str(e).lower() for e in refused] == [True]


def test_ctrl_c_stops_everything_cleanly(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JIRA_ORCHESTRATOR_")}
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jira_orchestrator.cli",
            "up",
            "--http",
            "127.0.0.1:0",
            "--plugins",
            str(EXAMPLES / "plugins"),
            "--output",
            str(tmp_path / "out"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
    ) as process:
        try:
            assert process.stdout is not None
            lines = []
            for line in process.stdout:  # blocks until `up` says it runs
                lines.append(line)
                if "Ctrl-C stops everything" in line:
                    break
            process.send_signal(signal.SIGINT)
            rest, _ = process.communicate(timeout=60)
            assert process.returncode == 0, "".join(lines) + rest
        finally:
            if process.poll() is None:  # a failure above: its children die with it
                process.kill()
    said = "".join(lines)
    plugins = [  # all of them, but a plugin in another language whose runtime is missing here
        p.name
        for p in (EXAMPLES / "plugins").iterdir()
        if p.is_dir() and f"[up] {p.name} not started" not in said
    ]
    assert len(plugins) >= 5
    for plugin in plugins:  # each drained and stopped, after the orchestrator
        assert f"{plugin} stopped" in rest, rest
    assert rest.index("[orchestrator] stopping") < rest.index("stopped")


def test_up_with_an_unreachable_bus_says_so_and_exits_1(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JIRA_ORCHESTRATOR_")}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "jira_orchestrator.cli",
            "up",
            "--http",
            "127.0.0.1:0",
            "--plugins",
            str(EXAMPLES / "plugins"),
            "--bus",
            "nats://127.0.0.1:1",
            "--exit-after",
            "--output",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert run.returncode == 1
    assert "[orchestrator] error: cannot connect to NATS at nats://127.0.0.1:1" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr


def test_plugins_see_an_allow_list_of_the_operators_environment() -> None:
    from jira_orchestrator.cli.up import plugin_environment

    operator = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LC_ALL": "C.UTF-8",
        "JIRA_API_TOKEN": "jira-secret",
        "JIRA_ORCHESTRATOR_DASHBOARD_TOKEN": "dash-secret",
        "JIRA_ORCHESTRATOR_BUS_URL": "nats://jira-orchestrator:all-powerful@127.0.0.1:4222",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
        "MY_PLUGIN_SETTING": "needed",
        "JIRA_ORCHESTRATOR_PASS_ENV": "MY_PLUGIN_SETTING, ",
    }
    seen = plugin_environment(operator)
    assert seen == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LC_ALL": "C.UTF-8",
        "MY_PLUGIN_SETTING": "needed",
    }


def test_up_json_prints_one_result_line_per_issue_and_nothing_else(tmp_path: Path) -> None:
    examples = json.loads((EXAMPLES / "issues.json").read_text(encoding="utf-8"))
    issues = tmp_path / "issues.json"
    bad = [{"key": "BAD-1", "fields": {"summary": "Deploy it", "labels": 5}}, 7]
    issues.write_text(json.dumps([*examples[:6], *bad, *examples[6:]]), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JIRA_ORCHESTRATOR_")}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "jira_orchestrator.cli",
            "up",
            "--http",
            "off",  # the results on stdout are what this test reads
            "--plugins",
            str(EXAMPLES / "plugins"),
            "--issues",
            str(issues),
            "--output",
            str(tmp_path / "out"),
            "--fail",
            "frontend-design-system",
            "--exit-after",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]  # two were skipped
    lines = [json.loads(line) for line in run.stdout.splitlines()]  # nothing but results
    assert [line["key"] for line in lines] == [
        *(issue["key"] for issue in examples[:6]),
        "BAD-1",
        None,
        *(issue["key"] for issue in examples[6:]),
    ]
    assert [line["index"] for line in lines] == list(range(len(examples) + 2))
    invalid = [line for line in lines if line["outcome"] == "invalid"]
    assert [line["reason"] for line in invalid] == [
        "fields.labels: expected a list of strings, not int",
        "expected a JSON object, not a number",
    ]
    done = [line for line in lines if line["outcome"] != "invalid"]
    assert {line["outcome"] for line in done} == {"completed"}
    for line in done:
        assert line["doneBy"] != "frontend-design-system"  # it was failing
        assert line["fallback"] == (line["doneBy"] != line["routedTo"])
        assert line["ms"] > 0
        assert line["taskId"]
    assert any(line["fallback"] for line in done)
    assert "[nats-server] embedded" in run.stderr  # the human lines, apart
    assert "[frontend-design-system" in run.stderr  # the plugins' own lines too


def test_up_json_without_issues_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["up", "--plugins", str(EXAMPLES / "plugins"), "--json", "--exit-after"]
    )
    assert result.exit_code == 2
    assert "--json prints the results of --issues" in result.stderr
