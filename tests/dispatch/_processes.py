"""Waiting for processes that are not our children: their exit as an event (a pidfd)."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys


def wait_gone(pid: int, timeout: float) -> bool:
    """Whether process ``pid`` ended within ``timeout`` seconds (woken by its exit)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
        return bool(readable)
    finally:
        os.close(fd)


def kill_if_running(pid: int) -> None:
    """SIGKILL ``pid`` if it still runs: a test's last resort, so nothing outlives it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


needs_pidfd = sys.platform.startswith("linux") and hasattr(os, "pidfd_open")
