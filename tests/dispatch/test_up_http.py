"""``up --http``: the dashboard, ``/metrics`` (with every plugin process's metrics),
``/healthz`` and ``/readyz`` while the ecosystem runs."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from jira_orchestrator.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WAIT = 90.0  # seconds: the bound on each wait, far above what any takes on a busy machine


def _processes(text: str) -> set[str]:
    return {
        sample.labels["process"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_up_serves_the_dashboard_and_every_process_metrics(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    for name in ("exec-automator", "k8s-helm-deployer"):
        shutil.copytree(EXAMPLES / "plugins" / name, plugins / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JIRA_ORCHESTRATOR_")}
    env.update(PYTHONUNBUFFERED="1", JIRA_ORCHESTRATOR_METRICS="0.2")
    command = [sys.executable, "-m", "jira_orchestrator.cli", "up", "--http", "127.0.0.1:0"]
    command += ["--plugins", str(plugins), "--output", str(tmp_path / "out")]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as process:
        try:
            assert process.stdout is not None
            lines: list[str] = []
            url = None
            for line in process.stdout:  # blocks until `up` says it runs
                lines.append(line)
                found = re.search(r"dashboard and /metrics on (http://\S+)", line)
                if found:
                    url = found.group(1)
                if "Ctrl-C stops everything" in line:
                    break
            assert url is not None, "".join(lines)
            with httpx.Client(base_url=url, timeout=WAIT) as client:
                assert client.get("/healthz").json() == {"status": "ok"}
                assert client.get("/readyz").status_code == 200
                overview = client.get("/api/overview").json()
                assert "exec-automator" in str(overview)
                assert client.get("/").status_code == 200
                # The plugins send a snapshot every 0.2 s: poll the other processes until
                # theirs arrived (bounded; nothing here waits for time itself to pass).
                deadline = time.monotonic() + WAIT
                seen: set[str] = set()
                while not {"exec-automator", "k8s-helm-deployer"} <= seen:
                    assert time.monotonic() < deadline, f"only {seen} in /metrics"
                    answer = client.get("/metrics")
                    assert answer.status_code == 200
                    seen = _processes(answer.text)
                    time.sleep(0.1)  # between two polls of other processes
                assert "orchestrator" in seen
            process.send_signal(signal.SIGINT)
            rest, _ = process.communicate(timeout=WAIT)
            assert process.returncode == 0, "".join(lines) + rest
        finally:
            if process.poll() is None:  # a failure above: its children die with it
                process.kill()
                process.wait()


def test_up_refuses_a_non_loopback_address_without_a_token(tmp_path: Path) -> None:
    env = {"JIRA_ORCHESTRATOR_DASHBOARD_TOKEN": ""}
    plugins = str(EXAMPLES / "plugins")
    result = CliRunner().invoke(app, ["up", "--http", "0.0.0.0:0", "--plugins", plugins], env=env)
    assert result.exit_code == 2, result.output
    assert "token" in result.output
    result = CliRunner().invoke(app, ["up", "--http", "127.0.0.1:http", "--plugins", plugins])
    assert result.exit_code == 2, result.output
    assert "--http" in result.output


def test_plugins_trace_where_the_orchestrator_does_but_get_no_exporter_secrets() -> None:
    from jira_orchestrator.cli.up import plugin_environment

    operator = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_SERVICE_NAME": "jira-orchestrator",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=backend-secret",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-api-key=backend-secret",
    }
    assert plugin_environment(operator) == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
    }
    passed = {**operator, "JIRA_ORCHESTRATOR_PASS_ENV": "OTEL_EXPORTER_OTLP_HEADERS"}
    assert plugin_environment(passed)["OTEL_EXPORTER_OTLP_HEADERS"] == "x-api-key=backend-secret"


def test_up_on_a_port_that_is_taken_says_so_and_exits_1(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    shutil.copytree(EXAMPLES / "plugins" / "exec-automator", plugins / "exec-automator")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JIRA_ORCHESTRATOR_")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "jira_orchestrator.cli", "up"]
        command += ["--http", f"127.0.0.1:{port}", "--plugins", str(plugins)]
        run = subprocess.run(
            [*command, "--output", str(tmp_path / "out")],
            capture_output=True,
            text=True,
            timeout=WAIT,
            env=env,
            check=False,
        )
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in run.stdout
    assert "--http off" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr
