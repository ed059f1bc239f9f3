"""Crash test: SIGKILL a process mid-saga; the restart compensates what completed.

The child (``_saga_child.py``) runs a four-step saga whose steps and compensations write
one line each to a log file. The parent kills it while a step (or a compensation) hangs,
then runs the recovery in a new process and checks the log: every completed step undone,
newest first, exactly once; a second recovery does nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jira_orchestrator.orchestrator import SagaStore

CHILD = Path(__file__).with_name("_saga_child.py")
NAMES = ("reserve", "charge", "provision", "notify")

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


def start(db: Path, log: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), "run", str(db), str(log), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_when(child: subprocess.Popen[str], line: str) -> None:
    assert child.stdout is not None
    seen: list[str] = []
    while True:
        got = child.stdout.readline()
        if not got:
            _, err = child.communicate()
            raise AssertionError(f"child ended before {line!r}: {seen}\n{err}")
        seen.append(got)
        if got.strip() == line:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    child.stdout.close()
    assert child.stderr is not None
    child.stderr.close()


def recover(db: Path, log: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, str(CHILD), "recover", str(db), str(log)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: list[dict[str, Any]] = json.loads(done.stdout)
    return result


def lines(log: Path) -> list[str]:
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


@pytest.mark.parametrize("hang_at", [0, 1, 2, 3])
def test_killed_mid_step_restart_compensates_completed_steps(tmp_path: Path, hang_at: int) -> None:
    db, log = tmp_path / "sagas.db", tmp_path / "effects.log"
    kill_when(start(db, log, "--hang-at", str(hang_at)), f"started {NAMES[hang_at]}")
    done = NAMES[:hang_at]
    assert lines(log) == [f"do {name}" for name in done]

    outcomes = recover(db, log)
    expected_undo = [f"undo {name} {name}-{i}" for i, name in reversed(list(enumerate(done)))]
    assert lines(log) == [f"do {name}" for name in done] + expected_undo
    assert outcomes == [
        {
            "run": "run-1",
            "status": "compensated",
            "compensated": list(reversed(done)),
            "errors": {},
            "interrupted": NAMES[hang_at],
        }
    ]
    assert recover(db, log) == []  # a second restart finds nothing to do
    assert lines(log) == [f"do {name}" for name in done] + expected_undo
    with SagaStore(db) as store:
        run = store.get("run-1")
        assert run is not None
        assert run.status == "compensated"
        statuses = [step.status for step in run.steps]
        assert statuses == ["compensated"] * hang_at + ["interrupted"]


def test_killed_mid_compensation_restart_finishes_it_without_redoing_the_done_ones(
    tmp_path: Path,
) -> None:
    db, log = tmp_path / "sagas.db", tmp_path / "effects.log"
    # provision fails; charge's compensation runs and finishes, reserve's hangs: kill there.
    child = start(db, log, "--fail-at", "2", "--hang-undo", "reserve")
    kill_when(child, "compensating reserve")
    assert lines(log) == ["do reserve", "do charge", "fail provision", "undo charge charge-1"]

    outcomes = recover(db, log)
    assert outcomes[0]["compensated"] == ["reserve"]  # charge is not undone twice
    assert outcomes[0]["interrupted"] is None
    assert lines(log) == [
        "do reserve",
        "do charge",
        "fail provision",
        "undo charge charge-1",
        "undo reserve reserve-0",
    ]
    assert recover(db, log) == []


def test_a_run_that_completed_is_left_alone(tmp_path: Path) -> None:
    db, log = tmp_path / "sagas.db", tmp_path / "effects.log"
    child = start(db, log)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert out.splitlines() == ["ready", "completed"]
    assert recover(db, log) == []
    assert lines(log) == [f"do {name}" for name in NAMES]
