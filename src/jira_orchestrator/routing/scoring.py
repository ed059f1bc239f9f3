"""Scoring: how well each plugin fits a classified request.

    score = (relevance x specificity + capability + file context + learned)
            x priority x availability

- **relevance**: BM25F of the request's terms against the plugin's meta fields, plus its
  best components (1, 1/2 and 1/4 of the three best component scores, each times the
  share of the request's words it holds to the power ``coordination``, 0.25), times
  ``relevance_scale`` (so a clear match is worth a few hundred points);
- **capability**: the original design's explicit matches, ``domain`` (30) for each
  ``capabilities.domains`` entry among the request's principal domains (or words),
  ``context`` (20) for each ``capabilities.contexts`` entry among its words or
  technologies, ``pattern`` (15) for each ``capabilities.patterns`` entry among its words
  or phrases; only terms of weight
  ``capability_evidence`` (0.5) or more count, so the words of a service name or path the
  request mentions (0.35) and the everyday vocabulary's additions (0.45) earn no bonus;
- **file context**: ``file_context`` (20) for each file matched by the plugin's
  ``contextPatterns`` (or its skills' and agents' globs) and for each technology of the
  files that the plugin declares (keywords, name, description), at most
  ``file_context_cap`` (60);
- **learned**: corrections and outcomes of similar requests (see `learning`), as a share
  of the best relevance of the decision;
- **priority**: ``routing.priority / 100``;
- **specificity**: ``((h + f) / (h_p + f)) ** specificity`` (0.5), where ``h_p`` is the share
  of the best score plugin ``p`` gets, on average, on requests about other plugins'
  subjects (the descriptions of their agents, commands and skills, measured once when the
  index is built), ``h`` the mean of that over all plugins and ``f`` 0.05. A plugin whose
  long documents touch every subject (a "hub") scores a little less on each, a
  specialist a little more, so a hub wins where it is the best match, not by coverage
  (with at least ``specificity_min_plugins``, 8, plugins);
- **availability**: 1 while the plugin's breaker is closed, ``half_open`` (0.5) while
  half-open, 0 while open; or whatever the injected callable returns (0..1).

Plugins whose ``acceptsRoutingFrom`` excludes the requester are left out. Ties are broken
by plugin name. A decision's fallbacks are the next plugins scoring at least
``fallback_share`` (0.2) of the primary's score.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from operator import itemgetter

from jira_orchestrator.plugins import glob_matches
from jira_orchestrator.plugins.text import term_of
from jira_orchestrator.routing.classifier import Classification
from jira_orchestrator.routing.index import ProfileIndex
from jira_orchestrator.routing.profiles import PluginProfile
from jira_orchestrator.routing.request import RoutingRequest

__all__ = [
    "BREAKER_AVAILABILITY",
    "Availability",
    "Parts",
    "Scorer",
    "ScoringWeights",
    "availability_of",
    "evidence",
]

Availability = Callable[[str], float] | Mapping[str, str | float]
"""``availability(plugin_id) -> 0..1``, or a mapping of plugin id to a breaker state
(``closed``, ``half_open``, ``open``, ``unhealthy``) or a number."""

BREAKER_AVAILABILITY = {
    "closed": 1.0,
    "half_open": 0.5,
    "half-open": 0.5,
    "unhealthy": 0.25,
    "open": 0.0,
}


_VALUE = itemgetter(1)  # sorted() is stable: equal scores keep index order
_NEGLIGIBLE = 0.01


@dataclass(frozen=True, slots=True)
class ScoringWeights:
    """The weights of the score's parts (see the module docstring)."""

    relevance_scale: float = 10.0
    meta: float = 1.0
    component_decay: tuple[float, ...] = (1.0, 0.5, 0.25)
    coordination: float = 0.25
    domain: float = 30.0
    context: float = 20.0
    pattern: float = 15.0
    file_context: float = 20.0
    file_context_cap: float = 60.0
    learned: float = 1.2
    capability_evidence: float = 0.5
    fallback_share: float = 0.2
    half_open: float = 0.5
    unhealthy: float = 0.25
    specificity: float = 0.5
    """Exponent of the specificity factor (0: off); see `specificity`."""
    specificity_floor: float = 0.05
    specificity_min_plugins: int = 8
    """Below this many plugins specificity is off: too few reference requests to tell a
    hub from a specialist (with two plugins, each is measured on one description)."""
    specificity_queries: int = 400
    """At most this many of the plugins' own component descriptions are the reference
    requests that measure how often each plugin scores on others' subjects."""


def availability_of(source: Availability | None, plugin: str, weights: ScoringWeights) -> float:
    """The availability (0..1) of ``plugin`` from a callable or a mapping of states."""
    if source is None:
        return 1.0
    if callable(source):
        value: object = source(plugin)
    else:
        value = source.get(plugin, 1.0)
    if isinstance(value, str):
        state = value.lower()
        if state in ("half_open", "half-open"):
            return weights.half_open
        if state == "unhealthy":
            return weights.unhealthy
        if state not in BREAKER_AVAILABILITY:
            raise ValueError(f"availability of {plugin!r}: unknown breaker state {value!r}")
        return BREAKER_AVAILABILITY[state]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"availability of {plugin!r}: expected 0..1, not {value!r}")
    return min(1.0, max(0.0, float(value)))


def blend(total: float, best: float, similarity: float, weight: float, factor: float) -> float:
    """A plugin's score with embedding similarity blended in:
    ``(1 - weight) x total + weight x best x similarity x factor``, where ``best`` is the
    best lexical score (the similarity is put on its scale), and ``factor`` the plugin's
    priority times availability (which weigh on the similarity as on the words)."""
    return (1 - weight) * total + weight * best * max(0.0, similarity) * factor


@dataclass(frozen=True, slots=True)
class Parts:
    """The points of one plugin before priority and availability, with their evidence."""

    relevance: float
    capability: float
    file_context: float
    capability_evidence: tuple[str, ...]
    file_evidence: tuple[str, ...]


class Scorer:
    """Scores every plugin of an index for a classified request."""

    __slots__ = ("_declared", "index", "weights")

    def __init__(self, index: ProfileIndex, weights: ScoringWeights) -> None:
        self.index = index
        self.weights = weights
        # Words a plugin declares about itself: a file's technology counts only if here.
        self._declared: tuple[frozenset[str], ...] = tuple(
            frozenset(
                term
                for name in ("name", "keywords", "capabilities", "description")
                for term in profile.meta.get(name, {})
            )
            for profile in index.profiles
        )

    def relevance(
        self, classification: Classification, plugins: Container[int] | None = None
    ) -> tuple[dict[int, float], dict[int, list[tuple[float, int]]], dict[int, float]]:
        """Plugin position -> relevance points; plugin position -> its best components'
        (score, position); component position -> score. With ``plugins``, of those
        plugins only."""
        terms = classification.terms
        meta = self.index.meta_scores(terms, plugins)
        components = self.index.component_scores(terms, self.weights.coordination, plugins)
        owner = self.index.component_owner
        decay = self.weights.component_decay
        depth = len(decay)
        per_plugin: dict[int, list[tuple[float, int]]] = {}
        # One sort of the components that matter, best first: each plugin keeps its first
        # few. Below a hundredth of the best, a component cannot move a plugin that counts.
        cut = max(components.values(), default=0.0) * _NEGLIGIBLE
        strong = [item for item in components.items() if item[1] >= cut] if depth else []
        meta_weight = self.weights.meta
        relevance: dict[int, float] = {p: meta_weight * v for p, v in meta.items()}
        for position, value in sorted(strong, key=_VALUE, reverse=True):
            plugin = owner[position]
            entries = per_plugin.get(plugin)
            if entries is None:
                per_plugin[plugin] = [(value, position)]
                relevance[plugin] = relevance.get(plugin, 0.0) + value * decay[0]
            elif len(entries) < depth:
                relevance[plugin] += value * decay[len(entries)]
                entries.append((value, position))
        scale = self.weights.relevance_scale
        return {p: v * scale for p, v in relevance.items()}, per_plugin, components

    def parts(
        self,
        position: int,
        relevance: float,
        classification: Classification,
        request: RoutingRequest,
    ) -> Parts:
        """Capability and file-context points of one plugin, with their evidence."""
        profile = self.index.profiles[position]
        if not request.files and not profile.has_capabilities:
            return Parts(relevance, 0.0, 0.0, (), ())
        # (The router calls this only when the plugin has capabilities or files matter.)
        weights = self.weights
        capability = 0.0
        cap_evidence: list[str] = []
        if profile.has_capabilities:
            # Only what the request says outright earns a bonus: a word of its text,
            # labels or files' technologies, not a word of a name or path it mentions
            # (``billing-api``) nor one the everyday vocabulary added (weaker terms).
            strong = {
                t for t, w in classification.terms.items() if w >= weights.capability_evidence
            }
            request_words = {t for t in strong if " " not in t}
            request_domains = set(classification.principal_domains)
            for domain in sorted(profile.capability_domains):
                if domain in request_domains or domain in strong:
                    capability += weights.domain
                    cap_evidence.append(f"capability domain {domain!r} (+{weights.domain:g})")
            tech_words = {t for tech in classification.technologies for t in term_of(tech).split()}
            for context in sorted(profile.capability_contexts):
                if context in request_words or context in tech_words or context in strong:
                    capability += weights.context
                    cap_evidence.append(f"capability context {context!r} (+{weights.context:g})")
            for pattern in sorted(profile.capability_patterns):
                if pattern in strong:
                    capability += weights.pattern
                    cap_evidence.append(f"capability pattern {pattern!r} (+{weights.pattern:g})")
        file_points = 0.0
        file_evidence: list[str] = []
        if request.files:
            for path in request.files:
                glob = next((g for g in profile.context_patterns if glob_matches(g, path)), None)
                if glob is not None:
                    file_points += weights.file_context
                    file_evidence.append(f"file {path!r} matches {glob!r}")
            declared = self._declared[position]
            for tech in classification.technologies:
                key = term_of(tech)
                if key and key in declared:
                    file_points += weights.file_context
                    file_evidence.append(f"files point to {tech!r}, which the plugin declares")
            file_points = min(file_points, weights.file_context_cap)
        return Parts(relevance, capability, file_points, tuple(cap_evidence), tuple(file_evidence))


def evidence(
    profile: PluginProfile,
    index: ProfileIndex,
    classification: Classification,
    components: list[tuple[float, int]],
    limit: int = 6,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(evidence lines, best component names) for one plugin, for explanations."""
    lines: list[str] = []
    strong = [t for t, w in classification.terms.items() if w >= 0.45]
    wanted = set(strong)
    for field in ("name", "keywords", "capabilities", "description"):
        found = wanted & profile.meta.get(field, {}).keys()
        hits = [classification.shown(t) for t in strong if t in found]
        if hits:
            lines.append(f"{_quote(hits)} in the plugin's {field}")
    names: list[str] = []
    for value, position in components[:3]:
        component = index.components[position]
        names.append(f"{component.kind} {component.name} ({value:.2f})")
    for _, position in components[:2]:
        component = index.components[position]
        fields = []
        for field in ("name", "keywords", "description", "body"):
            matched = wanted & component.fields.get(field, {}).keys()
            fields.append((field, [classification.shown(t) for t in strong if t in matched]))
        said = "; ".join(f"{_quote(hits)} in its {field}" for field, hits in fields if hits)
        if said:
            lines.append(f"{component.kind} {component.name}: {said}")
    return tuple(lines[:limit]), tuple(names)


def _quote(terms: list[str], most: int = 6) -> str:
    shown = ", ".join(repr(t) for t in terms[:most])
    return shown + (f" and {len(terms) - most} more" if len(terms) > most else "")
