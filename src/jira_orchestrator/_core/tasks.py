"""Background tasks: started by code that does not wait for them, held until they end.

The event loop keeps only weak references to tasks, so a task nobody holds can vanish
mid-flight; and an exception in a task nobody awaits is reported, if ever, at garbage
collection. `BackgroundTasks` holds each task until it ends, logs its failure at once, and
cancels what is left when its owner closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterator
from typing import Any

__all__ = ["BackgroundTasks"]


class BackgroundTasks:
    """A set of running tasks of one owner (``what`` names them in the log)."""

    __slots__ = ("_log", "_tasks", "_what")

    def __init__(self, log: logging.Logger, what: str = "background task") -> None:
        self._log = log
        self._what = what
        self._tasks: set[asyncio.Future[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[asyncio.Future[Any]]:
        """The tasks still running (a snapshot)."""
        return iter(list(self._tasks))

    def spawn(
        self, work: Awaitable[Any], *, loop: asyncio.AbstractEventLoop | None = None
    ) -> asyncio.Future[Any]:
        """Run ``work`` (a coroutine) in a task held until it ends, on ``loop`` (default
        the running one); a failure is logged, never raised to anyone."""
        task = asyncio.ensure_future(work, loop=loop or asyncio.get_running_loop())
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self._log.error(
                "%s failed: %s: %s", self._what, type(error).__name__, error, exc_info=error
            )

    def cancel(self) -> None:
        """Cancel every task still running (without waiting for them)."""
        for task in list(self._tasks):
            task.cancel()

    async def wait(self) -> None:
        """Wait until every task started so far has ended."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Cancel every task still running and wait until they have ended."""
        self.cancel()
        await self.wait()
