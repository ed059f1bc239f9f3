"""``jira-orchestrator serve`` beside ``jira-orchestrator sandbox``, as a user runs them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integrations.jira.test_sandbox_cli import ROOT, started

__all__ = ["started"]

CLI = [sys.executable, "-m", "jira_orchestrator.cli"]
AUTH = ("sandbox@example.com", "sandbox-token")


@pytest.fixture
def served(
    started: tuple[subprocess.Popen[str], str], tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    _, site = started
    config = tmp_path / "jira-orchestrator.toml"
    made = subprocess.run(
        [*CLI, "jira", "init", "--sandbox", site, "-o", str(config)], check=False, timeout=60
    )
    assert made.returncode == 0
    env = {**os.environ, "JIRA_ORCHESTRATOR_OUTPUT": str(tmp_path / "out")}
    process = subprocess.Popen(
        [
            *CLI, "serve", "--config", str(config), "--plugins", str(ROOT / "examples/plugins"),
            "--http", "127.0.0.1:0", "--output", str(tmp_path / "out"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(r"webhooks at (http://127\.0\.0\.1:\d+/webhooks/jira)", first)
        assert match, first + (process.stderr.read() if process.stderr else "")
        assert process.stdout.readline().startswith(f"Jira site {site}")
        yield process, site, match.group(1)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_serve_routes_an_issue_created_in_jira_and_writes_back(
    served: tuple[subprocess.Popen[str], str, str],
) -> None:
    process, site, webhook = served
    with httpx.Client(base_url=site, auth=AUTH, timeout=60) as jira:
        registered = jira.post("/_sandbox/webhooks", json={"url": webhook})
        assert registered.status_code in (200, 201), registered.text
        created = jira.post(
            "/rest/api/3/issue",
            json={
                "fields": {
                    "project": {"key": "OPS"},
                    "summary": "Deploy billing-api to the EKS cluster with a Helm chart",
                    "issuetype": {"name": "Task"},
                }
            },
        )
        assert created.status_code == 201, created.text
        key = created.json()["key"]
        assert process.stdout is not None
        line = process.stdout.readline()  # one line per processed event: wait for it
        assert line.startswith(f"{key}: routed to k8s-helm-deployer, completed"), line
        issue = jira.get(f"/rest/api/3/issue/{key}").json()
        assert "routed:k8s-helm-deployer" in issue["fields"]["labels"]
        assert issue["fields"]["status"]["name"] == "Done"
        assert issue["fields"]["comment"]["total"] == 2
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert process.stderr is not None
    assert "Traceback" not in process.stderr.read()


def test_serve_refuses_the_network_without_a_webhook_secret(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[jira]\nsite = "https://team.atlassian.net"\nprojects = ["OPS"]\n'
        '[jira.auth]\nemail = "me@example.com"\ntokenEnv = "JIRA_API_TOKEN"\n'
    )
    result = subprocess.run(
        [*CLI, "serve", "--config", str(config), "--http", "0.0.0.0:0"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "without a signature check" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_the_network_without_a_dashboard_token(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[jira]\nsite = "https://team.atlassian.net"\nprojects = ["OPS"]\n'
        '[jira.auth]\nemail = "me@example.com"\ntokenEnv = "JIRA_API_TOKEN"\n'
        '[jira.webhook]\nsecretEnv = "HOOK"\n'
    )
    env = {**os.environ, "HOOK": "s3cret-hook", "JIRA_API_TOKEN": "t"}
    env.pop("JIRA_ORCHESTRATOR_DASHBOARD_TOKEN", None)
    result = subprocess.run(
        [*CLI, "serve", "--config", str(config), "--http", "0.0.0.0:0"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 2
    assert "without a token" in result.stderr
