"""What ``up`` runs and watches: a process per plugin, restarted when it dies, none left over.

Each child starts in a session of its own (a terminal's Ctrl-C reaches ``up`` alone, which
stops the plugins after the orchestrator) and, on Linux, the kernel kills it if ``up``
dies, SIGKILL included (a parent-death signal). ``up`` holds a lock in the output folder
while it runs and writes there the identity (pid and start time) of each child; an ``up``
that finds the lock free but identities left over knows an earlier one was killed, and
ends what it left (processes, and their process groups) before it starts its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from jira_orchestrator._core.clock import monotonic
from jira_orchestrator._core.errors import JiraOrchestratorError
from jira_orchestrator._core.processes import ProcessIdentity, die_with_parent, identity, is_alive

__all__ = ["Busy", "PluginProcess", "RestartPolicy", "RunFolder", "Supervisor", "describe_exit"]


def describe_exit(code: int) -> str:
    """``exited with code 1``, ``was killed by SIGKILL``."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"


class Busy(JiraOrchestratorError):
    """Another ``up`` holds the output folder."""


class RunFolder:
    """``<output>/.orchestrator``: the lock of the ``up`` using it and its children's pids."""

    def __init__(self, output: Path) -> None:
        self.root = output / ".orchestrator"
        self.nats = self.root / "nats"  # the embedded server's configuration, log, JetStream
        self._lock_path = self.root / "up.lock"
        self._pids = self.root / "processes.json"
        self._lock: IO[str] | None = None
        self._children: dict[str, ProcessIdentity] = {}

    def acquire(self) -> None:
        """Take the folder; raise `Busy` naming the ``up`` that holds it."""
        self.root.mkdir(parents=True, exist_ok=True)
        lock = self._lock_path.open("a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            lock.close()
            raise Busy(
                f"another `up` (pid {holder}) is running on {self.root.parent}; stop it "
                "first, or give this one another --output"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        self._lock = lock

    def clear_leftovers(self) -> list[str]:
        """End the processes an earlier, killed ``up`` left running; say which.

        Only a pid that still names the process recorded (same start time) is signalled,
        with its whole process group. The earlier server's JetStream store goes too: the
        requests in it belong to tasks that `Orchestrator.resume` sends again, so keeping
        them would have those done twice.
        """
        cleared: list[str] = []
        try:
            recorded = json.loads(self._pids.read_text())
        except (OSError, ValueError):
            recorded = {}
        children = recorded.get("children") if isinstance(recorded, dict) else None
        for name, data in (children if isinstance(children, dict) else {}).items():
            child = ProcessIdentity.from_dict(data)
            if child is None or child.pid == os.getpid() or not is_alive(child):
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                try:
                    os.killpg(child.pid, signal.SIGKILL)
                except ProcessLookupError:  # not a group leader after all
                    os.kill(child.pid, signal.SIGKILL)
            cleared.append(f"{name} (pid {child.pid})")
        self._pids.unlink(missing_ok=True)
        self.clear_server()
        return cleared

    def clear_server(self) -> None:
        """Remove the embedded server's folder (passwords, JetStream store, log)."""
        _remove_tree(self.nats)

    def record(self, name: str, pid: int) -> None:
        self._children[name] = identity(pid)
        self._write()

    def forget(self, name: str) -> None:
        if self._children.pop(name, None) is not None:
            self._write()

    def _write(self) -> None:
        data = {
            "up": identity(os.getpid()).to_dict(),
            "children": {name: child.to_dict() for name, child in self._children.items()},
        }
        scratch = self._pids.with_suffix(".tmp")
        scratch.write_text(json.dumps(data, indent=2) + "\n")
        scratch.replace(self._pids)

    def release(self) -> None:
        """Forget the children (all stopped) and let the folder go."""
        self._children.clear()
        self._pids.unlink(missing_ok=True)
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None


def _remove_tree(path: Path) -> None:
    if not path.exists():
        return
    for child in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if child.is_dir() and not child.is_symlink():
            child.rmdir()
        else:
            child.unlink()
    path.rmdir()


@dataclass(frozen=True)
class RestartPolicy:
    """How ``up`` restarts a plugin that died: ``limit`` times in a row (a run of
    ``stable_after`` seconds starts the count again), waiting ``first_delay`` seconds,
    doubled each time up to ``max_delay``."""

    limit: int = 5
    first_delay: float = 0.5
    max_delay: float = 30.0
    stable_after: float = 60.0

    def delay(self, restarts: int) -> float:
        return float(min(self.first_delay * 2**restarts, self.max_delay))


@dataclass
class PluginProcess:
    """One plugin's process, through its restarts."""

    name: str
    argv: tuple[str, ...]
    """Its command line: ``(python, plugin.py)``, or its manifest's runtime."""
    env: dict[str, str]
    cwd: Path | None = None
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0
    given_up: bool = False
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)
    pump: asyncio.Task[None] | None = field(default=None, repr=False)


Say = Callable[[str], None]


class Supervisor:
    """Starts the plugins, prints what they say, and deals with their exits.

    A plugin that exits before ``running`` is called (start-up) fails the whole ``up``
    (`failure` is set with a message naming it); afterwards it is reported, ``on_exit``
    is called with its name and how it ended, and it is restarted under ``policy``.
    """

    def __init__(
        self,
        folder: RunFolder,
        plugins: list[PluginProcess],
        *,
        say: Say,
        policy: RestartPolicy,
        on_exit: Callable[[str, str], None] = lambda name, how: None,
    ) -> None:
        self.folder = folder
        self.plugins = {plugin.name: plugin for plugin in plugins}
        self.say = say
        self.policy = policy
        self.on_exit = on_exit
        self.width = max([len(p.name) for p in plugins] + [len("orchestrator")])
        self.failure: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._running = False
        self._stopping = False
        self._pumps: set[asyncio.Task[None]] = set()

    @property
    def stopping(self) -> bool:
        """Whether `stop` was called: exits from now on are expected."""
        return self._stopping

    def fail(self, message: str) -> None:
        """Have ``up`` stop with ``message`` (the first failure wins)."""
        if not self.failure.done():
            self.failure.set_result(message)

    def running(self) -> None:
        """Start-up is over: from now on a plugin that dies is restarted."""
        self._running = True

    async def start(self) -> None:
        for plugin in self.plugins.values():
            await self._spawn(plugin)
            plugin.watcher = asyncio.get_running_loop().create_task(self._watch(plugin))

    async def _spawn(self, plugin: PluginProcess) -> None:
        # From the loop's (main) thread: the parent-death signal follows the thread that
        # started the child.
        process = await asyncio.create_subprocess_exec(
            *plugin.argv,
            cwd=plugin.cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=plugin.env,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGKILL),
        )
        plugin.process = process
        plugin.started_at = monotonic()
        self.folder.record(plugin.name, process.pid)
        assert process.stdout is not None
        pump = asyncio.get_running_loop().create_task(self._pump(plugin.name, process.stdout))
        plugin.pump = pump
        self._pumps.add(pump)
        pump.add_done_callback(self._pumps.discard)

    async def _pump(self, name: str, stream: asyncio.StreamReader) -> None:
        prefix = f"[{name:<{self.width}}] "
        while line := await stream.readline():
            sys.stdout.write(prefix + line.decode(errors="replace"))
            if not line.endswith(b"\n"):
                sys.stdout.write("\n")
            sys.stdout.flush()

    async def _watch(self, plugin: PluginProcess) -> None:
        while plugin.process is not None:
            code = await plugin.process.wait()
            if plugin.pump is not None:  # its last words (a traceback) before our line on it
                await asyncio.wait([plugin.pump], timeout=2.0)
            self.folder.forget(plugin.name)
            if self._stopping:
                return
            how = describe_exit(code)
            self.on_exit(plugin.name, how)
            if not self._running:
                self.fail(f"plugin {plugin.name!r} {how} during start-up (its output is above)")
                return
            if monotonic() - plugin.started_at >= self.policy.stable_after:
                plugin.restarts = 0
            if plugin.restarts >= self.policy.limit:
                plugin.given_up = True
                self.say(
                    f"[up] {plugin.name} {how}; giving up on it after {plugin.restarts} "
                    "restart(s): its work goes to its fallbacks"
                )
                return
            delay = self.policy.delay(plugin.restarts)
            plugin.restarts += 1
            self.say(
                f"[up] {plugin.name} {how}; restarting it in {delay:g}s "
                f"(restart {plugin.restarts} of {self.policy.limit})"
            )
            await asyncio.sleep(delay)  # the backoff itself: waiting is the point
            if self._stopping:
                return
            try:
                await self._spawn(plugin)
            except OSError as error:
                plugin.given_up = True
                self.say(f"[up] {plugin.name} could not be restarted ({error}); giving up on it")
                return

    async def _drained(self) -> None:
        if self._pumps:
            await asyncio.wait(list(self._pumps), timeout=2.0)

    async def stop(self, *, timeout: float = 20.0) -> None:
        """SIGTERM every plugin's process group (they drain), SIGKILL what is left after
        ``timeout`` seconds, and wait for all of it."""
        self._stopping = True
        live = [p.process for p in self.plugins.values() if p.process is not None]
        for process in live:
            if process.returncode is None:
                _signal_group(process.pid, signal.SIGTERM)
        waits = [asyncio.ensure_future(process.wait()) for process in live]
        if waits:
            _, late = await asyncio.wait(waits, timeout=timeout)
            for process in live:
                if process.returncode is None:
                    _signal_group(process.pid, signal.SIGKILL)
            if late:
                await asyncio.wait(late)
        for plugin in self.plugins.values():
            if plugin.watcher is not None:
                plugin.watcher.cancel()
        await self._drained()
        for pump in list(self._pumps):
            pump.cancel()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group ``pid`` leads (its own session), or the process alone."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    except PermissionError:
        pass
