"""The dashboard's API with 100,000 dead letters and 100,000 routing decisions in its stores:
the time to answer a filtered page, first and deep (keyset cursor), over HTTP.

The stores are real files made by the project's stores (filled in one transaction each,
with letters and decisions shaped as the bus and the router write them); the dashboard runs
on the project's HTTP server, and an httpx client on the same loop asks one page at a time
over loopback, so each figure is the whole round trip. Target: p99 under 50 ms. The
baseline is the same queries on the stores alone, in this process (no HTTP, no JSON).
Run: ``make bench`` or ``.venv/bin/python bench/bench_dashboard.py``.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import percentile, report
from jira_orchestrator.messagebus import close_message_bus, get_message_bus
from jira_orchestrator.orchestrator import REASONS, DeadLetterStore
from jira_orchestrator.routing import Router, RoutingRequest
from jira_orchestrator.routing.store import DecisionStore
from jira_orchestrator.web import HTTPServer
from jira_orchestrator.web.dashboard import Dashboard

N = 100_000
REQUESTS = 400
PLUGINS = [f"plugin-{i:02d}" for i in range(50)]
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "plugins"


def fill_letters(path: Path) -> None:
    DeadLetterStore(path).close()  # the schema, the format tag and the indexes
    rng = random.Random(1)
    rows = []
    for n in range(N):
        plugin = rng.choice(PLUGINS)
        topic = f"plugin/{plugin}/{rng.choice(('request', 'events'))}"
        reason = rng.choice(REASONS)
        payload = {
            "reason": reason,
            "error": {"type": "RuntimeError", "message": f"failure {n}"},
            "subscriber": plugin,
            "subscription": topic,
            "message": {"messageId": f"m{n}", "topic": topic, "payload": {"n": n, "x": "y" * 200}},
        }
        rows.append(
            (f"l{n}", 1.7e9 + n, reason, topic, f"m{n}", plugin, topic, "RuntimeError",
             f"failure {n}", None, json.dumps(payload))
        )  # fmt: skip
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO letters (letter_id, received_at, reason, topic, message_id, subscriber,"
            " subscription, error_type, error_message, problem, payload)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def fill_decisions(path: Path) -> None:
    store = DecisionStore(path)
    router = Router.from_directory(EXAMPLES)
    shape = router.route(RoutingRequest.from_text("Deploy billing-api with a Helm chart")).to_dict()
    store.close()
    router.close()
    rng = random.Random(2)
    rows = []
    for n in range(N):
        plugin = rng.choice(PLUGINS[:20])
        decision = {**shape, "requestId": f"r{n}", "primaryPlugin": plugin}
        rows.append(
            (f"r{n}", 1.7e9 + n, f"request number {n} about {plugin}", "[]", plugin,
             json.dumps(decision, separators=(",", ":")), "{}")
        )  # fmt: skip
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO decisions (request_id, created_at, text, files, primary_plugin,"
            " decision, extra) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def store_alone(letters: DeadLetterStore, decisions: DecisionStore, url: str) -> list[float]:
    """The baseline: the page and count queries the URL asks for, on the store directly."""
    path, _, query = url.partition("?")
    params = {k: v[0] for k, v in parse_qs(query).items()}
    below = int(params["below"]) if "below" in params else None
    started = time.perf_counter()
    if path == "/api/dead-letters":
        letters.page(reason=params.get("reason"), topic=params.get("topic"), below=below, limit=51)
        letters.count(reason=params.get("reason"), topic=params.get("topic"))
    else:
        decisions.page_decisions(plugin=params.get("plugin"), below=below, limit=50)
        decisions.count_decisions(plugin=params.get("plugin"))
    return [(time.perf_counter() - started) * 1000]


async def timed(client: httpx.AsyncClient, urls: list[str]) -> list[float]:
    samples = []
    for url in urls:
        started = time.perf_counter()
        answer = await client.get(url)
        samples.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, answer.text
        assert answer.json()["items"], url
    return samples


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as scratch:
        folder = Path(scratch)
        started = time.perf_counter()
        fill_letters(folder / "letters.db")
        fill_decisions(folder / "decisions.db")
        print(f"filled {N:,} letters and {N:,} decisions in {time.perf_counter() - started:.1f}s")
        letters = DeadLetterStore(folder / "letters.db")
        decisions = DecisionStore(folder / "decisions.db")
        board = Dashboard(
            get_message_bus("jira-orchestrator-dashboard"),
            dead_letters=letters,
            decisions=decisions,
        )
        rng = random.Random(3)
        cases = {
            "dead letters, filtered by reason and topic, first page": [
                f"/api/dead-letters?reason={rng.choice(REASONS)}"
                f"&topic=plugin/{rng.choice(PLUGINS)}/*&limit=50"
                for _ in range(REQUESTS)
            ],
            "dead letters, filtered by reason, deep page (cursor)": [
                f"/api/dead-letters?reason={rng.choice(REASONS)}&limit=50"
                f"&below={rng.randint(1000, N)}"
                for _ in range(REQUESTS)
            ],
            "dead letters, unfiltered, deep page (cursor)": [
                f"/api/dead-letters?limit=50&below={rng.randint(1000, N)}" for _ in range(REQUESTS)
            ],
            "decisions, filtered by plugin, first page": [
                f"/api/decisions?plugin={rng.choice(PLUGINS[:20])}&limit=50"
                for _ in range(REQUESTS)
            ],
            "decisions, filtered by plugin, deep page (cursor)": [
                f"/api/decisions?plugin={rng.choice(PLUGINS[:20])}&limit=50"
                f"&below={rng.randint(5000, N)}"
                for _ in range(REQUESTS)
            ],
        }
        rows: list[dict[str, Any]] = []
        try:
            async with (
                board,
                HTTPServer(board.routes(), port=0) as server,
                httpx.AsyncClient(base_url=server.url, timeout=30) as client,
            ):
                await timed(client, [urls[0] for urls in cases.values()])  # warm up
                for name, urls in cases.items():
                    samples = await timed(client, urls)
                    alone = [t for url in urls for t in store_alone(letters, decisions, url)]
                    p99 = percentile(samples, 99)
                    rows.append(
                        {
                            "figure": name,
                            "p50 ms": round(percentile(samples, 50), 2),
                            "p99 ms": round(p99, 2),
                            "store alone p50 / p99 ms": f"{percentile(alone, 50):.2f} / "
                            f"{percentile(alone, 99):.2f}",
                            "target": "p99 < 50 ms " + ("met" if p99 < 50 else "MISSED"),
                        }
                    )
        finally:
            letters.close()
            decisions.close()
            await close_message_bus()
    report("dashboard", rows)


if __name__ == "__main__":
    asyncio.run(main())
