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


def test_a_failure_inside_the_fixtures_does_not_spill_into_the_next_test(tmp_path: Path) -> None:
    # One session: the fixtures' tests, then (last, so that its leak reaches nobody else)
    # the old pattern, which shows that the check can fail: the cascade it guards against.
    (tmp_path / "test_a_fixtures.py").write_text(FAILING)
    (tmp_path / "test_b_leaky.py").write_text(LEAKY)
    (tmp_path / "pytest.ini").write_text(INI)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-rA"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    pid = int((tmp_path / "pids").read_text())
    try:
        summary = run.stdout.split("short test summary info")[-1]
        assert "PASSED test_a_fixtures.py::test_the_next_test_is_clean" in summary, run.stdout
        assert "FAILED test_b_leaky.py::test_the_next_test_is_clean" in summary, run.stdout
        assert "4 failed, 1 passed" in summary
        if needs_pidfd:
            assert wait_gone(pid, timeout=30), "the failing test's nats-server still runs"
    finally:
        kill_if_running(pid)
