"""Refit the routing calibrator shipped in the package, and check it on unseen requests.

Run: ``.venv/bin/python bench/fit_calibration.py`` (words alone; about 20 s), or with
``.venv-semantic/bin/python`` to refit the semantic blend's calibrator as well. It routes
every labelled set of ``tests/data`` over the corpus, fits `routing.calibration.fit` on
all of them, writes ``src/jira_orchestrator/routing/calibration.json`` (keeping a
calibrator it did not refit) and prints the check: each unseen set scored by a calibrator
fitted on the *other* sets only (leave one set out), pooled ECE, reliability table and
risk-coverage. ``--check`` prints the check without writing anything.

Refit after a change to the scoring (the score ratios the calibrator reads change with
it), then run ``bench/bench_routing.py`` for the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jira_orchestrator.plugins import discover_plugins
from jira_orchestrator.routing import Router, load_labelled
from jira_orchestrator.routing.calibration import (
    FORMAT,
    Calibrator,
    expected_calibration_error,
    features,
    fit_with_record,
    reliability,
    risk_coverage,
)

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(
    os.environ.get("JIRA_ORCHESTRATOR_CORPUS", ROOT.parent / "shared" / "corpus" / "claude-plugins")
)
DATA = ROOT / "tests" / "data"
OUT = ROOT / "src" / "jira_orchestrator" / "routing" / "calibration.json"
# (label, file): the first was used to develop the router, the others never tuned on.
SETS = (
    ("labelled", DATA / "routing_labelled.jsonl"),
    ("held-out", DATA / "routing_holdout.jsonl"),
    ("blind", DATA / "routing_blind.jsonl"),
    ("independent", DATA / "routing_independent.jsonl"),
    ("fresh", DATA / "routing_fresh.jsonl"),
    ("validation", DATA / "routing_validation.jsonl"),
    ("check", DATA / "routing_check.jsonl"),
    ("confirm", DATA / "routing_confirm.jsonl"),
)
UNSEEN = tuple(label for label, _ in SETS[1:])


@dataclass(frozen=True, slots=True)
class Sample:
    """One routed request: its set, the calibration features, whether the router was right."""

    set: str
    request_id: str
    style: str
    features: tuple[float, ...]
    right: bool
    plugin: str = ""
    """The primary plugin (the one whose track record the calibrator weighs)."""


def route_sets(router: Router) -> list[Sample]:
    """Every request of `SETS` routed by ``router``."""
    samples: list[Sample] = []
    for label, path in SETS:
        for example in load_labelled(path):
            decision = router.route(example.request)
            samples.append(
                Sample(
                    label,
                    example.request.request_id,
                    example.style,
                    features(decision.scores),
                    decision.scores[:1] != () and decision.scores[0].plugin == example.expected,
                    decision.scores[0].plugin if decision.scores else "",
                )
            )
    return samples


def fit_all(samples: Sequence[Sample], kind: str) -> Calibrator:
    """The calibrator fitted on every sample."""
    sets = ", ".join(dict.fromkeys(s.set for s in samples))
    return fit_with_record(
        [(s.plugin, s.features, s.right) for s in samples],
        fitted_on=f"{kind}: {len(samples)} requests of the corpus sets ({sets})",
    )


def cross_check(samples: Sequence[Sample]) -> dict[str, list[tuple[float, bool]]]:
    """Each unseen set's (confidence, right) from a calibrator fitted on the other sets."""
    found: dict[str, list[tuple[float, bool]]] = {}
    for held in UNSEEN:
        calibrator = fit_with_record(
            [(s.plugin, s.features, s.right) for s in samples if s.set != held]
        )
        found[held] = [
            (calibrator.probability(s.features, s.plugin) if s.plugin else 0.0, s.right)
            for s in samples
            if s.set == held
        ]
    return found


def _ece(items: Sequence[tuple[float, bool]]) -> float:
    return expected_calibration_error([p for p, _ in items], [right for _, right in items])


def summary(checked: dict[str, list[tuple[float, bool]]]) -> str:
    """The check in words: pooled and per-set ECE, reliability table, risk-coverage."""
    pooled = [item for items in checked.values() for item in items]
    probabilities = [p for p, _ in pooled]
    outcomes = [right for _, right in pooled]
    lines = [
        f"unseen sets, each scored by a calibrator fitted without it: {len(pooled)} requests,"
        f" ECE {expected_calibration_error(probabilities, outcomes):.3f}",
        "per set: " + ", ".join(f"{label} {_ece(items):.3f}" for label, items in checked.items()),
        "confidence   requests  mean conf  accuracy",
    ]
    for b in reliability(probabilities, outcomes):
        lines.append(
            f"{b.low:.1f}-{b.high:.1f}   {b.count:8d}  {b.confidence:9.3f}  {b.accuracy:8.3f}"
        )
    for point in risk_coverage(probabilities, outcomes, (0.7, 0.8, 0.85, 0.9, 1.0)):
        lines.append(
            f"coverage {point.coverage:.0%}: top-1 {point.accuracy:.1%} of {point.kept}"
            f" (confidence >= {point.threshold:.3f})"
        )
    return "\n".join(lines)


def _semantic_router() -> Router | None:
    try:
        from jira_orchestrator.routing.semantic import SemanticReranker, load_encoder

        encoder = load_encoder()
    except ImportError as exc:
        print(f"{exc}; the semantic calibrator is left as it is", file=sys.stderr)
        return None
    semantic = Router(discover_plugins(CORPUS).plugins)
    semantic.semantic = SemanticReranker.from_router(semantic, encoder)
    return semantic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="print the check, write nothing")
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the calibration")
    parser.add_argument("--no-semantic", action="store_true", help="words alone only")
    options = parser.parse_args()
    router = Router(discover_plugins(CORPUS).plugins)
    fitted: dict[str, Calibrator] = {}
    for kind, chosen in (
        ("words", router),
        ("semantic", None if options.no_semantic else _semantic_router()),
    ):
        if chosen is None:
            continue
        samples = route_sets(chosen)
        print(f"== {kind}")
        print(summary(cross_check(samples)))
        fitted[kind] = fit_all(samples, kind)
        print(f"fitted: {fitted[kind].to_dict()}")
    if options.check:
        return
    previous: dict[str, object] = {}
    if options.out.is_file():
        previous = json.loads(options.out.read_text(encoding="utf-8")).get("calibrators", {})
    calibrators = {**previous, **{kind: c.to_dict() for kind, c in fitted.items()}}
    document = {"format": FORMAT, "version": 1, "calibrators": calibrators}
    options.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {options.out}")


if __name__ == "__main__":
    main()
