"""Issues routed, dispatched and completed per second, end to end, and how the cost grows.

Each issue goes through `Orchestrator.dispatch`: routed, recorded in the task store
(SQLite files, as ``up`` keeps them), sent to its plugin under its resilience policy,
answered, recorded again, with the orchestrator's events published. Measured:

- in process (``memory://``): the example plugins, against the same plugins called
  directly (no routing, no bus: what the plugins' own work costs); and 5, 20 and 50
  generated plugins whose command does nothing (the orchestrator's own cost);
- on one NATS server and on a 3-node NATS cluster (routes on loopback, the plugins
  connected to another node than the orchestrator, so every request crosses nodes): the
  plugins in a second process, against raw nats-py request/reply to a trivial handler in
  that process, the same issue as payload, in the same run;
- 10 to 10,000 issues in flight;
- memory after N and after 10N issues (Python heap by tracemalloc, and RSS).

Run: ``make bench`` or ``.venv/bin/python bench/bench_throughput.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nats
import psutil

from _harness import percentile, report
from jira_orchestrator.cli.demo import load_entry_point
from jira_orchestrator.messagebus import close_message_bus
from jira_orchestrator.orchestrator.dispatcher import Orchestrator, issue_parameters
from jira_orchestrator.orchestrator.tasks import TaskStore
from jira_orchestrator.plugins import Plugin
from jira_orchestrator.routing import RoutingRequest
from jira_orchestrator.routing import router as router_module
from jira_orchestrator.transports.nats_server import NatsServer, free_port

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"
WORKER = HERE / "_throughput_worker.py"

# Words for generated plugins: each plugin owns a few, issues mix them.
WORDS = (
    "billing", "invoice", "ledger", "payroll", "refund", "tax", "coupon", "cart", "checkout",
    "catalog", "inventory", "warehouse", "shipping", "carrier", "tracking", "returns", "loyalty",
    "rewards", "review", "rating", "search", "index", "crawler", "sitemap", "newsletter",
    "campaign", "survey", "ticket", "helpdesk", "chat", "webhook", "scheduler", "backup",
    "archive", "audit", "compliance", "consent", "identity", "session", "token", "captcha",
    "upload", "thumbnail", "transcode", "subtitle", "playlist", "podcast", "stream", "livestream",
    "forum", "wiki", "glossary", "translation", "locale", "currency", "forecast", "budget",
    "expense", "mileage", "timesheet", "roster", "shift", "badge", "kiosk", "printer", "scanner",
    "barcode", "pallet", "forklift", "dock", "courier", "locker", "parcel", "voucher", "giftcard",
    "wallet", "payout", "escrow", "dispute", "chargeback", "fraud", "scoring", "lending",
    "mortgage", "insurance", "claim", "policy", "premium", "broker", "quote", "tariff", "meter",
    "outage", "grid", "turbine", "battery", "charger", "fleet", "telematics", "route", "dispatch",
    "depot", "garage",
)  # fmt: skip


# -- workloads ------------------------------------------------------------------------


def trivial_plugins(root: Path, count: int) -> Path:
    """``count`` plugins whose ``handle_issue`` does nothing, with words of their own."""
    folder = root / f"trivial-{count}"
    per = max(2, min(6, len(WORDS) // count))
    for k in range(count):
        words = [WORDS[(k * per + j) % len(WORDS)] for j in range(per)]
        name = f"{words[0]}-service-{k}"
        manifest = {
            "name": name,
            "version": "1.0.0",
            "description": f"Handles {', '.join(words)} work for the shop.",
            "keywords": words,
            "routing": {"acceptsRoutingFrom": ["*"]},
        }
        (folder / name / ".claude-plugin").mkdir(parents=True)
        (folder / name / ".claude-plugin" / "plugin.json").write_text(json.dumps(manifest))
        (folder / name / "plugin.py").write_text(
            "from pathlib import Path\n\n"
            "from jira_orchestrator.plugins import Issue, Plugin\n\n"
            "plugin = Plugin(Path(__file__).parent)\n\n\n"
            '@plugin.command("handle_issue")\n'
            "def handle_issue(issue: Issue) -> dict:\n"
            '    return {"key": issue.key}\n'
        )
    return folder


def trivial_issues(count: int, plugins: int, seed: int = 7) -> list[dict[str, Any]]:
    """Distinct issues: each names three words of the plugins' vocabulary."""
    rng = random.Random(seed)
    per = max(2, min(6, len(WORDS) // plugins))
    vocabulary = WORDS[: plugins * per]
    issues = []
    for n in range(count):
        a, b, c = rng.sample(vocabulary, 3)
        issues.append(
            {
                "key": f"BENCH-{n}",
                "fields": {
                    "summary": f"The {a} page fails after the {b} change",
                    "description": f"Customers report that {a} and {c} stopped working.",
                    "issuetype": {"name": "Bug"},
                },
            }
        )
    return issues


def example_issues(count: int) -> list[dict[str, Any]]:
    """The example issues over and over, each with a key of its own."""
    examples = json.loads((EXAMPLES / "issues.json").read_text(encoding="utf-8"))
    issues = []
    for n in range(count):
        issue = json.loads(json.dumps(examples[n % len(examples)]))
        issue["key"] = f"{issue['key']}-{n}"
        issues.append(issue)
    return issues


# -- measuring ------------------------------------------------------------------------


@dataclass
class Run:
    issues: int
    seconds: float
    cpu: float
    latencies: list[float]
    completed: int

    @property
    def rate(self) -> float:
        return self.issues / self.seconds

    def row(self, **fields: Any) -> dict[str, Any]:
        return {
            **fields,
            "issues/s": self.rate,
            "p50 ms": percentile(self.latencies, 50) * 1000,
            "p99 ms": percentile(self.latencies, 99) * 1000,
            "CPU us/issue": self.cpu / self.issues * 1e6,
            "completed": f"{self.completed}/{self.issues}",
        }


async def drive(one: Any, items: Sequence[Any], in_flight: int) -> Run:
    """``one(item)`` for every item, ``in_flight`` at a time (as many workers, each taking
    the next item when it is done); ``one`` says whether the issue completed."""
    latencies: list[float] = []
    completed = 0
    queue = iter(items)

    async def worker() -> None:
        nonlocal completed
        for item in queue:
            started = time.perf_counter()
            if await one(item):
                completed += 1
            latencies.append(time.perf_counter() - started)

    gc.collect()
    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(in_flight, len(items)))))
    return Run(
        len(items), time.perf_counter() - started, time.process_time() - cpu, latencies, completed
    )


@contextlib.contextmanager
def environment(output: Path) -> Iterator[None]:
    before = {k: os.environ.get(k) for k in ("JIRA_ORCHESTRATOR_OUTPUT", "DEMO_FAIL")}
    os.environ["JIRA_ORCHESTRATOR_OUTPUT"] = str(output)
    os.environ["JIRA_ORCHESTRATOR_STATE_DIR"] = str(output / ".state")
    os.environ["DEMO_FAIL"] = ""
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class UnsyncedTaskStore(TaskStore):
    """The task store without an fsync per commit (as the decision store runs): what the
    figures would be if task records were not durable against a power cut."""

    PRAGMAS = ("synchronous=NORMAL",)


def orchestrator(plugins: Path, url: str, output: Path, fsync: bool = True) -> Orchestrator:
    """As ``up`` builds it: its stores in files."""
    state = output / ".orchestrator"
    state.mkdir(parents=True, exist_ok=True)
    return Orchestrator(
        plugins,
        bus_url=url,
        tasks=state / "tasks.db" if fsync else UnsyncedTaskStore(state / "tasks.db"),
        decisions=state / "decisions.db",
        dead_letters=state / "dead-letters.db",
    )


@contextlib.asynccontextmanager
async def in_process(
    plugins: Path, output: Path, fsync: bool = True
) -> AsyncIterator[tuple[Orchestrator, list[Plugin]]]:
    with environment(output):
        entries = sorted(plugins.glob("*/plugin.py"))  # noqa: ASYNC240 (before any timing)
        loaded = [load_entry_point(entry) for entry in entries]
        for plugin in loaded:
            await plugin.start()
        running = orchestrator(plugins, "memory://", output, fsync)
        await running.start()
        try:
            yield running, loaded
        finally:
            await running.stop()
            running.close()
            for plugin in loaded:
                await plugin.stop()
            await close_message_bus()


async def dispatching(running: Orchestrator, issues: Sequence[Any], in_flight: int) -> Run:
    async def one(issue: Any) -> bool:
        return (await running.dispatch(issue)).outcome == "completed"

    await drive(one, issues[: min(50, len(issues))], 8)  # warm up
    return await drive(one, issues, in_flight)


async def inprocess_run(
    plugins: Path, issues: Sequence[Any], in_flight: int, tmp: Path, fsync: bool = True
) -> Run:
    output = Path(tempfile.mkdtemp(dir=tmp))
    async with in_process(plugins, output, fsync) as (running, _):
        return await dispatching(running, issues, in_flight)


async def plugins_alone(plugins: Path, issues: Sequence[Any], in_flight: int, tmp: Path) -> Run:
    """The same plugins' command called directly, each issue on the plugin the router
    chose for it: the work itself, with no routing, store, bus or policy."""
    output = Path(tempfile.mkdtemp(dir=tmp))
    async with in_process(plugins, output) as (running, loaded):
        by_id = {plugin.id: plugin for plugin in loaded}
        chosen = [
            running.router.route(RoutingRequest.from_jira(issue)).primary_plugin for issue in issues
        ]
        work = [
            (by_id[str(plugin)], issue_parameters(issue))
            for plugin, issue in zip(chosen, issues, strict=True)
        ]

        async def one(item: tuple[Plugin, dict[str, Any]]) -> bool:
            await item[0].execute_command("handle_issue", item[1])
            return True

        await drive(one, work[:50], 8)
        return await drive(one, work, in_flight)


def task_store_alone(count: int, tmp: Path, fsync: bool = True) -> Run:
    """What recording the tasks costs alone: the three durable commits of each issue
    (created, running, finished), one issue after the other, in the same kind of file."""
    kind = TaskStore if fsync else UnsyncedTaskStore
    store = kind(Path(tempfile.mkdtemp(dir=tmp)) / "tasks.db")
    latencies = []
    cpu, started = time.process_time(), time.perf_counter()
    try:
        for n in range(count):
            begun = time.perf_counter()
            task = f"task-{n}"
            store.create(task, {"request": {"key": f"BENCH-{n}"}}, "handle_issue")
            store.running(task, "plugin", [])
            store.finish(task, status="completed", plugin="plugin", attempts=[], result={})
            latencies.append(time.perf_counter() - begun)
    finally:
        store.close()
    return Run(count, time.perf_counter() - started, time.process_time() - cpu, latencies, count)


# -- NATS -----------------------------------------------------------------------------


class Worker:
    """The second process (plugins or raw responder); ends when we close its stdin."""

    def __init__(self, *arguments: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), *arguments],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.close()
            raise RuntimeError(f"worker {arguments[0]} did not start: {line!r}")

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def raw_run(client_url: str, server_url: str, issues: Sequence[Any], in_flight: int) -> Run:
    """Raw nats-py request/reply: the issue's parameters in a JSON envelope to a handler
    in the other process that answers at once."""
    worker = await asyncio.to_thread(Worker, "raw", server_url, "bench.raw.issue")
    client = await nats.connect(client_url)
    ids = iter(range(10**9))
    try:

        async def one(issue: Any) -> bool:
            envelope = {
                "messageId": f"m-{next(ids)}",
                "topic": "bench/raw/issue",
                "messageType": "request",
                "payload": {"command": "handle_issue", **issue_parameters(issue)},
            }
            reply = await client.request(
                "bench.raw.issue", json.dumps(envelope).encode(), timeout=60
            )
            return json.loads(reply.data)["payload"]["status"] == "success"

        await drive(one, issues[:50], 8)
        return await drive(one, issues, in_flight)
    finally:
        await client.close()
        await asyncio.to_thread(worker.close)


async def nats_run(
    plugins: Path,
    orchestrator_url: str,
    plugins_url: str,
    issues: Sequence[Any],
    in_flight: int,
    tmp: Path,
) -> Run:
    """The orchestrator here, the plugins (all in one process) in the other."""
    output = Path(tempfile.mkdtemp(dir=tmp))
    worker = await asyncio.to_thread(Worker, "plugins", plugins_url, str(plugins))
    running = orchestrator(plugins, orchestrator_url, output)
    try:
        await running.start()
        async with asyncio.timeout(60):
            while any(h.status not in ("healthy", "ready") for h in running.health.values()):
                await asyncio.sleep(0.1)  # the other process's plugins announce themselves
                await running.refresh_health()
        return await dispatching(running, issues, in_flight)
    finally:
        await running.stop()
        running.close()
        await close_message_bus()
        await asyncio.to_thread(worker.close)


@contextlib.contextmanager
def cluster(root: Path, size: int = 3) -> Iterator[list[NatsServer]]:
    """``size`` nats-servers with JetStream, routed to each other on loopback."""
    ports = [free_port() for _ in range(size)]
    servers = []
    try:
        for n in range(size):
            routes = ", ".join(f"nats-route://127.0.0.1:{p}" for i, p in enumerate(ports) if i != n)
            config = (
                f"server_name: bench-{n}\n"
                f"cluster {{ name: bench, listen: 127.0.0.1:{ports[n]}, routes: [{routes}] }}"
            )
            (root / f"node-{n}").mkdir()
            servers.append(NatsServer(root / f"node-{n}", extra_config=config).start())
        yield servers
    finally:
        for server in servers:
            server.stop()


async def wait_for_jetstream(url: str) -> None:
    """Until the cluster has elected its JetStream leader (a stream can be made)."""
    client = await nats.connect(url)
    try:
        stream = client.jetstream()
        async with asyncio.timeout(60):
            while True:
                try:
                    await stream.add_stream(name="BENCH_PROBE", subjects=["bench.probe"])
                    await stream.delete_stream("BENCH_PROBE")
                    return
                except Exception:  # no leader yet: the meta group is electing one
                    await asyncio.sleep(0.25)
    finally:
        await client.close()


# -- memory ---------------------------------------------------------------------------


async def memory_rows(
    plugins: Path, issues: Sequence[Any], n: int, tmp: Path
) -> list[dict[str, Any]]:
    """Python heap (tracemalloc) and RSS after n and after 10n issues done; then the same
    with the router's cache of recent requests (bounded, 10,000) cut to 100, so that every
    bounded structure is full before the first measurement."""
    rows = []
    for recent in (router_module._RECENT, 100):
        saved, router_module._RECENT = router_module._RECENT, recent
        try:
            rows += await _memory(plugins, issues, n, tmp, f"recent requests kept: {recent:,}")
        finally:
            router_module._RECENT = saved
    return rows


async def _memory(
    plugins: Path, issues: Sequence[Any], n: int, tmp: Path, name: str
) -> list[dict[str, Any]]:
    output = Path(tempfile.mkdtemp(dir=tmp))
    async with in_process(plugins, output) as (running, _):

        async def one(issue: Any) -> bool:
            return (await running.dispatch(issue)).outcome == "completed"

        await drive(one, issues[:50], 8)
        tracemalloc.start()
        done = 0
        heap: dict[int, float] = {}
        rss: dict[int, float] = {}
        for target in (n, 10 * n):
            await drive(one, issues[done:target], 64)
            done = target
            gc.collect()
            heap[target] = tracemalloc.get_traced_memory()[0] / 2**20
            rss[target] = psutil.Process().memory_info().rss / 2**20
        tracemalloc.stop()
        sizes = {
            "learner examples": len(running.router.learner),
            "recent requests": len(running.router._recent),
        }
    return [
        {
            "figure": f"{what}, {name}",
            f"after {n:,}": figures[n],
            f"after {10 * n:,}": figures[10 * n],
            "growth per 1,000 issues (KiB)": (figures[10 * n] - figures[n]) / (9 * n) * 1e3 * 1024,
            **sizes,
        }
        for what, figures in (("Python heap (tracemalloc, MiB)", heap), ("RSS (MiB)", rss))
    ]


# -- the run --------------------------------------------------------------------------


async def main(quick: bool) -> None:
    count = 300 if quick else 1000
    in_flight = 64
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        rows: list[dict[str, Any]] = []
        examples = example_issues(count)
        alone = await plugins_alone(EXAMPLES / "plugins", examples, in_flight, tmp)
        ours = await inprocess_run(EXAMPLES / "plugins", examples, in_flight, tmp)
        rows.append(ours.row(bus="memory://", plugins="5 examples", baseline=""))
        rows.append(alone.row(bus="(none)", plugins="5 examples, called directly", baseline=""))
        rows[-2]["baseline"] = f"{ours.rate / alone.rate:.2f} of direct calls"
        floor = task_store_alone(count, tmp)
        rows.append(floor.row(bus="(none)", plugins="task store alone, 3 commits", baseline=""))
        unsynced = task_store_alone(count, tmp, fsync=False)
        rows.append(unsynced.row(bus="(none)", plugins="the same, no fsync", baseline=""))
        trivial = {n: trivial_plugins(tmp, n) for n in (5, 20, 50)}
        for n, folder in trivial.items():
            run = await inprocess_run(folder, trivial_issues(count, n), in_flight, tmp)
            rows.append(run.row(bus="memory://", plugins=f"{n} trivial", baseline=""))
            if n == 5:
                run = await inprocess_run(folder, trivial_issues(count, n), 64, tmp, fsync=False)
                rows.append(run.row(bus="memory://", plugins="5 trivial, tasks not fsynced"))
        report("throughput_inprocess", rows)

        flight_rows = []
        levels = (10, 100, 1000) if quick else (10, 100, 1000, 10_000)
        for level in levels:
            issues = trivial_issues(max(count, level), 5)
            run = await inprocess_run(trivial[5], issues, level, tmp)
            flight_rows.append(
                run.row(bus="memory://", plugins="5 trivial", **{"in flight": level})
            )
        print()
        report("throughput_in_flight", flight_rows)

        nats_count = 200 if quick else 600
        nats_rows: list[dict[str, Any]] = []
        with NatsServer(tmp / "single") as server:
            await one_nats_setup(
                nats_rows, "1 server", server.url, server.url, trivial, nats_count, in_flight, tmp
            )
            if not quick:
                for level in (10, 1000):
                    issues = trivial_issues(max(nats_count, level), 5)
                    raw = await raw_run(server.url, server.url, issues, level)
                    run = await nats_run(trivial[5], server.url, server.url, issues, level, tmp)
                    nats_rows.append(
                        run.row(bus="1 server", plugins="5 trivial", **{"in flight": level})
                        | {"raw req/s": raw.rate, "ratio": run.rate / raw.rate}
                    )
        (tmp / "cluster").mkdir()
        with cluster(tmp / "cluster") as nodes:
            await wait_for_jetstream(nodes[0].url)
            await one_nats_setup(
                nats_rows, "3-node cluster", nodes[0].url, nodes[1].url, trivial, nats_count,
                in_flight, tmp,
            )  # fmt: skip
        print()
        report("throughput_nats", nats_rows)

        n = 200 if quick else 500
        print()
        report(
            "throughput_memory", await memory_rows(trivial[5], trivial_issues(10 * n, 5), n, tmp)
        )


async def one_nats_setup(
    rows: list[dict[str, Any]],
    name: str,
    orchestrator_url: str,
    plugins_url: str,
    trivial: dict[int, Path],
    count: int,
    in_flight: int,
    tmp: Path,
) -> None:
    for n, folder in trivial.items():
        issues = trivial_issues(count, n)
        raw = await raw_run(orchestrator_url, plugins_url, issues, in_flight)
        run = await nats_run(folder, orchestrator_url, plugins_url, issues, in_flight, tmp)
        rows.append(
            run.row(bus=name, plugins=f"{n} trivial", **{"in flight": in_flight})
            | {"raw req/s": raw.rate, "ratio": run.rate / raw.rate}
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer issues, about a minute")
    started = time.perf_counter()
    asyncio.run(main(parser.parse_args().quick))
    print(f"({time.perf_counter() - started:.1f} s)")
