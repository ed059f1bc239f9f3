from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from jira_orchestrator.messagebus import close_message_bus, reset_message_bus


@pytest.fixture(autouse=True)
async def fresh_bus() -> AsyncIterator[None]:
    reset_message_bus()
    yield
    await close_message_bus()
