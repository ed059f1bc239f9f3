"""``demo --jira``: the whole Jira loop on this machine, with no set-up.

A Jira sandbox holds the example issues and sends a signed webhook for each; the receiver
stores them, the service routes and dispatches them to the plugins (in this process) and
writes the decision and the outcome back to the sandbox: comments, labels, transitions.
Both servers are real HTTP on free loopback ports.
"""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from starlette.routing import Mount

from jira_orchestrator.cli._jira_loop import jira_loop
from jira_orchestrator.cli._text import cell
from jira_orchestrator.cli.serve import in_process_plugins
from jira_orchestrator.integrations.jira.check import SANDBOX_SECRET, init_text
from jira_orchestrator.integrations.jira.config import parse_config
from jira_orchestrator.integrations.jira.sandbox import JiraSandbox
from jira_orchestrator.integrations.jira.service import Processed, outcome_written
from jira_orchestrator.web import HTTPServer

__all__ = ["run_jira_demo"]

_SETTLE = 120.0
"""Seconds the demo waits for the loop to settle before it reports what it has."""


def _table(rows: list[Processed]) -> Table:
    table = Table(title="jira-orchestrator demo: Jira issues, who did what, what Jira shows")
    columns = ("issue", "routed to", "done by", "outcome", "ms", "fallback", "comment", "status")
    for column in columns:
        table.add_column(column, justify="right" if column == "ms" else "left", no_wrap=True)
    for row in rows:
        commented, transition = outcome_written(row)
        outcome = str(row.get("outcome") or row.get("action"))
        colour = "green" if outcome == "completed" else "yellow" if outcome == "triaged" else "red"
        table.add_row(
            cell(str(row.get("key"))),
            cell(str(row.get("routedTo") or "-")),
            cell(str(row.get("doneBy") or "-")),
            f"[{colour}]{outcome}[/]",
            f"{row['ms']:.1f}" if "ms" in row else "",
            "yes" if row.get("fallback") else "",
            "written" if commented else "-",
            cell(row.get("status") or transition or "-"),
        )
    return table


async def run_jira_demo(
    entries: list[Path], plugins: Path, issues: list[Any], output: Path, console: Console
) -> list[Processed]:
    """Run the loop over ``issues``; print and return what happened to each."""
    sandbox = JiraSandbox()
    async with HTTPServer([Mount("/", app=sandbox.app)], port=0) as site, sandbox:
        config = parse_config(tomllib.loads(init_text(site.url)))
        async with (
            in_process_plugins(entries),
            # One issue at a time, in Jira's order, so the story the table tells (a breaker
            # opening, the fallbacks after it) is the same on every run.
            jira_loop(
                config,
                plugins,
                output,
                host="127.0.0.1",
                port=0,
                bus_url="memory://",
                concurrency=1,
            ) as loop,
        ):
            sandbox.register_webhook(f"{loop.server.url}/webhooks/jira", SANDBOX_SECRET)
            keys = sandbox.load_issues(issues, announce=True)
            console.print(
                f"Jira sandbox at {site.url} with {len(keys)} issues; webhooks to "
                f"{loop.server.url}/webhooks/jira"
            )
            await _settle(sandbox, loop.service, loop.inbox)
            handled = {row.get("key"): row for row in loop.service.processed}
            rows = [handled.get(key) or Processed(key=key, action="not processed") for key in keys]
            for row in rows:
                fields = sandbox.issue(str(row["key"]), changelog=False)["fields"]
                row["status"] = fields["status"]["name"]
                row["labels"] = fields.get("labels", [])
    console.print(_table(rows))
    done = sum(row.get("outcome") == "completed" for row in rows)
    fallbacks = sum(bool(row.get("fallback")) for row in rows)
    console.print(
        f"{done}/{len(rows)} issues completed, {fallbacks} by a fallback plugin; each has its"
        " decision and outcome as comments in Jira, its routing label and its transition"
    )
    return rows


async def _settle(sandbox: JiraSandbox, service: Any, inbox: Any) -> None:
    """Until webhooks and events stop coming (the write-back's own echoes included)."""
    deadline = asyncio.get_running_loop().time() + _SETTLE
    seen = -1
    while True:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            return
        await sandbox.webhooks_idle(timeout=left)
        await service.wait_idle(timeout=max(left, 1.0))
        total = sum(inbox.counts().values())
        if total == seen:
            return
        seen = total
