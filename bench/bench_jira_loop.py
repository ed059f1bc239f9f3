"""End to end in one process: a Jira webhook received to the decision comment in Jira.

The Jira sandbox and the orchestrator's HTTP server run on uvicorn over loopback, the
example plugins on the embedded bus. For each issue created in the sandbox we time (1) its
signed webhook reaching a bare Starlette handler that answers 202 (the baseline, the same
sandbox and HTTP stack, in the same run) and (2) the whole loop: webhook received and
stored, the issue read back, routed, the decision comment (ADF, label) written to the
sandbox; then the outcome comment and transition after the plugin's work. Run: ``make
bench`` or ``.venv/bin/python bench/bench_jira_loop.py``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from _harness import percentile, report
from jira_orchestrator.cli._jira_loop import jira_loop
from jira_orchestrator.cli.serve import in_process_plugins
from jira_orchestrator.integrations.jira.check import SANDBOX_SECRET, init_text
from jira_orchestrator.integrations.jira.config import parse_config
from jira_orchestrator.integrations.jira.sandbox import JiraSandbox, WebhookTarget
from jira_orchestrator.web import HTTPServer

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "examples" / "plugins"
ISSUES = 200
WARM = 20
SUMMARIES = (
    "Deploy billing-api to the EKS cluster with a Helm chart",
    "Expose the order history endpoint GET /api/orders/{id}/history",
    "Onboard tenant acme-corp on the enterprise plan",
    "Automate the monthly invoice close checklist",
)


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder)
        os.environ["JIRA_ORCHESTRATOR_OUTPUT"] = str(output / "out")
        os.environ["JIRA_ORCHESTRATOR_STATE_DIR"] = str(output / "state")
        received: dict[str, float] = {}
        arrived = asyncio.Event()

        async def bare(request: Request) -> Response:
            body = await request.body()
            received[request.headers["X-Atlassian-Webhook-Identifier"]] = time.perf_counter()
            arrived.set()
            return Response(body[:0], status_code=202)

        sandbox = JiraSandbox()
        routes = [Route("/bare", bare, methods=["POST"]), Mount("/", app=sandbox.app)]
        async with HTTPServer(routes, port=0) as site, sandbox:
            config = parse_config(tomllib.loads(init_text(site.url)))
            entries = sorted(PLUGINS.glob("*/plugin.py"))
            async with (
                in_process_plugins(entries),
                jira_loop(
                    config, PLUGINS, output, host="127.0.0.1", port=0, bus_url="memory://"
                ) as loop,
            ):
                baseline = await _baseline(sandbox, site.url, received, arrived)
                decided, finished = await _loop(sandbox, loop, f"{loop.server.url}/webhooks/jira")
    rows: list[dict[str, Any]] = []
    for name, samples in (
        ("webhook to a bare 202 handler (baseline)", baseline),
        ("webhook to the decision comment in Jira", decided),
        ("webhook to the outcome comment and transition", finished),
    ):
        rows.append(
            {
                "path": name,
                "issues": len(samples),
                "p50 ms": round(percentile(samples, 50) * 1000, 2),
                "p99 ms": round(percentile(samples, 99) * 1000, 2),
                "x baseline p50": round(percentile(samples, 50) / percentile(baseline, 50), 1),
            }
        )
    report("jira_loop", rows)


async def _baseline(
    sandbox: JiraSandbox, url: str, received: dict[str, float], arrived: asyncio.Event
) -> list[float]:
    sandbox.webhooks[:] = [WebhookTarget(f"{url}/bare", SANDBOX_SECRET)]
    sandbox.add_project("OPS")
    samples = []
    for n in range(WARM + ISSUES):
        arrived.clear()
        before = len(sandbox.deliveries)
        started = time.perf_counter()
        sandbox.create_issue("OPS", SUMMARIES[n % len(SUMMARIES)])
        await asyncio.wait_for(arrived.wait(), 30)
        identifier = sandbox.deliveries[before].identifier
        if n >= WARM:
            samples.append(received[identifier] - started)
    return samples


async def _loop(sandbox: JiraSandbox, loop: Any, webhook: str) -> tuple[list[float], list[float]]:
    sandbox.webhooks[:] = [WebhookTarget(webhook, SANDBOX_SECRET)]
    writeback = loop.service.writeback
    decided_at: dict[str, float] = {}
    real_decision = writeback.decision

    async def timed_decision(key: str, *args: Any, **kwargs: Any) -> Any:
        written = await real_decision(key, *args, **kwargs)
        decided_at[key] = time.perf_counter()
        return written

    writeback.decision = timed_decision
    finished = asyncio.Event()
    done_at: dict[str, float] = {}

    def processed(done: Any) -> None:
        done_at[str(done.get("key"))] = time.perf_counter()
        finished.set()

    loop.service.on_processed = processed
    to_decision, to_outcome = [], []
    for n in range(WARM + ISSUES):
        finished.clear()
        started = time.perf_counter()
        key = sandbox.create_issue("OPS", SUMMARIES[n % len(SUMMARIES)])
        while key not in done_at:
            await asyncio.wait_for(finished.wait(), 60)
            finished.clear()
        if n >= WARM:
            to_decision.append(decided_at[key] - started)
            to_outcome.append(done_at[key] - started)
    return to_decision, to_outcome


if __name__ == "__main__":
    asyncio.run(main())
