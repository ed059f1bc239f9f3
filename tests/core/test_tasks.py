"""`BackgroundTasks`: held until done, failures logged at once, cancelled on close."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from jira_orchestrator._core.tasks import BackgroundTasks

log = logging.getLogger("tests.background")


async def test_a_task_nobody_holds_runs_to_its_end() -> None:
    tasks = BackgroundTasks(log)
    done = asyncio.Event()

    async def work() -> None:
        await asyncio.sleep(0)
        gc.collect()  # the loop's weak reference alone would let it vanish here
        done.set()

    tasks.spawn(work())
    assert len(tasks) == 1
    await tasks.wait()
    assert done.is_set()
    assert len(tasks) == 0


async def test_a_failure_is_logged_once_with_what_it_was(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = BackgroundTasks(log, "sending a letter")

    async def fail() -> None:
        raise RuntimeError("disk full")

    with caplog.at_level(logging.ERROR, logger="tests.background"):
        tasks.spawn(fail())
        await tasks.wait()
    assert [r.getMessage() for r in caplog.records] == [
        "sending a letter failed: RuntimeError: disk full"
    ]


async def test_close_cancels_what_is_still_running() -> None:
    tasks = BackgroundTasks(log)
    forever = tasks.spawn(asyncio.Event().wait())
    await asyncio.sleep(0)
    await tasks.close()
    assert forever.cancelled()
    assert list(tasks) == []
