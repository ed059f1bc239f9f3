"""Crash test: SIGKILL a process mid-mutation, 20 times; nothing it acknowledged is lost.

The child (``_crash_child.py``) loops over three kinds of mutation and prints each one
after the call returned. The parent kills it at a random point, reopens the file and
checks every printed mutation is there, plus at most the one that was in flight.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from jira_orchestrator.state import DistributedStateManager

CHILD = Path(__file__).with_name("_crash_child.py")
ROUNDS = 20

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


def run_and_kill(path: Path, round_no: int, acks_before_kill: int) -> dict[str, list[int]]:
    """Run the child, SIGKILL it after that many acks (-1: at once); what it acknowledged."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(path), str(round_no)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert child.stdout is not None
    lines: list[str] = []
    if acks_before_kill >= 0:
        lines.append(child.stdout.readline())
        assert lines[0] == "ready\n", "the child failed to start"
        lines.extend(child.stdout.readline() for _ in range(acks_before_kill))
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    lines.extend(child.stdout.readlines())  # printed before the kill: acknowledged too
    child.stdout.close()
    acks: dict[str, list[int]] = {"count": [], "set": [], "reg": []}
    for line in lines:
        if line.strip() and line != "ready\n":
            kind, _, i = line.split()
            acks[kind].append(int(i))
    return acks


def test_acknowledged_mutations_survive_sigkill(tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    path = tmp_path / "state.db"
    count, members, last = 0, set[str](), None
    for round_no in range(ROUNDS):
        plan = rng.choice([-1, 0, *range(1, 40)])
        acks = run_and_kill(path, round_no, plan)
        where = f"seed {seed}, round {round_no}, plan {plan}, acks {acks}"
        with DistributedStateManager("crash-test", path=path) as manager:
            done = max(acks["count"], default=0)
            assert acks["count"] == list(range(1, done + 1)), where
            now_count = manager.get_counter("count")
            assert count + done <= now_count <= count + done + 1, where

            in_set = max(acks["set"], default=0)
            acked = {f"{round_no}:{i}" for i in acks["set"]}
            now_members = set(manager.get_set("seen"))
            assert members | acked <= now_members, where
            assert now_members - members - acked <= {f"{round_no}:{in_set + 1}"}, where

            now_last = manager.get_register("last")
            if acks["reg"]:
                top = acks["reg"][-1]
                assert now_last in ([round_no, top], [round_no, top + 1]), where
            else:
                assert now_last in (last, [round_no, 1]), where
            count, members, last = now_count, now_members, now_last
    assert count > 0
