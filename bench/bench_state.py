"""Benchmark of local state: durable mutations/s against bare SQLite, and merge throughput.

Run: ``.venv/bin/python bench/bench_state.py``. Takes well under a minute. Prints a table
and writes ``bench/results/state.json``.

Every durable figure is an fsynced commit per operation (WAL, synchronous=FULL), so it is
bounded by the disk; the ratio to a bare ``INSERT`` + ``COMMIT`` in the same run and on the
same disk is what says how much the manager costs on top.
"""

from __future__ import annotations

import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from jira_orchestrator._core.hlc import Timestamp
from jira_orchestrator.state import DistributedStateManager, LWWRegister, ORSet, PNCounter

RESULTS = Path(__file__).resolve().parent / "results" / "state.json"
BUDGET = 0.25  # seconds per measurement, at most
ROUNDS = 10
BARE = "bare sqlite3 INSERT+COMMIT (WAL, FULL)"
BARE_EXCLUSIVE = "bare, same + locking_mode=EXCLUSIVE"
LIMIT = 250  # durable ops per measurement, at most


class Sample(NamedTuple):
    per_second: float
    ops: int
    cpu: float  # seconds of this process's CPU time


def rate(op: Callable[[int], object], limit: int, first: int = 0) -> Sample:
    """Run ``op(i)``, i = first, first + 1, ..., for BUDGET seconds or ``limit`` calls."""
    start, cpu = time.perf_counter(), time.process_time()
    done = 0
    while done < limit and time.perf_counter() - start < BUDGET:
        op(first + done)
        done += 1
    return Sample(done / (time.perf_counter() - start), done, time.process_time() - cpu)


def bare_sqlite(path: Path, *, exclusive: bool) -> Callable[[int], object]:
    db = sqlite3.connect(path, isolation_level=None)
    if exclusive:  # as the store runs: one owner, no shared-memory WAL index
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (key TEXT PRIMARY KEY, data TEXT NOT NULL) WITHOUT ROWID")

    def op(i: int) -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT INTO t VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET data = excluded.data",
            ("requests_processed", json.dumps({"type": "pncounter", "p": {"r": i}, "n": {}})),
        )
        db.execute("COMMIT")

    return op


def main() -> None:
    rows: list[dict[str, object]] = []

    def record(name: str, per_second: float, ops: int, cpu_us: float, note: str) -> None:
        rows.append(
            {
                "name": name,
                "ops_per_s": round(per_second, 1),
                "cpu_us_per_op": round(cpu_us, 1),
                "ops": ops,
                "note": note,
            }
        )

    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        folder = Path(tmp)
        peer_deltas: list[dict[str, dict[str, object]]] = []
        with DistributedStateManager(
            "bench", path=folder / "peer.db", on_delta=peer_deltas.append
        ) as peer:
            for i in range(3_000):
                peer.set_register(f"reg{i % 50}", i) if i % 2 else peer.increment_counter("hits")
        big, hundred, huge = ORSet(), ORSet(), ORSet()
        for i in range(1_000):
            big.add(f"existing_{i}", "elsewhere")
        for i in range(50):
            hundred.add(f"existing_{i}", "elsewhere")
        for i in range(49_950):
            huge.add(f"existing_{i}", "elsewhere")
        with DistributedStateManager("bench", path=folder / "state.db") as sm:
            sm.apply_remote(
                {"big": big.to_dict(), "hundred": hundred.to_dict(), "huge": huge.to_dict()}
            )
            # A set mutation appends its delta rather than rewriting the set, so its cost
            # does not grow with the set: measured on sets of 10, 100, 1000 (growing by at
            # most 2,750) and 50,000 elements; 100 and 50,000 make the ratio reported.
            durable: dict[str, Callable[[int], object]] = {
                BARE: bare_sqlite(folder / "bare.db", exclusive=False),
                BARE_EXCLUSIVE: bare_sqlite(folder / "bare-x.db", exclusive=True),
                "increment_counter": lambda i: sm.increment_counter("requests_processed"),
                "set_register (small dict)": lambda i: sm.set_register("config", {"n": i}),
                "add_to_set (set of 10)": lambda i: sm.add_to_set("small", f"t{i % 10}"),
                "add_to_set (set of 1000)": lambda i: sm.add_to_set("big", f"t{i}"),
                "add_to_set (set of 100)": lambda i: sm.add_to_set("hundred", f"t{i % 50}"),
                "add_to_set (set of 50,000)": lambda i: sm.add_to_set("huge", f"t{i % 50}"),
                "apply_remote (one-key delta)": lambda i: sm.apply_remote(peer_deltas[i]),
            }
            limits = dict.fromkeys(durable, LIMIT)
            # The fsync dominates and the disk is shared and noisy (and the first writes to
            # a new file are slower): one discarded warm-up round, then short rounds in
            # shuffled order so that noise hits all alike; the median rate of each is kept.
            # CPU time per op is the steadier figure: what the manager adds to the fsync.
            samples: dict[str, list[Sample]] = {name: [] for name in durable}
            order = list(durable)
            for round_no in range(ROUNDS + 1):
                random.Random(round_no).shuffle(order)
                for name in order:
                    first = sum(x.ops for x in samples[name])
                    samples[name].append(rate(durable[name], limits[name], first))
            for name in samples:
                samples[name] = samples[name][1:]
        medians = {
            name: statistics.median(x.per_second for x in runs) for name, runs in samples.items()
        }
        bare, bare_x = medians[BARE], medians[BARE_EXCLUSIVE]
        for name, runs in samples.items():
            note = "baseline" if name == BARE else f"{medians[name] / bare:.2f}x bare"
            if name not in (BARE, BARE_EXCLUSIVE):
                note += f", {medians[name] / bare_x:.2f}x bare exclusive"
            ops = sum(x.ops for x in runs)
            record(name, medians[name], ops, sum(x.cpu for x in runs) / ops * 1e6, note)
        inc = medians["increment_counter"]

    def pure(name: str, sample: Sample) -> None:
        record(name, sample.per_second, sample.ops, sample.cpu / sample.ops * 1e6, "in memory")

    base = ORSet()
    for i in range(1_000):
        base.add(f"task_{i}", "r1")
    other = base.copy()
    deltas = [other.add(f"new_{i}", "r2") for i in range(20_000)]
    pure("ORSet.merge(add delta), set of 1000+", rate(lambda i: base.merge(deltas[i]), 20_000))
    source, counter = PNCounter(), PNCounter()
    steps = [source.increment(f"r{i % 8}") for i in range(50_000)]
    pure("PNCounter.merge(delta)", rate(lambda i: counter.merge(steps[i]), 50_000))
    register = LWWRegister()
    writes = [LWWRegister({"v": i}, Timestamp(i, 0, "r")) for i in range(50_000)]
    pure("LWWRegister.merge(delta)", rate(lambda i: register.merge(writes[i]), 50_000))

    width = max(len(str(r["name"])) for r in rows)
    print(f"{'operation':<{width}}  {'ops/s':>12}  {'cpu us/op':>9}  {'ops':>6}  note")
    for r in rows:
        print(
            f"{r['name']!s:<{width}}  {r['ops_per_s']:>12,.1f}  {r['cpu_us_per_op']:>9,.1f}"
            f"  {r['ops']:>6}  {r['note']}"
        )

    def cpu_of(name: str) -> float:
        return next(float(str(r["cpu_us_per_op"])) for r in rows if r["name"] == name)

    set_ratio = cpu_of("add_to_set (set of 50,000)") / cpu_of("add_to_set (set of 100)")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "state",
        "command": "python bench/bench_state.py",
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "durable_ratio_increment_vs_bare": round(inc / bare, 3),
        "durable_ratio_increment_vs_bare_exclusive": round(inc / bare_x, 3),
        "cpu_us_added_per_increment_vs_bare": round(cpu_of("increment_counter") - cpu_of(BARE), 1),
        "add_to_set_cpu_ratio_50000_vs_100_elements": round(set_ratio, 2),
        "results": rows,
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        f"increment_counter runs at {inc / bare:.2f}x a bare durable INSERT+COMMIT "
        f"({inc / bare_x:.2f}x one in exclusive locking mode, as the store uses); it adds "
        f"{cpu_of('increment_counter') - cpu_of(BARE):.1f} us of CPU per mutation"
    )
    print(
        f"add_to_set on a set of 50,000 elements costs {set_ratio:.2f}x the CPU of one on a "
        "set of 100 (a set mutation writes its delta, not the set)"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
