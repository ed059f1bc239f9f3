"""Shared fixtures. Each area keeps its own fixtures in its folder's conftest.py."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator

import looptime
import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=200, deadline=None)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


# Fake loop time: tests marked ``looptime`` run with the event loop's clock compacted, so a
# 30-second timeout completes at once and exactly. looptime's own pytest plugin is disabled
# (pyproject addopts) because, for sync tests, it creates an event loop it never closes.
@pytest.fixture
async def fake_time() -> AsyncIterator[asyncio.AbstractEventLoop]:
    """The running loop, with looptime's compacted clock enabled for the test."""
    loop = looptime.patch_event_loop(asyncio.get_running_loop(), _enabled=False)  # type: ignore[arg-type]
    with loop.looptime_enabled():
        yield loop


def pytest_configure(config: pytest.Config) -> None:
    # The CLI keeps built routing indexes in the user's cache: tests (and the processes
    # they start) keep theirs in a directory of their own.
    os.environ.setdefault("JIRA_ORCHESTRATOR_CACHE", tempfile.mkdtemp(prefix="jo-cache-"))
    config.addinivalue_line("markers", "looptime: run the test with fake, compacted loop time")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("looptime") is not None and isinstance(item, pytest.Function):
            item.fixturenames.insert(0, "fake_time")
