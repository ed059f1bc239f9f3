"""Three replicas in three processes over NATS, losing 20% of state messages, converge."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from tests.nats._server import NatsServer

ROOT = Path(__file__).resolve().parents[2]


def _lines(stream: IO[str], into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line.strip())


def test_three_lossy_replicas_converge_after_anti_entropy(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    outputs: list[queue.Queue[str]] = []
    processes: list[subprocess.Popen[str]] = []
    readers: list[threading.Thread] = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        for seed in (1, 2, 3):
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.nats._state_replica",
                    nats_server.url,
                    str(tmp_path / f"replica-{seed}.db"),
                    str(seed),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
                cwd=ROOT,
            )
            assert process.stdout is not None
            lines: queue.Queue[str] = queue.Queue()
            reader = threading.Thread(target=_lines, args=(process.stdout, lines), daemon=True)
            reader.start()
            readers.append(reader)
            processes.append(process)
            outputs.append(lines)
        increments = 0
        for lines in outputs:  # every replica made its mutations
            line = lines.get(timeout=60)
            while not line.startswith("DONE"):
                line = lines.get(timeout=60)
            increments += int(line.split()[1])
        latest: list[dict[str, object] | None] = [None, None, None]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for index, lines in enumerate(outputs):
                while not lines.empty():
                    latest[index] = json.loads(lines.get())
            if all(state is not None and state == latest[0] for state in latest):
                state = latest[0]
                assert state is not None
                if state["hits"] == increments:
                    break
            time.sleep(0.05)  # polling other processes' reports, bounded by the deadline
        else:
            raise AssertionError(f"no convergence: {latest}, expected hits {increments}")
        final = latest[0]
        assert final is not None
        seen = final["seen"]
        assert isinstance(seen, list)
        assert {item.split("-")[0] for item in seen} <= {"1", "2", "3"}
    finally:
        for process in processes:
            if process.stdin is not None:
                process.stdin.close()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for reader in readers:  # they end at the end of their pipe
            reader.join(timeout=10)
        for process in processes:
            if process.stdout is not None:
                process.stdout.close()
