"""``up`` supervises what it starts: plugins that exit or die, its nats-server, and itself
killed. Real processes on a real embedded nats-server; every wait is for an event (a line
``up`` prints, a process's exit), bounded only so that a failure ends."""

from __future__ import annotations

import fcntl
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from jira_orchestrator._core.processes import identity
from tests.dispatch._processes import kill_if_running, needs_pidfd, wait_gone

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WAIT = 60.0  # seconds: the bound on each event, far above what any takes on a busy machine
OPS = {"key": "OPS-401", "fields": {"summary": "Deploy billing-api to EKS with 3 replicas"}}

# The Helm plugin, instrumented: it logs each run of handle_issue, and the first one it is
# given never answers (the process is then killed by the test).
HANG_ONCE = """
import asyncio, os, runpy
from pathlib import Path
from jira_orchestrator.plugins import Issue

original = runpy.run_path(str(Path(__file__).with_name("original.py")))
plugin = original["plugin"]
output = Path(os.environ["JIRA_ORCHESTRATOR_OUTPUT"])

def note(text):
    with (output / "executions.log").open("a") as log:
        log.write(text + "\\n")

@plugin.command("handle_issue")
async def handle_issue(issue: Issue) -> dict:
    note(f"start {issue.key}")
    marker = output / "hung-once"
    if not marker.exists():
        marker.touch()
        print(f"HANGING {issue.key} pid={os.getpid()}", flush=True)
        await asyncio.Event().wait()
    result = original["handle_issue"](issue)
    note(f"done {issue.key}")
    return result

plugin.run()
"""

# Crashes on its first request, and from then on right after it starts.
CRASHING = """
import asyncio, os, runpy
from pathlib import Path
from jira_orchestrator.plugins import Issue

original = runpy.run_path(str(Path(__file__).with_name("original.py")))
plugin = original["plugin"]
marker = Path(os.environ["JIRA_ORCHESTRATOR_OUTPUT"]) / "crashed"

@plugin.command("handle_issue")
def handle_issue(issue: Issue) -> None:
    marker.touch()
    os._exit(3)

async def main():
    await plugin.start()
    if marker.exists():
        os._exit(3)
    await asyncio.Event().wait()

asyncio.run(main())
"""

pytestmark = pytest.mark.skipif(not needs_pidfd, reason="parent-death signals are Linux's")


def ecosystem(tmp_path: Path, helm: str | None = None) -> Path:
    """The Helm plugin and its fallback, exec-automator; ``helm`` replaces its plugin.py."""
    plugins = tmp_path / "plugins"
    for name in ("exec-automator", "k8s-helm-deployer"):
        shutil.copytree(EXAMPLES / "plugins" / name, plugins / name)
    if helm is not None:
        entry = plugins / "k8s-helm-deployer" / "plugin.py"
        entry.rename(entry.with_name("original.py"))
        entry.write_text(helm)
    return plugins


class Up:
    """A running ``jira-orchestrator up``, its output read line by line as it comes."""

    def __init__(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JIRA_ORCHESTRATOR_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jira_orchestrator.cli", "up", "--http", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**env, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line)
        self._queue.put(None)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str) -> str:
        """The next line holding ``text``."""
        while True:
            try:
                line = self._queue.get(timeout=WAIT)
            except queue.Empty:
                raise AssertionError(f"no {text!r} within {WAIT}s:\n{self.output}") from None
            if line is None:
                self._queue.put(None)
                raise AssertionError(f"up ended without {text!r}:\n{self.output}")
            self.lines.append(line)
            if text in line:
                return line

    def finish(self) -> int:
        """Its exit code, once all it printed has been read."""
        code = self.process.wait(timeout=WAIT)
        while (line := self._queue.get(timeout=WAIT)) is not None:
            self.lines.append(line)
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def run_up(tmp_path: Path) -> Iterator[type[Up]]:
    """Starts ``up``; whatever happens, it and every child it recorded are killed after."""
    started: list[Up] = []

    class Tracked(Up):
        def __init__(self, *args: str) -> None:
            super().__init__(*args)
            started.append(self)

    try:
        yield Tracked
    finally:
        for run in started:
            run.close()
        for recorded in tmp_path.rglob("processes.json"):
            for child in json.loads(recorded.read_text()).get("children", {}).values():
                kill_if_running(child["pid"])


def children(output: Path) -> dict[str, int]:
    recorded = json.loads((output / ".orchestrator" / "processes.json").read_text())
    return {name: child["pid"] for name, child in recorded["children"].items()}


def test_a_plugin_that_exits_at_start_stops_up_at_once_naming_it(
    tmp_path: Path, run_up: type[Up]
) -> None:
    plugins = ecosystem(tmp_path, helm='raise SystemExit("boom: no cluster credentials")\n')
    up = run_up("--plugins", str(plugins), "--output", str(tmp_path / "out"), "--exit-after")
    up.wait_for("plugin 'k8s-helm-deployer' exited with code 1 during start-up")
    assert up.finish() == 1  # not after the 60 s wait for readiness
    assert "[k8s-helm-deployer] boom: no cluster credentials\n" in up.output  # its last words
    assert "stopping" in up.output
    assert "plugins not ready" not in up.output
    assert not (tmp_path / "out" / ".orchestrator" / "processes.json").exists()


def test_a_plugin_killed_mid_request_is_restarted_and_its_request_falls_back(
    tmp_path: Path, run_up: type[Up]
) -> None:
    plugins = ecosystem(tmp_path, HANG_ONCE)
    issues = tmp_path / "issues.json"
    issues.write_text(json.dumps([OPS]))
    output = tmp_path / "out"
    up = run_up("--plugins", str(plugins), "--output", str(output), "--issues", str(issues))
    hanging = up.wait_for("HANGING OPS-401")
    os.kill(int(hanging.rsplit("pid=", 1)[1]), signal.SIGKILL)
    up.wait_for("[up] k8s-helm-deployer was killed by SIGKILL; restarting it in 0.5s (restart 1")
    # well within the request's 300 s timeout: the dispatcher heard of the death at once
    up.wait_for("1/1 issues completed, 1 by a fallback plugin")
    up.wait_for("k8s-helm-deployer ready")  # the restarted process
    up.process.send_signal(signal.SIGINT)
    assert up.finish() == 0, up.output
    assert "k8s-helm-deployer stopped" in up.output
    assert (output / "executions.log").read_text().split("\n").count("done OPS-401") == 0
    assert (output / "exec-automator").is_dir()  # the fallback did it


def test_a_plugin_that_keeps_dying_is_given_up_on_after_the_limit(
    tmp_path: Path, run_up: type[Up]
) -> None:
    plugins = ecosystem(tmp_path, CRASHING)
    issues = tmp_path / "issues.json"
    issues.write_text(json.dumps([OPS]))
    up = run_up(
        *("--plugins", str(plugins), "--output", str(tmp_path / "out")),
        *("--issues", str(issues), "--restarts", "2"),
    )
    up.wait_for("[up] k8s-helm-deployer exited with code 3; restarting it in 0.5s (restart 1 of 2)")
    up.wait_for("[up] k8s-helm-deployer exited with code 3; restarting it in 1s (restart 2 of 2)")
    up.wait_for(
        "[up] k8s-helm-deployer exited with code 3; giving up on it after 2 restart(s): "
        "its work goes to its fallbacks"
    )
    up.process.send_signal(signal.SIGINT)
    assert up.finish() == 0, up.output
    assert "1/1 issues completed, 1 by a fallback plugin" in up.output
    assert "exec-automator stopped" in up.output  # up kept serving without it


def test_a_nats_server_that_dies_is_restarted_on_its_port(tmp_path: Path, run_up: type[Up]) -> None:
    plugins = ecosystem(tmp_path)
    output = tmp_path / "out"
    up = run_up("--plugins", str(plugins), "--output", str(output))
    embedded = up.wait_for("[nats-server] embedded on ").split()[3].rstrip(",")
    up.wait_for("Ctrl-C stops everything")
    first = children(output)["nats-server"]
    os.kill(first, signal.SIGKILL)
    up.wait_for(f"[nats-server] was killed by SIGKILL; restarting it on {embedded}")
    up.wait_for(f"[nats-server] running again on {embedded}")
    assert children(output)["nats-server"] != first
    up.process.send_signal(signal.SIGINT)
    assert up.finish() == 0, up.output
    assert "exec-automator stopped" in up.output


def test_killing_up_leaves_no_process_and_the_next_up_does_the_task_once(
    tmp_path: Path, run_up: type[Up]
) -> None:
    plugins = ecosystem(tmp_path, HANG_ONCE)
    issues = tmp_path / "issues.json"
    issues.write_text(json.dumps([OPS]))
    output = tmp_path / "out"
    up = run_up("--plugins", str(plugins), "--output", str(output), "--issues", str(issues))
    up.wait_for("HANGING OPS-401")
    left = children(output)
    assert set(left) == {"nats-server", "exec-automator", "k8s-helm-deployer"}
    up.process.kill()  # SIGKILL: up can do nothing about it
    up.process.wait()
    for name, pid in left.items():
        assert wait_gone(pid, timeout=WAIT), f"{name} (pid {pid}) outlived up"
    again = run_up("--plugins", str(plugins), "--output", str(output), "--exit-after")
    assert again.finish() == 0, again.output
    assert "resumed 1 unfinished task(s)" in again.output
    runs = (output / "executions.log").read_text().split("\n")
    assert runs.count("start OPS-401") == 2  # the one killed, and the resumed one
    assert runs.count("done OPS-401") == 1
    assert (output / "k8s-helm-deployer" / "charts" / "billing-api" / "Chart.yaml").is_file()


def test_an_up_on_a_killed_ones_folder_ends_what_it_left_running(
    tmp_path: Path, run_up: type[Up]
) -> None:
    plugins = ecosystem(tmp_path)
    output = tmp_path / "out"
    state = output / ".orchestrator"
    state.mkdir(parents=True)
    # what a killed up leaves where the kernel sends no parent-death signal: a child, in a
    # process group of its own, still running, recorded in processes.json
    with subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE,
        start_new_session=True,
    ) as orphan:
        try:
            recorded = {"children": {"k8s-helm-deployer": identity(orphan.pid).to_dict()}}
            (state / "processes.json").write_text(json.dumps(recorded))
            (state / "nats").mkdir()
            (state / "nats" / "jetstream").mkdir()  # the killed run's stored requests
            up = run_up("--plugins", str(plugins), "--output", str(output), "--exit-after")
            assert up.finish() == 0, up.output
            assert orphan.wait(timeout=WAIT) == -signal.SIGKILL
        finally:
            orphan.kill()
    assert (
        "[up] an earlier up on this output folder was killed; ended what it left running: "
        f"k8s-helm-deployer (pid {orphan.pid})"
    ) in up.output
    assert not (state / "nats").exists()


def test_a_second_up_on_a_folder_in_use_is_refused(tmp_path: Path, run_up: type[Up]) -> None:
    plugins = ecosystem(tmp_path)
    state = tmp_path / "out" / ".orchestrator"
    state.mkdir(parents=True)
    with (state / "up.lock").open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running up holds it
        lock.write("4242\n")
        lock.flush()
        up = run_up("--plugins", str(plugins), "--output", str(tmp_path / "out"), "--exit-after")
        assert up.finish() == 1
    assert "[up] error: another `up` (pid 4242) is running on" in up.output
    assert "embedded" not in up.output  # nothing started
