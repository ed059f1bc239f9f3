"""Children that do not outlive their parent: the embedded nats-server and `die_with_parent`."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from jira_orchestrator._core.processes import ProcessIdentity, die_with_parent, identity, is_alive
from jira_orchestrator.transports.nats_server import NatsServer
from tests.dispatch._processes import kill_if_running, needs_pidfd, wait_gone

pytestmark = pytest.mark.skipif(not needs_pidfd, reason="parent-death signals are Linux's")

OWNER = """
import sys
from pathlib import Path
from jira_orchestrator.transports.nats_server import NatsServer
server = NatsServer(Path(sys.argv[1])).start()
print(server.process.pid, flush=True)
sys.stdin.read()  # until killed
"""


def test_the_embedded_server_does_not_outlive_its_owner(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", OWNER, str(tmp_path / "nats")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as owner:
        assert owner.stdout is not None
        server = int(owner.stdout.readline())
        try:
            owner.kill()  # SIGKILL: no chance to stop the server itself
            owner.wait()
            assert wait_gone(server, timeout=30), "nats-server outlived its owner"
        finally:
            kill_if_running(server)


def test_an_interrupted_start_leaves_no_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[int] = []

    def interrupted(self: NatsServer, offset: int) -> bytes:
        assert self.process is not None
        started.append(self.process.pid)
        raise KeyboardInterrupt  # what Ctrl-C or a test's timeout does mid-start

    monkeypatch.setattr(NatsServer, "_log_since", interrupted)
    with pytest.raises(KeyboardInterrupt):
        NatsServer(tmp_path / "nats").start()
    assert len(started) == 1
    assert wait_gone(started[0], timeout=30)


def test_restart_keeps_the_port_its_clients_know(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "nats") as server:
        port = server.port
        assert server.process is not None
        server.process.kill()  # died on its own
        server.process.wait()
        server.restart()
        assert server.port == port
        assert server.process is not None
        assert server.process.poll() is None
        server.kill()
        with (
            socket.create_server(("127.0.0.1", port)),  # someone else took the port
            pytest.raises(RuntimeError, match=f"127.0.0.1:{port}"),
        ):
            server.restart()  # clients know this port: moving would strand them
        assert server.port == port


def test_a_child_started_with_die_with_parent_gets_the_signal(tmp_path: Path) -> None:
    script = (
        "import signal, subprocess, sys\n"
        "from jira_orchestrator._core.processes import die_with_parent\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'],"
        " stdin=subprocess.PIPE, preexec_fn=die_with_parent(signal.SIGKILL))\n"
        "print(child.pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        try:
            assert is_alive(identity(child))
            parent.kill()
            parent.wait()
            assert wait_gone(child, timeout=30)
        finally:
            kill_if_running(child)


def test_an_identity_names_one_process_not_a_reused_pid() -> None:
    me = identity(os.getpid())
    assert is_alive(me)
    assert ProcessIdentity.from_dict(me.to_dict()) == me
    assert me.started is not None
    assert not is_alive(ProcessIdentity(os.getpid(), me.started + 1))  # same pid, other start
    for junk in (None, [], {"pid": "1"}, {"pid": 1}, {"pid": 5, "started": "x"}):
        assert ProcessIdentity.from_dict(junk) is None
    assert die_with_parent(signal.SIGTERM) is not None


def test_the_server_configuration_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "nats", extra_config="authorization { users = [] }") as server:
        config = server.directory / "nats-server.conf"
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
