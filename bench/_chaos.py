"""Chaos on the clustered ecosystem: issues flow while processes and nodes are SIGKILLed.

What runs (all on 127.0.0.1, in a scratch folder):

- a 3-node NATS cluster (`NatsCluster`), streams replicated 3-wise, each node watched and
  restarted by ``up``'s server watcher, with one user per process and the permissions
  ``up`` gives it (plugins bind to the consumers the orchestrator's user provisions);
- three plugins (``chaos-alpha``, ``-beta``, ``-gamma``, each the fallback of the next), one
  process each, and two orchestrator replicas serving the intake
  (`jira_orchestrator.orchestrator.replicas`), all under ``up``'s `Supervisor` (restarted
  when they die), each connected to another node first;
- a driver submitting issues to the intake, ``concurrency`` at a time, and SIGKILLing, at
  moments drawn from a seeded RNG (a number of finished issues), a plugin process, a NATS
  node or an orchestrator replica; one fault at a time, the next once the last has
  recovered.

The side effect that counts is a row in a ledger (SQLite) that the plugins write in the
same transaction as the record of the task id that caused it: a task id already recorded
is answered as before, without a new effect. Deliveries (every time a plugin was handed a
task) are counted too, so the report shows how many duplicates at-least-once delivery
produced and that none became a second effect.

Afterwards each issue must have exactly one final outcome: completed, or dead-lettered
with its reason (the letters are read through a durable queue of their own).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jira_orchestrator._core.errors import JiraOrchestratorError, NoResponders
from jira_orchestrator.cli._supervisor import PluginProcess, RestartPolicy, RunFolder, Supervisor
from jira_orchestrator.cli.up import _watch_server, plugin_environment
from jira_orchestrator.messagebus import Message, RPCClient, close_message_bus, get_message_bus
from jira_orchestrator.orchestrator import replicas
from jira_orchestrator.orchestrator.dispatcher import ORCHESTRATOR_ID
from jira_orchestrator.orchestrator.natsconfig import nats_authorization, provision_consumers
from jira_orchestrator.plugins import discover_plugins
from jira_orchestrator.transports.nats import NatsTransport
from jira_orchestrator.transports.nats_cluster import NatsCluster
from jira_orchestrator.transports.nats_cluster import _wait_for_leader as wait_for_leader

PLUGINS = ("chaos-alpha", "chaos-beta", "chaos-gamma")
WORDS = {"chaos-alpha": "alpha", "chaos-beta": "beta", "chaos-gamma": "gamma"}
KINDS = ("plugin", "node", "replica")

_PLUGIN_PY = '''"""A chaos plugin: one counted side effect per task id, in one transaction."""

import asyncio
import os
import sqlite3
from pathlib import Path

from jira_orchestrator.messagebus import current_message
from jira_orchestrator.plugins import Issue, Plugin

plugin = Plugin(Path(__file__).parent)
LEDGER = os.environ["CHAOS_LEDGER"]


def record(task: str, key: str) -> str:
    db = sqlite3.connect(LEDGER, timeout=60, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO deliveries VALUES (?, ?, ?)", (task, plugin.id, os.getpid()))
        done = db.execute("SELECT plugin FROM done WHERE task_id = ?", (task,)).fetchone()
        if done is None:
            db.execute(
                "INSERT INTO effects VALUES (?, ?, ?, ?)", (task, key, plugin.id, os.getpid())
            )
            db.execute("INSERT INTO done VALUES (?, ?)", (task, plugin.id))
            by = plugin.id
        else:
            by = done[0]
        db.execute("COMMIT")
        return by
    finally:
        db.close()


@plugin.command("handle_issue")
async def handle_issue(issue: Issue) -> dict:
    message = current_message()
    task = (message.headers.get("taskId") if message is not None else None) or issue.key
    by = await asyncio.to_thread(record, task, issue.key)
    return {"taskId": task, "effectBy": by}


if __name__ == "__main__":
    plugin.run()
'''


def _manifest(name: str, fallback: str) -> dict[str, Any]:
    word = WORDS[name]
    return {
        "name": name,
        "version": "1.0.0",
        "description": f"Chaos test plugin for {word} work.",
        "keywords": [word, f"{word}-work"],
        "capabilities": {"domains": [word], "contexts": [], "patterns": [], "integrations": []},
        "routing": {
            "priority": 50,
            "keywords": [word],
            "acceptsRoutingFrom": ["*"],
            "canRouteTo": [],
        },
        "errorHandling": {
            "timeout": 90000,
            "circuitBreaker": {"enabled": False},
            "retryPolicy": {"maxRetries": 2, "initialDelay": 50, "maxDelay": 500},
            "fallback": {"fallbackPlugin": fallback},
        },
        "orchestration": {"maxConcurrentTasks": 50},
    }


def write_plugins(folder: Path) -> Path:
    """The three chaos plugins, each the fallback of the one before."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(PLUGINS):
        root = folder / name
        (root / ".claude-plugin").mkdir(parents=True, exist_ok=True)
        fallback = PLUGINS[(index + 1) % len(PLUGINS)]
        manifest = json.dumps(_manifest(name, fallback), indent=2)
        (root / ".claude-plugin" / "plugin.json").write_text(manifest)
        (root / "plugin.py").write_text(_PLUGIN_PY)
    return folder


def create_ledger(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE deliveries (task_id TEXT, plugin TEXT, pid INTEGER)")
        db.execute("CREATE TABLE effects (task_id TEXT, issue_key TEXT, plugin TEXT, pid INTEGER)")
        db.execute("CREATE TABLE done (task_id TEXT PRIMARY KEY, plugin TEXT)")


def issues(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    made = []
    for number in range(1, count + 1):
        word = rng.choice(list(WORDS.values()))
        made.append(
            {
                "key": f"CHAOS-{number}",
                "fields": {"summary": f"{word} work item {number}", "labels": [word]},
            }
        )
    return made


@dataclass
class Fault:
    kind: str
    target: str
    at_done: int
    injected: float = 0.0
    back_after: float | None = None
    """Seconds until the killed component served again (restarted and answering)."""
    in_flight: list[str] = field(default_factory=list)
    settled_after: float | None = None
    """Seconds until every issue in flight at the kill had its final outcome."""


@dataclass
class Outcome:
    key: str
    started: float
    finished: float = 0.0
    outcome: str = ""  # completed, failed (dead-lettered), error
    plugin: str | None = None
    error: str | None = None


@dataclass
class Report:
    issues: int
    faults: list[Fault]
    outcomes: dict[str, Outcome]
    letters: dict[str, list[str]]
    effects: dict[str, int]
    deliveries: dict[str, int]
    seconds: float

    def summary(self) -> dict[str, Any]:
        completed = [o for o in self.outcomes.values() if o.outcome == "completed"]
        lettered = {
            key
            for key, o in self.outcomes.items()
            if o.outcome != "completed" and self.letters.get(key)
        }
        lost = [
            key
            for key in self.outcomes
            if self.outcomes[key].outcome != "completed" and key not in lettered
        ]
        # a completed issue has its one effect; a dead-lettered one at most one
        missing = [o.key for o in completed if self.effects.get(o.key, 0) == 0]
        duplicated = sum(max(0, n - 1) for n in self.effects.values())
        redelivered = sum(max(0, n - 1) for n in self.deliveries.values())
        both = [key for key in lettered if self.outcomes[key].outcome == "completed"]
        by_kind: dict[str, dict[str, Any]] = {}
        for kind in KINDS:
            mine = [f for f in self.faults if f.kind == kind]
            by_kind[kind] = {
                "injected": len(mine),
                "targets": [f.target for f in mine],
                "inFlightAtKill": [len(f.in_flight) for f in mine],
                "backAfterS": [round(f.back_after or 0.0, 2) for f in mine],
                "settledAfterS": [round(f.settled_after or 0.0, 2) for f in mine],
            }
        return {
            "issues": self.issues,
            "completed": len(completed),
            "deadLettered": len(lettered),
            "letterReasons": sorted({r for key in lettered for r in self.letters.get(key, [])}),
            "failures": _top(o.error for o in self.outcomes.values() if o.outcome != "completed"),
            "lost": len(lost),
            "lostKeys": lost[:20],
            "completedWithoutEffect": len(missing),
            "duplicatedEffects": duplicated,
            "redeliveriesAbsorbed": redelivered,
            "conflictingOutcomes": len(both),
            "faults": by_kind,
            "seconds": round(self.seconds, 1),
            "issuesPerSecond": round(self.issues / self.seconds, 1) if self.seconds else 0.0,
        }


def _top(errors: Any, limit: int = 5) -> dict[str, int]:
    counts: dict[str, int] = {}
    for error in errors:
        counts[str(error)[:160]] = counts.get(str(error)[:160], 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1])[:limit])


class _Watching(Supervisor):
    """``up``'s supervisor, which also tells the driver when a replica says it serves."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ready: dict[str, asyncio.Event] = {}

    async def _pump(self, name: str, stream: asyncio.StreamReader) -> None:
        quiet = os.environ.get("CHAOS_VERBOSE") is None
        while line := await stream.readline():
            if b"replica ready" in line:
                self.ready.setdefault(name, asyncio.Event()).set()
            if not quiet or b"Traceback" in line or b"ERROR" in line:
                sys.stdout.write(f"[{name}] " + line.decode(errors="replace"))


async def run_chaos(
    workdir: Path,
    *,
    count: int,
    seed: int,
    faults: dict[str, int],
    concurrency: int = 16,
    ack_wait: float = 2.0,
    deadline: float = 600.0,
    say: Callable[[str], None] = print,
) -> Report:
    """Run it; ``faults`` is how many of each kind (``plugin``, ``node``, ``replica``)."""
    rng = random.Random(seed)
    plugins_dir = write_plugins(workdir / "plugins")
    ledger = workdir / "ledger.db"
    create_ledger(ledger)
    folder = RunFolder(workdir / "out")
    folder.acquire()
    # one user per plugin with the permissions of its manifest, as up configures them
    catalog = discover_plugins(plugins_dir)
    authorization, users = nats_authorization(catalog)
    passwords = {user.name: user.password for user in users}
    cluster = NatsCluster(workdir / "cluster", size=3, extra_config=authorization).start()
    options = f"&ack_wait={ack_wait:g}&connect_timeout=30&reconnect_wait=0.2"

    def url(user: str, first: int) -> str:
        bind = "" if user == ORCHESTRATOR_ID else "&jetstream=bind"
        return cluster.url_for(user, passwords[user], first=first) + options + bind

    base_env = {
        **plugin_environment(os.environ),
        "CHAOS_LEDGER": str(ledger),
        "PYTHONUNBUFFERED": "1",
        "JIRA_ORCHESTRATOR_OUTPUT": str(workdir / "out"),
        "JIRA_ORCHESTRATOR_STATE_DIR": str(workdir / "out" / ".state"),
    }
    children = [
        PluginProcess(
            name,
            (sys.executable, str(plugins_dir / name / "plugin.py")),
            {**base_env, "JIRA_ORCHESTRATOR_BUS_URL": url(name, i)},
        )
        for i, name in enumerate(PLUGINS)
    ]
    replica_names = ["orchestrator-1", "orchestrator-2"]
    children += [
        PluginProcess(
            name,
            (sys.executable, str(Path(replicas.__file__))),
            {
                **base_env,
                "JIRA_ORCHESTRATOR_BUS_URL": url(ORCHESTRATOR_ID, i + 1),
                "JIRA_ORCHESTRATOR_PLUGINS": str(plugins_dir),
                "JIRA_ORCHESTRATOR_TASKS": str(workdir / f"{name}-tasks.db"),
            },
        )
        for i, name in enumerate(replica_names)
    ]
    policy = RestartPolicy(limit=1000, first_delay=0.2, max_delay=1.0)
    supervisor = _Watching(folder, children, say=say, policy=policy)
    loop = asyncio.get_running_loop()
    watchers = [
        loop.create_task(_watch_server(node, supervisor, folder, say, f"nats-{i + 1}"))
        for i, node in enumerate(cluster.nodes)
    ]
    # the driver submits issues as the orchestrator's user would (a webhook receiver)
    driver = get_message_bus("chaos-driver", url(ORCHESTRATOR_ID, 2))
    letters: dict[str, list[str]] = {}

    def on_letter(message: Message) -> None:
        payload = message.payload if isinstance(message.payload, dict) else {}
        original = payload.get("message") or {}
        parameters = (original.get("payload") or {}).get("parameters") or {}
        task = parameters.get("taskId") if isinstance(parameters, dict) else None
        if isinstance(task, str):
            letters.setdefault(task, []).append(str(payload.get("reason")))

    outcomes: dict[str, Outcome] = {}
    planned: list[Fault] = []
    try:
        async with asyncio.timeout(deadline):
            assert isinstance(driver.transport, NatsTransport)
            await provision_consumers(driver.transport, catalog)  # before the plugins bind
            supervisor.running()  # a child that dies from now on is restarted
            await supervisor.start()
            for letters_topic in ("system/dead-letter", "system/dead-letter/*"):  # stamped too
                driver.subscribe(letters_topic, on_letter, queue="chaos-audit")
            await driver.transport.flush()
            for name in PLUGINS:
                await _healthy(driver, name)
            for name in replica_names:
                await supervisor.ready.setdefault(name, asyncio.Event()).wait()
            say(f"[chaos] cluster, {len(PLUGINS)} plugins and 2 replicas ready; {count} issues")
            planned = _plan(rng, count, faults, PLUGINS, replica_names)
            started = time.monotonic()
            await _drive(
                driver, issues(count, seed), outcomes, planned, cluster, supervisor, concurrency,
                say,
            )  # fmt: skip
            seconds = time.monotonic() - started
            await driver.transport.flush()
            await _settle_letters(driver, outcomes, letters)
    finally:
        supervisor._stopping = True
        await close_message_bus()
        await supervisor.stop()
        for watcher in watchers:
            watcher.cancel()
        cluster.kill()
        folder.release()
    for fault in planned:
        ends = [outcomes[k].finished for k in fault.in_flight if k in outcomes]
        fault.settled_after = (max(ends) - fault.injected) if ends else 0.0
    effects, deliveries = _ledger(ledger)
    return Report(count, planned, outcomes, letters, effects, deliveries, seconds)


def _plan(
    rng: random.Random,
    count: int,
    faults: dict[str, int],
    plugins: tuple[str, ...],
    replica_names: list[str],
) -> list[Fault]:
    kinds = [kind for kind in KINDS for _ in range(faults.get(kind, 0))]
    rng.shuffle(kinds)
    moments = sorted(rng.randint(count // 10, count * 8 // 10) for _ in kinds)
    targets = {
        "plugin": list(plugins),
        "node": ["nats-1", "nats-2", "nats-3"],
        "replica": replica_names,
    }
    return [
        Fault(kind, rng.choice(targets[kind]), at) for kind, at in zip(kinds, moments, strict=True)
    ]


async def _healthy(bus: Any, plugin: str) -> None:
    client = RPCClient(f"plugin://{plugin}/rpc", bus=bus)
    while True:
        try:
            answer = await client.call("health_check", timeout=2)
        except JiraOrchestratorError:
            await asyncio.sleep(0.1)  # another process starting; bounded by the caller
            continue
        if isinstance(answer, dict) and answer.get("status") in ("healthy", "degraded"):
            return
        await asyncio.sleep(0.1)


async def _drive(
    bus: Any,
    work: list[dict[str, Any]],
    outcomes: dict[str, Outcome],
    planned: list[Fault],
    cluster: NatsCluster,
    supervisor: _Watching,
    concurrency: int,
    say: Callable[[str], None],
) -> None:
    done = 0
    progress = asyncio.Condition()
    gate = asyncio.Semaphore(concurrency)

    async def one(issue: dict[str, Any]) -> None:
        nonlocal done
        key = issue["key"]
        async with gate:
            record = outcomes[key] = Outcome(key, time.monotonic())
            while True:
                try:
                    result = await replicas.submit(
                        bus, issue, task_id=key, timeout=240, patience=20
                    )
                except NoResponders:
                    await asyncio.sleep(0.1)  # no replica this instant; the intake is durable
                    continue
                except JiraOrchestratorError as error:
                    record.outcome, record.error = "error", f"{type(error).__name__}: {error}"
                else:
                    record.outcome = str(result.get("outcome"))
                    record.plugin = result.get("plugin")
                    record.error = result.get("error")
                break
            record.finished = time.monotonic()
        async with progress:
            done += 1
            progress.notify_all()

    async def inject() -> None:
        for fault in planned:
            async with progress:
                await progress.wait_for(lambda f=fault: done >= f.at_done)
            fault.in_flight = [k for k, o in outcomes.items() if not o.finished and o.started]
            await _kill(fault, bus, cluster, supervisor)
            say(
                f"[chaos] {fault.kind} {fault.target} killed after {fault.at_done} issues; "
                f"back after {fault.back_after:.2f}s"
            )

    injector = asyncio.ensure_future(inject())
    try:
        await asyncio.gather(*(one(issue) for issue in work))
        await injector
    finally:
        injector.cancel()
        await asyncio.gather(injector, return_exceptions=True)


async def _kill(fault: Fault, bus: Any, cluster: NatsCluster, supervisor: _Watching) -> None:
    if fault.kind == "node":
        node = cluster.nodes[int(fault.target.split("-")[1]) - 1]
        process = node.process
        assert process is not None
        since = node.log.stat().st_size
        fault.injected = time.monotonic()
        os.kill(process.pid, signal.SIGKILL)
        while node.process is process or node.process is None:  # noqa: ASYNC110 - restarted
            await asyncio.sleep(0.05)  # another component's recovery; bounded by the run
        # back: restarted by the watcher and rejoined (it knows the JetStream leader)
        await asyncio.to_thread(wait_for_leader, node, since)
        fault.back_after = time.monotonic() - fault.injected
        return
    child = supervisor.plugins[fault.target]
    old = child.process
    assert old is not None
    if fault.kind == "replica":
        supervisor.ready[fault.target] = asyncio.Event()
    fault.injected = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        os.kill(old.pid, signal.SIGKILL)
    if fault.kind == "replica":
        await supervisor.ready[fault.target].wait()
    else:
        while child.process is old:  # noqa: ASYNC110 - another process, no event to await
            await asyncio.sleep(0.05)  # the supervisor's backoff; bounded by the run
        await _healthy(bus, fault.target)
    fault.back_after = time.monotonic() - fault.injected


async def _settle_letters(
    bus: Any, outcomes: dict[str, Outcome], letters: dict[str, list[str]]
) -> None:
    """Until every issue without a completion has its dead letter (bounded by the run)."""
    waiting = [k for k, o in outcomes.items() if o.outcome != "completed"]
    for _ in range(200):
        if all(letters.get(k) for k in waiting):
            return
        await bus.transport.flush()
        await asyncio.sleep(0.05)  # letters from other processes; a bounded number of looks


def _ledger(path: Path) -> tuple[dict[str, int], dict[str, int]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        effects = dict(db.execute("SELECT task_id, COUNT(*) FROM effects GROUP BY task_id"))
        deliveries = dict(db.execute("SELECT task_id, COUNT(*) FROM deliveries GROUP BY task_id"))
    return effects, deliveries
