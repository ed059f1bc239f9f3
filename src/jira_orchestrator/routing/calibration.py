"""Calibrated confidence: the probability that a decision's primary plugin is right.

A raw score says how well a plugin's words match a request, not how often the router is
right when it scores so. The `Calibrator` turns what a decision looks like into that
probability, by logistic regression (Platt scaling) over features that predict a right
decision, all independent of the score scale of an ecosystem:

- ``margin``: ``1 - second score / first score``, how far ahead the winner is;
- ``explicit``: 1 when the winner has explicit evidence (a declared capability or a file
  it declares), else 0;
- and, when the calibrator carries one, the winner's *track record*: how often the router
  was right on the labelled requests it sent to that plugin (smoothed toward the rate over
  all plugins), its log-odds times the margin: the record says how far to trust a lead,
  and a near tie stays a near tie whoever is ahead. Some plugins win on words they share
  with the kind of work other plugins do (a business-domain plugin named by a request
  about a workflow, a report or a migration in that business); their leads are the ones
  to doubt. A plugin the record does not know (another ecosystem, a new plugin) counts at
  the overall rate.

The coefficients are fitted on labelled requests routed over the corpus and ship as data
(``calibration.json`` beside this module), one calibrator for words alone and one for
the semantic blend; ``bench/fit_calibration.py`` refits them. `fit` is the fitting
(Newton's method, a light L2 penalty); `expected_calibration_error`, `reliability` and
`risk_coverage` are the figures that check a calibrator on requests it was not fitted on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from jira_orchestrator.routing.decision import PluginScore

__all__ = [
    "FEATURES",
    "FORMAT",
    "Calibrator",
    "CoveragePoint",
    "ReliabilityBin",
    "expected_calibration_error",
    "features",
    "fit",
    "fit_with_record",
    "load_calibrator",
    "reliability",
    "risk_coverage",
]

FEATURES = ("margin", "explicit")
"""The features a calibrator weighs, in order (see the module's doc)."""
FORMAT = "jira-orchestrator/routing-calibration"
_DATA = "calibration.json"
_L2 = 0.01
_ITERATIONS = 100
_SMOOTHING = 3.0
"""Pseudo-decisions at the overall rate added to each plugin's record when fitting."""
_CLAMP = 1e-3


def features(scores: Sequence[PluginScore]) -> tuple[float, ...]:
    """The `FEATURES` of a decision's scores (best first); zeros without scores."""
    if not scores or scores[0].score <= 0:
        return (0.0, 0.0)
    first = scores[0]
    second = scores[1].score if len(scores) > 1 else 0.0
    explicit = 1.0 if first.capability > 0 or first.file_context > 0 else 0.0
    return (1 - second / first.score, explicit)


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1 / (1 + math.exp(-z))
    e = math.exp(z)
    return e / (1 + e)


def _logit(p: float) -> float:
    p = min(1 - _CLAMP, max(_CLAMP, p))
    return math.log(p / (1 - p))


@dataclass(frozen=True, slots=True)
class Calibrator:
    """Platt scaling over `FEATURES` and the winner's track record: ``P(right) =
    sigmoid(intercept + sum(w_i x_i) + record_weight * margin * logit(record[winner]))``.
    """

    coefficients: tuple[float, ...]
    intercept: float
    fitted_on: str = ""
    """What it was fitted on, in words (sets, requests)."""
    requests: int = 0
    record: Mapping[str, float] = field(default_factory=dict)
    """Per plugin: the share of the fitted decisions it won that were right (smoothed)."""
    record_default: float = 0.5
    """The record of a plugin not in `record` (the overall rate when fitted)."""
    record_weight: float = 0.0
    """The weight of the record's log-odds times the margin (0: no record)."""

    def __post_init__(self) -> None:
        if len(self.coefficients) != len(FEATURES):
            raise ValueError(
                f"a calibrator needs {len(FEATURES)} coefficients ({', '.join(FEATURES)}),"
                f" not {len(self.coefficients)}"
            )

    def probability(self, values: Sequence[float], plugin: str | None = None) -> float:
        """The probability that the primary plugin (``plugin``, when known) is right, from
        `features`; without ``plugin`` its record counts at `record_default`."""
        z = self.intercept + sum(w * x for w, x in zip(self.coefficients, values, strict=True))
        if self.record_weight:
            share = self.record_default if plugin is None else self.record_of(plugin)
            z += self.record_weight * values[0] * _logit(share)
        if self.requests:
            # Fitted on n decisions, it cannot tell a probability closer to 0 or 1 than
            # the rule of succession's 1 / (n + 2).
            edge = 1 / (self.requests + 2)
            return min(1 - edge, max(edge, _sigmoid(z)))
        return _sigmoid(z)

    def record_of(self, plugin: str) -> float:
        """The track record of ``plugin`` (`record_default` when not recorded)."""
        return self.record.get(plugin, self.record_default)

    def confidence(self, scores: Sequence[PluginScore]) -> float:
        """`probability` of a decision's scores (0 without scores: nothing to be right)."""
        if not scores or scores[0].score <= 0:
            return 0.0
        return self.probability(features(scores), scores[0].plugin)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (``record`` only when the calibrator weighs one)."""
        document: dict[str, Any] = {
            "method": "platt",
            "features": list(FEATURES),
            "coefficients": [round(w, 6) for w in self.coefficients],
            "intercept": round(self.intercept, 6),
            "fittedOn": self.fitted_on,
            "requests": self.requests,
        }
        if self.record_weight:
            document["record"] = {
                "weight": round(self.record_weight, 6),
                "default": round(self.record_default, 6),
                "plugins": {name: round(v, 6) for name, v in sorted(self.record.items())},
            }
        return document

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "calibrator") -> Calibrator:
        """Read `to_dict`'s form; raises ValueError naming ``where`` and what is wrong."""
        if data.get("method") != "platt":
            raise ValueError(f"{where}: method must be 'platt', not {data.get('method')!r}")
        if list(data.get("features") or []) != list(FEATURES):
            raise ValueError(
                f"{where}: features must be {list(FEATURES)}, not {data.get('features')!r}"
            )
        try:
            coefficients = tuple(float(w) for w in data["coefficients"])
            intercept = float(data["intercept"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"{where}: coefficients and intercept must be numbers ({exc})"
            ) from None
        record: dict[str, float] = {}
        default, weight = 0.5, 0.0
        found = data.get("record")
        if found is not None:
            try:
                weight = float(found["weight"])
                default = float(found["default"])
                record = {str(name): float(v) for name, v in found["plugins"].items()}
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ValueError(
                    f"{where}: record needs a weight, a default and plugins, as numbers ({exc})"
                ) from None
            if not all(0 <= v <= 1 for v in (default, *record.values())):
                raise ValueError(f"{where}: a record is a share from 0 to 1")
        return cls(
            coefficients,
            intercept,
            fitted_on=str(data.get("fittedOn", "")),
            requests=int(data.get("requests", 0)),
            record=record,
            record_default=default,
            record_weight=weight,
        )


def fit(
    samples: Sequence[tuple[Sequence[float], bool]],
    *,
    l2: float = _L2,
    fitted_on: str = "",
) -> Calibrator:
    """Fit a `Calibrator` by logistic regression on (features, was the primary right).

    Newton's method with an L2 penalty ``l2`` on the coefficients (not the intercept),
    which keeps the fit finite when the samples are separable. Raises ValueError when
    there are no samples or they are all right (or all wrong).
    """
    if not samples:
        raise ValueError("no samples to fit a calibrator on")
    outcomes = [1.0 if right else 0.0 for _, right in samples]
    if min(outcomes) == max(outcomes):
        raise ValueError("a calibrator needs right and wrong decisions among the samples")
    rows = [(*map(float, values), 1.0) for values, _ in samples]
    size = len(rows[0])
    if any(len(row) != size for row in rows) or size != len(FEATURES) + 1:
        raise ValueError(f"every sample needs {len(FEATURES)} features ({', '.join(FEATURES)})")
    weights = _logistic(rows, outcomes, l2)
    return Calibrator(tuple(weights[:-1]), weights[-1], fitted_on=fitted_on, requests=len(rows))


def fit_with_record(
    samples: Sequence[tuple[str, Sequence[float], bool]],
    *,
    smoothing: float = _SMOOTHING,
    l2: float = _L2,
    fitted_on: str = "",
) -> Calibrator:
    """Fit a `Calibrator` that also weighs the winner's track record, on (primary plugin,
    features, was it right).

    Each plugin's record is the share of its wins that were right, with ``smoothing``
    pseudo-wins at the overall rate (a plugin that won twice is not judged on two);
    the record's log-odds times the margin is a third column of the same logistic
    regression as `fit`.
    Raises ValueError as `fit` does.
    """
    if smoothing < 0:
        raise ValueError(f"smoothing must be 0 or more, not {smoothing!r}")
    if not samples:
        raise ValueError("no samples to fit a calibrator on")
    base = fit([(values, right) for _, values, right in samples], l2=l2)
    rate = sum(1 for *_, right in samples if right) / len(samples)
    wins: dict[str, list[int]] = {}
    for plugin, _, right in samples:
        tally = wins.setdefault(plugin, [0, 0])
        tally[0] += 1
        tally[1] += 1 if right else 0
    record = {
        plugin: (right + smoothing * rate) / (won + smoothing)
        for plugin, (won, right) in wins.items()
    }
    rows = [
        (*map(float, values), float(values[0]) * _logit(record[plugin]), 1.0)
        for plugin, values, _ in samples
    ]
    outcomes = [1.0 if right else 0.0 for *_, right in samples]
    weights = _logistic(rows, outcomes, l2)
    return Calibrator(
        tuple(weights[: len(FEATURES)]),
        weights[-1],
        fitted_on=fitted_on or base.fitted_on,
        requests=len(rows),
        record=record,
        record_default=rate,
        record_weight=weights[len(FEATURES)],
    )


def _logistic(rows: Sequence[Sequence[float]], outcomes: Sequence[float], l2: float) -> list[float]:
    """Logistic regression weights (the last column is the unpenalised intercept)."""
    size = len(rows[0])
    weights = [0.0] * size
    for _ in range(_ITERATIONS):
        gradient = [l2 * w for w in weights[:-1]] + [0.0]
        hessian = [[0.0] * size for _ in range(size)]
        for i in range(size - 1):
            hessian[i][i] = l2
        for row, y in zip(rows, outcomes, strict=True):
            p = _sigmoid(sum(w * x for w, x in zip(weights, row, strict=True)))
            for i in range(size):
                gradient[i] += (p - y) * row[i]
                for j in range(size):
                    hessian[i][j] += p * (1 - p) * row[i] * row[j]
        step = _solve(hessian, gradient)
        weights = [w - s for w, s in zip(weights, step, strict=True)]
        if max(abs(s) for s in step) < 1e-10:
            break
    return weights


def _solve(matrix: list[list[float]], vector: list[float]) -> list[float]:
    """``matrix x = vector`` by Gauss-Jordan elimination with partial pivoting."""
    size = len(vector)
    rows = [[*row, value] for row, value in zip(matrix, vector, strict=True)]
    for column in range(size):
        pivot = max(range(column, size), key=lambda r: abs(rows[r][column]))
        rows[column], rows[pivot] = rows[pivot], rows[column]
        if abs(rows[column][column]) < 1e-12:
            raise ValueError("the samples do not determine a calibrator (singular system)")
        for r in range(size):
            if r != column:
                factor = rows[r][column] / rows[column][column]
                if factor:
                    for k in range(column, size + 1):
                        rows[r][k] -= factor * rows[column][k]
    return [rows[i][size] / rows[i][i] for i in range(size)]


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    """Decisions whose confidence fell in ``[low, high)``: how sure, how often right."""

    low: float
    high: float
    count: int
    confidence: float
    """Mean confidence of the decisions in the bin."""
    accuracy: float
    """Share of them whose primary plugin was right."""


def reliability(
    probabilities: Sequence[float], outcomes: Sequence[bool], bins: int = 10
) -> list[ReliabilityBin]:
    """The reliability table: ``bins`` equal-width bins of confidence (empty ones left
    out), each with its mean confidence and accuracy."""
    if len(probabilities) != len(outcomes):
        raise ValueError("as many probabilities as outcomes are needed")
    grouped: dict[int, list[tuple[float, bool]]] = {}
    for p, right in zip(probabilities, outcomes, strict=True):
        grouped.setdefault(min(int(p * bins), bins - 1), []).append((p, right))
    return [
        ReliabilityBin(
            low=b / bins,
            high=(b + 1) / bins,
            count=len(items),
            confidence=sum(p for p, _ in items) / len(items),
            accuracy=sum(1 for _, right in items if right) / len(items),
        )
        for b, items in sorted(grouped.items())
    ]


def expected_calibration_error(
    probabilities: Sequence[float], outcomes: Sequence[bool], bins: int = 10
) -> float:
    """ECE: the gap between confidence and accuracy per bin, weighed by the bin's share."""
    total = len(probabilities)
    if not total:
        return 0.0
    return sum(
        b.count / total * abs(b.confidence - b.accuracy)
        for b in reliability(probabilities, outcomes, bins)
    )


@dataclass(frozen=True, slots=True)
class CoveragePoint:
    """One point of a risk-coverage curve."""

    coverage: float
    kept: int
    accuracy: float
    threshold: float


def risk_coverage(
    probabilities: Sequence[float],
    outcomes: Sequence[bool],
    coverages: Sequence[float] = (0.7, 0.8, 0.9, 1.0),
) -> list[CoveragePoint]:
    """Accuracy of the decisions kept when only the most confident share ``coverage``
    of them is kept (the rest abstain); ``threshold`` is the least confidence kept."""
    if len(probabilities) != len(outcomes):
        raise ValueError("as many probabilities as outcomes are needed")
    order = sorted(zip(probabilities, outcomes, strict=True), key=lambda item: -item[0])
    points: list[CoveragePoint] = []
    for coverage in coverages:
        kept = max(1, round(coverage * len(order))) if order else 0
        head = order[:kept]
        right = sum(1 for _, ok in head if ok)
        points.append(
            CoveragePoint(
                coverage=coverage,
                kept=kept,
                accuracy=right / kept if kept else 0.0,
                threshold=head[-1][0] if head else 0.0,
            )
        )
    return points


@cache
def _shipped() -> dict[str, Calibrator]:
    where = f"jira_orchestrator/routing/{_DATA}"
    text = resources.files("jira_orchestrator.routing").joinpath(_DATA).read_text("utf-8")
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{where}: not a routing calibration (format {FORMAT!r})")
    found = data.get("calibrators")
    if not isinstance(found, dict):
        raise ValueError(f"{where}: needs 'calibrators'")
    return {
        name: Calibrator.from_dict(entry, where=f"{where}: {name}") for name, entry in found.items()
    }


def load_calibrator(kind: str = "words") -> Calibrator:
    """The calibrator shipped with the package: ``words`` (words alone) or ``semantic``
    (with the semantic blend; the words' one when none was fitted for it)."""
    shipped = _shipped()
    if kind in shipped:
        return shipped[kind]
    if kind == "semantic":
        return shipped["words"]
    raise ValueError(f"no calibrator {kind!r}; shipped: {', '.join(sorted(shipped))}")
