"""A plugin that takes a request and never answers, as a process to kill mid-request.

Usage: python -m tests.dispatch._hanging_plugin PLUGIN_DIR BUS_URL STATE_DB. It prints
``READY`` once subscribed, then ``HANDLING <issue key>`` for each request it takes.
"""

from __future__ import annotations

import asyncio
import sys

from jira_orchestrator.plugins import Issue, Plugin


async def main(folder: str, url: str, state: str) -> None:
    plugin = Plugin(folder, bus_url=url, state_path=state)

    @plugin.command("handle_issue")
    async def handle_issue(issue: Issue) -> None:
        print("HANDLING", issue.key, flush=True)
        await asyncio.Event().wait()  # until killed

    await plugin.start()
    await plugin.bus.flush()
    print("READY", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
