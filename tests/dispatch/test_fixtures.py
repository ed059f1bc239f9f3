"""The fixtures of these tests release everything even when a test fails inside them, so
that one failure never fails the tests after it (an open NATS client, for instance, is a
ResourceWarning in whichever later test the garbage collector happens to run)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.dispatch._processes import kill_if_running, needs_pidfd, wait_gone

ROOT = Path(__file__).resolve().parents[2]

# the project's settings that matter here: warnings are errors, asyncio tests
INI = """[pytest]
addopts = -p no:cacheprovider -p no:looptime_plugin
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""

FAILING = """
import gc
from pathlib import Path

from tests.dispatch.conftest import Ecosystem, ecosystem  # noqa: F401
from tests.dispatch.test_up import connected, secured_server  # noqa: F401

PIDS = Path(__file__).with_name("pids")


async def test_fails_with_a_server_and_clients_open(secured_server):
    server, password = secured_server
    PIDS.write_text(str(server.process.pid))
    async with connected(server.url_for("jira-orchestrator", password["jira-orchestrator"])):
        async with connected(server.url_for("fastapi-backend", password["fastapi-backend"])):
            raise AssertionError("deliberate failure inside the fixture's scope")


async def test_fails_with_an_ecosystem_running(ecosystem):
    await ecosystem.start("exec-automator", "k8s-helm-deployer")
    raise AssertionError("deliberate failure inside the fixture's scope")


def test_the_next_test_is_clean():
    gc.collect()  # what was left open would warn here, failing this test
"""


# What the permission test did before: its clients closed only when it passed.
LEAKY = """
import gc

import nats

from tests.dispatch.test_up import secured_server  # noqa: F401


async def test_fails_with_clients_left_open(secured_server):
    server, password = secured_server
    await nats.connect(server.url_for("fastapi-backend", password["fastapi-backend"]))
    raise AssertionError("deliberate failure")


def test_the_next_test_is_clean():
    gc.collect()
"""


def run_inner(folder: Path, tests: str) -> subprocess.CompletedProcess[str]:
    (folder / "test_inner.py").write_text(tests)
    (folder / "pytest.ini").write_text(INI)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "test_inner.py", "-q"],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_client_left_open_by_a_failing_test_fails_the_next_one(tmp_path: Path) -> None:
    """The check below can fail: this is the cascade it guards against."""
    run = run_inner(tmp_path, LEAKY)
    assert "2 failed" in run.stdout, run.stdout + run.stderr
    assert "test_the_next_test_is_clean" in run.stdout.split("short test summary")[-1]


def test_a_failure_inside_the_fixtures_does_not_spill_into_the_next_test(tmp_path: Path) -> None:
    run = run_inner(tmp_path, FAILING)
    pid = int((tmp_path / "pids").read_text())
    try:
        assert "2 failed, 1 passed" in run.stdout, run.stdout + run.stderr
        assert "deliberate failure" in run.stdout
        for leak in ("ResourceWarning", "Unraisable", "Task was destroyed", "unclosed"):
            assert leak not in run.stdout + run.stderr, run.stdout + run.stderr
        if needs_pidfd:
            assert wait_gone(pid, timeout=30), "the failing test's nats-server still runs"
    finally:
        kill_if_running(pid)
