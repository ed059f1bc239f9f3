"""Child of test_crash.py: mutate state forever, printing each mutation once it returned."""

from __future__ import annotations

import sys

from jira_orchestrator.state import DistributedStateManager


def main() -> None:
    path, round_no = sys.argv[1], int(sys.argv[2])
    manager = DistributedStateManager("crash-test", path=path)
    print("ready", flush=True)
    i = 0
    while True:
        i += 1
        manager.increment_counter("count")
        print(f"count {round_no} {i}", flush=True)
        manager.add_to_set("seen", f"{round_no}:{i}")
        print(f"set {round_no} {i}", flush=True)
        manager.set_register("last", [round_no, i])
        print(f"reg {round_no} {i}", flush=True)


if __name__ == "__main__":
    main()
