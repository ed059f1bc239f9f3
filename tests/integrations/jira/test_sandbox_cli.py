"""``jira-orchestrator sandbox`` as a user runs it: a real process on a free port."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[3]
COMMAND = [sys.executable, "-m", "jira_orchestrator.cli", "sandbox"]


@pytest.fixture
def started() -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen(
        [*COMMAND, "--port", "0", "--issues", str(ROOT / "examples" / "issues.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # printed once the port is bound
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", first)
        assert match, first + process.stderr.read() if process.stderr else first
        yield process, match.group(1)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_serves_jira_on_a_free_port_and_stops_cleanly(
    started: tuple[subprocess.Popen[str], str],
) -> None:
    process, url = started
    auth = ("sandbox@example.com", "sandbox-token")
    with httpx.Client(base_url=url, auth=auth, timeout=30) as client:
        me = client.get("/rest/api/3/myself")
        assert me.status_code == 200
        assert me.json()["emailAddress"] == "sandbox@example.com"
        issue = client.get("/rest/api/3/issue/SHOP-101")
        assert issue.json()["fields"]["summary"] == "Expose the order history endpoint"
        assert issue.json()["self"].startswith(url)
        assert client.get("/rest/api/3/myself", auth=("x", "y")).status_code == 401
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert process.stdout is not None
    assert process.stderr is not None
    output = process.stdout.read()
    assert "credentials: sandbox@example.com / sandbox-token" in output
    assert "Jira sandbox stopped" in output
    assert "Traceback" not in process.stderr.read()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )


def test_a_port_in_use_exits_1_without_a_traceback() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        result = run("--port", str(busy.getsockname()[1]))
    assert result.returncode == 1
    assert "error: cannot listen on 127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('[{"key": "bad key", "fields": {"summary": "x"}}]', "[0].key"),
        ('[{"key": "A-1", "fields": {}}]', "[0].fields.summary"),
        ('{"issues": 3}', "expected a list of issues"),
    ],
)
def test_a_bad_issues_file_exits_2_naming_the_problem(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "issues.json"
    path.write_text(content, encoding="utf-8")
    result = run("--port", "0", "--issues", str(path))
    assert result.returncode == 2
    assert message in result.stderr
    assert str(path) in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_issues_file_or_bad_webhook_exits_2(tmp_path: Path) -> None:
    missing = run("--port", "0", "--issues", str(tmp_path / "nope.json"))
    assert missing.returncode == 2
    assert "cannot read it" in missing.stderr
    webhook = run("--port", "0", "--webhook", "ftp://example.com")
    assert webhook.returncode == 2
    assert "--webhook" in webhook.stderr


def test_the_example_issues_load_as_valid_adf() -> None:
    from jira_orchestrator.integrations.jira.sandbox import JiraSandbox
    from tests.integrations.jira.contract import JiraContract

    sandbox = JiraSandbox()
    keys = sandbox.load_issues_file(ROOT / "examples" / "issues.json")
    assert len(keys) == len(json.loads((ROOT / "examples" / "issues.json").read_text()))
    contract = JiraContract()
    for key in keys:
        description = sandbox.issue(key)["fields"]["description"]
        assert contract.adf_errors(description) == [], key
    assert sandbox.create_issue("SHOP", "next") == "SHOP-103"
