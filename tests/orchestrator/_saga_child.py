"""Child of test_saga_crash.py: run (or recover) a four-step saga with a persisted store.

``run DB LOG [--hang-at N] [--fail-at N] [--hang-undo NAME]``: runs the saga; the step at
position ``--hang-at`` prints ``started <name>`` and then waits forever, so the parent can
kill the process there; ``--hang-undo`` makes that step's compensation hang the same way
(after printing ``compensating <name>``). ``recover DB LOG``: what a restarted orchestrator
does, printing the outcome as JSON. Side effects go to LOG, one line each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from jira_orchestrator.orchestrator import FunctionStep, Saga, SagaFailed, SagaStore

NAMES = ("reserve", "charge", "provision", "notify")


def build(store: SagaStore, log: Path, options: argparse.Namespace) -> Saga:
    def write(line: str) -> None:
        with log.open("a", encoding="utf-8") as file:
            file.write(line + "\n")

    def step(position: int, name: str) -> FunctionStep:
        async def do(value: Any) -> dict[str, Any]:
            if position == options.hang_at:
                print(f"started {name}", flush=True)
                await asyncio.Event().wait()
            if position == options.fail_at:
                write(f"fail {name}")
                raise RuntimeError(f"{name} failed")
            write(f"do {name}")
            return {"ref": f"{name}-{position}"}

        async def undo(result: Any) -> None:
            if name == options.hang_undo:
                print(f"compensating {name}", flush=True)
                await asyncio.Event().wait()
            write(f"undo {name} {result['ref']}")

        return FunctionStep(name, do, compensate=undo)

    return Saga("order", [step(i, name) for i, name in enumerate(NAMES)], store=store)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["run", "recover"])
    parser.add_argument("db", type=Path)
    parser.add_argument("log", type=Path)
    parser.add_argument("--hang-at", type=int, default=-1)
    parser.add_argument("--fail-at", type=int, default=-1)
    parser.add_argument("--hang-undo", default=None)
    options = parser.parse_args()
    with SagaStore(options.db) as store:
        saga = build(store, options.log, options)
        if options.mode == "recover":
            outcomes = await saga.recover()
            print(
                json.dumps(
                    [
                        {
                            "run": o.run_id,
                            "status": o.status,
                            "compensated": o.compensated,
                            "errors": {k: str(v) for k, v in o.compensation_errors.items()},
                            "interrupted": o.interrupted,
                        }
                        for o in outcomes
                    ]
                ),
                flush=True,
            )
            return
        print("ready", flush=True)
        try:
            await saga.execute({"order": 42}, run_id="run-1")
        except SagaFailed as failed:
            print(f"failed {failed}", flush=True)
            sys.exit(3)
        print("completed", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
