"""Chaos on the clustered ecosystem: nothing lost, nothing done twice (bench/_chaos.py).

A smaller run of bench/bench_chaos.py: issues flow through two orchestrator replicas and
three plugin processes on a 3-node cluster while a plugin, a node and a replica are
SIGKILLed at seeded moments. Bounded by the run's deadline; it waits on events (the
supervisor's restarts, answers, the replicas' readiness), never on time passing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bench._chaos import run_chaos


@pytest.mark.timeout(420)  # the run's own deadline (300 s) ends it first
async def test_killing_a_plugin_a_node_and_a_replica_loses_nothing_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    report = await run_chaos(
        tmp_path / "chaos",
        count=150,
        seed=11,
        faults={"plugin": 1, "node": 1, "replica": 1},
        concurrency=8,
        deadline=300.0,
        say=lambda line: None,
    )
    summary = report.summary()
    assert summary["lost"] == 0, summary
    assert summary["duplicatedEffects"] == 0, summary
    assert summary["completedWithoutEffect"] == 0, summary
    assert summary["conflictingOutcomes"] == 0, summary
    assert summary["completed"] + summary["deadLettered"] == 150, summary
    for kind in ("plugin", "node", "replica"):
        assert summary["faults"][kind]["injected"] == 1, summary
        assert summary["faults"][kind]["backAfterS"][0] > 0, summary
    # every issue completed exactly once in the ledger: one effect per completed task id
    completed = [o.key for o in report.outcomes.values() if o.outcome == "completed"]
    assert all(report.effects.get(key) == 1 for key in completed)
