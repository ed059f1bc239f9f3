"""Chaos on a 3-node NATS cluster: 1,000 issues while plugins, nodes and replicas are killed.

Run: ``make bench`` or ``.venv/bin/python bench/bench_chaos.py [--issues N] [--seed S]``.
See bench/_chaos.py for what runs and what is checked. Prints one row per kind of fault
and the totals, writes bench/results/chaos.json, and exits 1 if an issue was lost or a
side effect happened twice.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for bench._chaos

from bench._chaos import KINDS, run_chaos

from _harness import report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--plugin-kills", type=int, default=6)
    parser.add_argument("--node-kills", type=int, default=3)
    parser.add_argument("--replica-kills", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    options = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    faults = {
        "plugin": options.plugin_kills,
        "node": options.node_kills,
        "replica": options.replica_kills,
    }
    with tempfile.TemporaryDirectory(prefix="jo-chaos-") as scratch:
        result = asyncio.run(
            run_chaos(
                Path(scratch),
                count=options.issues,
                seed=options.seed,
                faults=faults,
                concurrency=options.concurrency,
                deadline=1800.0,
            )
        )
    summary = result.summary()
    rows = []
    for kind in KINDS:
        figures = summary["faults"][kind]
        back = figures["backAfterS"]
        settled = figures["settledAfterS"]
        rows.append(
            {
                "fault": kind,
                "injected": figures["injected"],
                "back max (s)": max(back, default=0.0),
                "in flight settled max (s)": max(settled, default=0.0),
                "in flight at kill": sum(figures["inFlightAtKill"]),
            }
        )
    rows.append(
        {
            "fault": "totals",
            "injected": sum(r["injected"] for r in rows),
            "issues": summary["issues"],
            "completed": summary["completed"],
            "dead-lettered": summary["deadLettered"],
            "lost": summary["lost"],
            "duplicated effects": summary["duplicatedEffects"],
            "redeliveries absorbed": summary["redeliveriesAbsorbed"],
            "issues/s": summary["issuesPerSecond"],
        }
    )
    report("chaos", rows)
    print(summary)
    bad = summary["lost"] or summary["duplicatedEffects"] or summary["completedWithoutEffect"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
