"""Child processes that do not outlive their parent, and telling a live process from a
reused pid.

`die_with_parent` is a ``preexec_fn`` for `subprocess.Popen`: on Linux the child asks the
kernel (``prctl(PR_SET_PDEATHSIG)``) for a signal when its parent dies, however it dies,
SIGKILL included. The kernel sends it when the *thread* that started the child ends, so
start children from a thread that lives as long as they should (the main thread). On other
systems it returns None and children only stop when told to.

`identity` is a pid with the process's start time, so that a pid written in a file by an
earlier run is only acted on while it still names the same process.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ProcessIdentity", "die_with_parent", "identity", "is_alive"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals = signal.SIGKILL) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child receive ``sig`` when this process dies.

    None where the kernel offers no such thing (not Linux).
    """
    if not sys.platform.startswith("linux"):
        return None
    # Resolved here, in the parent: the child, forked from a process with threads, must
    # not take the loader's lock before it execs.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()
    number = int(sig)

    def preexec() -> None:
        if prctl(_PR_SET_PDEATHSIG, number, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return preexec


@dataclass(frozen=True)
class ProcessIdentity:
    """A pid and the start time of the process it named (None where unknown)."""

    pid: int
    started: int | None

    def to_dict(self) -> dict[str, int | None]:
        return {"pid": self.pid, "started": self.started}

    @classmethod
    def from_dict(cls, data: object) -> ProcessIdentity | None:
        """The identity written by `to_dict`, or None for anything else."""
        if not isinstance(data, dict):
            return None
        pid, started = data.get("pid"), data.get("started")
        if not isinstance(pid, int) or pid <= 1:
            return None
        if started is not None and not isinstance(started, int):
            return None
        return cls(pid, started)


def _start_time(pid: int) -> int | None:
    """Clock ticks after boot at which ``pid`` started (Linux), None if unknown or gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces or parentheses
    fields = text[text.rindex(b")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of the whole line
    except (IndexError, ValueError):
        return None


def identity(pid: int) -> ProcessIdentity:
    """The identity of the running process ``pid``."""
    return ProcessIdentity(pid, _start_time(pid))


def is_alive(process: ProcessIdentity) -> bool:
    """Whether the process still runs, as the same process (not a reused pid).

    Where start times are unknown (not Linux) a live pid is taken at its word.
    """
    try:
        os.kill(process.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, belongs to someone else
    if process.started is None:
        return True
    started = _start_time(process.pid)
    if started is None:  # a zombie has a stat; no stat means gone
        return False
    return started == process.started
