"""An orchestrator that dies mid-task: the plugin it dispatches to never answers.

Usage: python -m tests.dispatch._crashing_orchestrator PLUGINS_DIR TASKS_DB. It prints
``SENT`` once the plugin has the task, then waits to be killed.
"""

from __future__ import annotations

import asyncio
import sys

from jira_orchestrator.orchestrator import Orchestrator
from jira_orchestrator.plugins import Issue, Plugin
from jira_orchestrator.plugins.discovery import discover_plugins


async def main(plugins: str, tasks: str) -> None:
    catalog = discover_plugins(plugins)
    hung = Plugin(catalog.plugins[0].manifest, state_path=f"{tasks}.plugin.db")
    received = asyncio.Event()

    @hung.command("handle_issue")
    async def handle_issue(issue: Issue) -> None:
        received.set()
        await asyncio.Event().wait()  # never answers

    await hung.start()
    orchestrator = Orchestrator(catalog, tasks=tasks)
    await orchestrator.start()
    task = asyncio.create_task(
        orchestrator.dispatch({"key": "OPS-9", "fields": {"summary": "Rotate the billing keys"}})
    )
    await received.wait()
    print("SENT", flush=True)
    await task  # killed before this returns


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
