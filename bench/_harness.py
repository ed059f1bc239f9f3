"""Shared bits of the benchmarks: timing, percentiles, the results table and JSON."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    """One line naming the machine and interpreter."""
    return (
        f"{platform.machine()} {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0..100) of samples, nearest-rank."""
    ordered = sorted(samples)
    index = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


def best_of(runs: int, function: Any) -> float:
    """The best (smallest) of several timings: the least disturbed by the machine."""
    return min(function() for _ in range(runs))


def median_of(values: list[float]) -> float:
    return statistics.median(values)


def report(name: str, rows: list[dict[str, Any]]) -> None:
    """Print rows as a table and write them with the machine to results/<name>.json."""
    RESULTS.mkdir(exist_ok=True)
    document = {
        "benchmark": name,
        "machine": machine(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "rows": rows,
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(document, indent=2) + "\n")
    print(f"# {name} on {document['machine']}")
    keys = list(rows[0])
    widths = [max(len(k), *(len(_cell(r.get(k))) for r in rows)) for k in keys]
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True)))
    for row in rows:
        print("  ".join(_cell(row.get(k)).ljust(w) for k, w in zip(keys, widths, strict=True)))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return "" if value is None else str(value)
