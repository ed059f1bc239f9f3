"""``up --cluster`` and ``nats-config --cluster``: the ecosystem on a NATS cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jira_orchestrator.cli import app
from jira_orchestrator.cli._cluster import spread_urls
from jira_orchestrator.orchestrator.natsconfig import NatsUser
from jira_orchestrator.transports.nats_cluster import NatsCluster
from jira_orchestrator.transports.nats_server import server_binary

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.timeout(300)  # the subprocess's own timeout (240 s) ends it first
def test_up_cluster_runs_the_demo_on_three_nodes(tmp_path: Path) -> None:
    output = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JIRA_ORCHESTRATOR_")}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "jira_orchestrator.cli",
            "up",
            "--cluster",
            "3",
            "--plugins",
            str(EXAMPLES / "plugins"),
            "--issues",
            str(EXAMPLES / "issues.json"),
            "--output",
            str(output),
            "--exit-after",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "embedded cluster of 3 nodes" in run.stdout
    assert "streams replicated 3-wise" in run.stdout
    assert "12/12 issues completed" in run.stdout
    assert not (output / ".orchestrator" / "nats").exists()  # the nodes' folders go


def test_each_process_starts_on_another_node(tmp_path: Path) -> None:
    cluster = NatsCluster(tmp_path, size=3)
    cluster._plan()  # ports and nodes, not started
    ports = [node.port for node in cluster.nodes]
    users = [NatsUser(name, f"pw-{name}", (), ()) for name in ("a", "b", "c", "d", "x")]
    urls = spread_urls(cluster, users, ["a", "b", "c", "d", "absent"])
    assert sorted(urls) == ["a", "b", "c", "d"]  # only the processes, with their users
    firsts = [int(url.split(",")[0].rsplit(":", 1)[1]) for url in urls.values()]
    assert firsts == [ports[0], ports[1], ports[2], ports[0]]
    assert urls["b"].startswith(f"nats://b:pw-b@127.0.0.1:{ports[1]},")
    assert urls["b"].count("b:pw-b@") == 3  # the fallbacks too
    assert urls["b"].endswith("?replicas=3")


def test_nats_config_cluster_writes_a_valid_file_per_node(tmp_path: Path) -> None:
    folder = tmp_path / "cluster"
    result = CliRunner().invoke(
        app,
        [
            "nats-config",
            str(EXAMPLES / "plugins"),
            "--cluster",
            "3",
            "--hosts",
            "127.0.0.1,127.0.0.1,127.0.0.1",
            "--output",
            str(folder),
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == [
        "authorization.conf",
        "node-1.conf",
        "node-2.conf",
        "node-3.conf",
    ]
    assert "replicas=3" in result.output
    for path in folder.iterdir():
        assert oct(path.stat().st_mode & 0o777) == "0o600"  # passwords
    for node in ("node-1.conf", "node-2.conf", "node-3.conf"):
        check = subprocess.run(
            [server_binary(), "-t", "-c", node],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr
    text = (folder / "node-2.conf").read_text()
    assert ":6222" in text
    assert ":6224" in text
    assert 'include "authorization.conf"' in text


def test_nats_config_cluster_needs_an_output_folder() -> None:
    result = CliRunner().invoke(app, ["nats-config", str(EXAMPLES / "plugins"), "--cluster", "3"])
    assert result.exit_code == 2
    assert "--cluster needs --output" in result.output


def test_nats_config_cluster_of_two_warns_about_quorum(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["nats-config", str(EXAMPLES / "plugins"), "--cluster", "2", "-o", str(tmp_path / "c")],
    )
    assert result.exit_code == 0, result.output
    assert "warning: a cluster of 2 nodes stops JetStream" in result.output
    assert "replicas=2" in result.output


def test_up_cluster_refuses_an_even_size_and_a_bus() -> None:
    even = CliRunner().invoke(app, ["up", "--cluster", "2", "--plugins", str(EXAMPLES / "plugins")])
    assert even.exit_code == 2
    assert "3, 5 or 7" in even.output
    both = CliRunner().invoke(app, ["up", "--cluster", "3", "--bus", "nats://x:4222"])
    assert both.exit_code == 2
    assert "--cluster starts its own nodes" in both.output
