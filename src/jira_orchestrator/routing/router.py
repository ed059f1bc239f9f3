"""The routing engine: an index built once over the plugins, then `Router.route`.

    router = Router.from_directory("plugins", store="routing.db")
    decision = router.route("Pods crash-loop after the Helm upgrade", files=["Chart.yaml"])
    print(decision.explain())
    router.record_correction(decision.request_id, "aws-eks-helm-keycloak")

`route` is synchronous and takes about a millisecond. With a bus (``Router(...,
bus=get_message_bus("jira-orchestrator"))``) every decision is published on
``routing/decision``: `aroute` awaits the publication, `route` schedules it when an
event loop is running. With a store, every decision is persisted, and corrections and
outcomes are kept across runs (see `learning`).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from jira_orchestrator._core import observe, tracing
from jira_orchestrator._core.clock import WallClock, wall
from jira_orchestrator._core.protocol import ORCHESTRATOR_ID, ROUTING_DECISION
from jira_orchestrator._core.tasks import BackgroundTasks
from jira_orchestrator.plugins import AgentRegistry, PluginInfo, discover_plugins
from jira_orchestrator.plugins.text import term_of
from jira_orchestrator.routing.cache import IndexCache
from jira_orchestrator.routing.calibration import Calibrator, load_calibrator
from jira_orchestrator.routing.classifier import Classification, classify
from jira_orchestrator.routing.collaboration import plan_collaboration, strategy_of, with_agents
from jira_orchestrator.routing.decision import (
    AgentRecommendation,
    CollaborationPlan,
    ExecutionStrategy,
    PluginScore,
    RoutingDecision,
)
from jira_orchestrator.routing.errors import InvalidRequest, NoPlugins, UnknownRequest
from jira_orchestrator.routing.index import ProfileIndex
from jira_orchestrator.routing.learning import Learner
from jira_orchestrator.routing.profiles import FieldWeights, build_profile
from jira_orchestrator.routing.request import RoutingRequest
from jira_orchestrator.routing.scoring import (
    Availability,
    Parts,
    Scorer,
    ScoringWeights,
    availability_of,
    blend,
    evidence,
)
from jira_orchestrator.routing.store import DecisionStore

if TYPE_CHECKING:
    from jira_orchestrator.messagebus import MessageBus

__all__ = ["DECISION_TOPIC", "Router", "RouterStats"]

DECISION_TOPIC = ROUTING_DECISION
"""Where decisions are published (a reserved topic)."""

_log = logging.getLogger(__name__)
_RECENT = 10_000
_FALLBACKS = 3
_NEGLIGIBLE = 0.01
_SHORTLIST = 64
_AGENTS = 5
_EXPLAINED = 5


class Semantic(Protocol):
    """What the router needs of an embedding model (see `routing.semantic`)."""

    @property
    def weight(self) -> float:
        """The share (0..1) of the blended score that similarity decides."""
        ...

    def similarities(self, text: str, plugins: Sequence[str]) -> dict[str, tuple[float, str]]:
        """Plugin -> (similarity to ``text``, what of the plugin was closest)."""
        ...


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A plugin scored for a decision, before it becomes a `PluginScore`."""

    total: float
    """The score: (words x specificity + capability + files + learned) x priority x
    availability, or the blend of it with the semantic similarity."""
    plugin: str
    position: int
    """The plugin's position in the index."""
    parts: Parts
    learned: float
    priority: float
    availability: float

    def order(self) -> tuple[float, str]:
        """Best first; ties by plugin name."""
        return (-self.total, self.plugin)


@dataclass(slots=True)
class RouterStats:
    """Counters of a router's life."""

    routed: int = 0
    invalid: int = 0
    published: int = 0
    publish_failures: int = 0
    corrections: int = 0
    outcomes: int = 0
    triaged: int = 0
    """Decisions below ``min_confidence``: left to a person (strategy ``triage``)."""


class Router:
    """Routes requests to plugins. Build once, route many times.

    ``plugins`` is a `PluginCatalog` or any iterable of `PluginInfo`. ``requester`` is
    who asks when a request does not say (checked against ``acceptsRoutingFrom``).
    ``availability`` is a callable ``plugin_id -> 0..1`` or a mapping of breaker states;
    ``unavailable_reason`` (``plugin_id -> str``) says why one is at 0 in the decision.
    ``cache`` is an `IndexCache` or a directory: the built index is kept there and read
    back by the next router over the same plugins and settings (see `routing.cache`).
    ``store`` is a `DecisionStore` or a SQLite path. A decision lists the best
    ``score_limit`` plugins' scores. Raises `NoPlugins` when there is no plugin.

    A decision's ``confidence`` is the probability that its primary plugin is right, from
    ``calibrator`` (default: the one shipped with the package, see `routing.calibration`).
    Below ``min_confidence`` (0..1, default 0: never) the router abstains: the decision's
    strategy is ``triage``, it has no primary plugin, and its ``scores`` list the
    candidates for a person to pick from.

    The index is immutable once built. `route` keeps a little state (counters, recent
    requests for corrections): call it from one thread, or one router per thread.
    """

    def __init__(
        self,
        plugins: Iterable[PluginInfo],
        *,
        weights: ScoringWeights | None = None,
        fields: FieldWeights | None = None,
        availability: Availability | None = None,
        store: DecisionStore | str | os.PathLike[str] | None = None,
        bus: MessageBus | None = None,
        requester: str | None = ORCHESTRATOR_ID,
        registry: AgentRegistry | None = None,
        score_limit: int = 10,
        semantic: Semantic | None = None,
        cache: IndexCache | str | os.PathLike[str] | None = None,
        min_confidence: float = 0.0,
        calibrator: Calibrator | None = None,
        unavailable_reason: Callable[[str], str] | None = None,
        clock: WallClock = wall,
    ) -> None:
        loaded = list(plugins)
        if not loaded:
            raise NoPlugins("no plugins to route to")
        self.min_confidence = _check_confidence(min_confidence)
        """Below this confidence a decision is left to a person (``triage``)."""
        self.calibrator = calibrator
        """Turns a decision's scores into its confidence; None: the package's (for words
        alone, or for the semantic blend when `semantic` is set)."""
        self.weights = weights or ScoringWeights()
        self.fields = fields or FieldWeights()
        self.availability = availability
        self.unavailable_reason = unavailable_reason
        """Why a plugin's availability is 0 (default: its circuit breaker is open)."""
        self.requester = requester
        self.score_limit = max(4, score_limit)
        self.bus = bus
        self.clock = clock
        """Stamps decisions (``created_at``) and, with a store opened from a path, what it
        keeps."""
        self._semantic = semantic
        self.stats = RouterStats()
        self._plugins = {plugin.name: plugin for plugin in loaded}
        started = time.perf_counter()
        index_cache = cache if isinstance(cache, IndexCache) or cache is None else IndexCache(cache)
        key = index_cache.key(loaded, self.fields, self.weights) if index_cache else ""
        cached = index_cache.load(key) if index_cache else None
        self.index_from_cache = cached is not None
        """Whether the index (and specificity) came from the cache, not built here."""
        if cached is not None:
            self.index = cached[0]
        else:
            self.index = ProfileIndex((build_profile(p, self.fields) for p in loaded), self.fields)
        self._scorer = Scorer(self.index, self.weights)
        self._positions = {profile.name: i for i, profile in enumerate(self.index.profiles)}
        self._with_capabilities = tuple(
            i for i, p in enumerate(self.index.profiles) if p.has_capabilities
        )
        self._capability_set = frozenset(self._with_capabilities)
        self._with_globs = tuple(i for i, p in enumerate(self.index.profiles) if p.context_patterns)
        self._declaring: dict[str, list[int]] = {}
        for i, profile in enumerate(self.index.profiles):
            for term in {t for bag in profile.meta.values() for t in bag}:
                self._declaring.setdefault(term, []).append(i)
        self._specificity: tuple[float, ...] = (1.0,) * len(self.index.profiles)
        if cached is not None:
            self._specificity = cached[1]
        elif (
            self.weights.specificity > 0
            and len(self.index.profiles) >= self.weights.specificity_min_plugins
        ):
            self._specificity = self._measure_specificity()
        if index_cache is not None and cached is None:
            index_cache.save(key, self.index, self._specificity)
        self.registry = registry if registry is not None else AgentRegistry(loaded)
        self.build_seconds = time.perf_counter() - started
        self._owns_store = store is not None and not isinstance(store, DecisionStore)
        self.store = (
            store
            if isinstance(store, DecisionStore) or store is None
            else DecisionStore(store, clock=clock)
        )
        self.learner = Learner()
        # Recent requests by id, for corrections and outcomes without a store.
        self._recent: OrderedDict[str, RoutingRequest] = OrderedDict()
        self._tasks = BackgroundTasks(_log, "publishing a routing decision")
        if self.store is not None:
            self._load_examples(self.store)

    @classmethod
    def from_directory(
        cls,
        root: str | os.PathLike[str],
        *,
        weights: ScoringWeights | None = None,
        fields: FieldWeights | None = None,
        availability: Availability | None = None,
        store: DecisionStore | str | os.PathLike[str] | None = None,
        bus: MessageBus | None = None,
        requester: str | None = ORCHESTRATOR_ID,
        score_limit: int = 10,
        cache: IndexCache | str | os.PathLike[str] | None = None,
        min_confidence: float = 0.0,
        calibrator: Calibrator | None = None,
        clock: WallClock = wall,
    ) -> Router:
        """Discover the plugins under ``root`` and build a router over them (options as
        for the constructor).

        Raises `NoPlugins` naming the directory when it does not exist or holds no
        loadable plugin (with the problems found).
        """
        try:
            catalog = discover_plugins(root)
        except NotADirectoryError as exc:
            raise NoPlugins(str(exc)) from None
        if not catalog.plugins:
            detail = "; ".join(catalog.problems[:3])
            raise NoPlugins(
                f"plugins directory {str(root)!r} holds no loadable plugin"
                + (f" ({detail})" if detail else "")
            )
        return cls(
            catalog.plugins,
            weights=weights,
            fields=fields,
            availability=availability,
            store=store,
            bus=bus,
            requester=requester,
            score_limit=score_limit,
            cache=cache,
            min_confidence=min_confidence,
            calibrator=calibrator,
            clock=clock,
        )

    @property
    def semantic(self) -> Semantic | None:
        """Optional embedding similarity blended into the best lexical scores (see
        `jira_orchestrator.routing.semantic`); settable after the router is built. When it
        can embed (``embed``, as `SemanticReranker` does), corrections and outcomes are
        compared with requests by meaning too (see `learning`)."""
        return self._semantic

    @semantic.setter
    def semantic(self, value: Semantic | None) -> None:
        self._semantic = value
        encode = getattr(value, "encode", None)
        if encode is not None and hasattr(value, "embed") and len(self.learner):
            self.learner.embed_missing(encode)

    @property
    def plugins(self) -> tuple[str, ...]:
        """The plugin ids routed to, sorted."""
        return tuple(profile.name for profile in self.index.profiles)

    def classify(self, request: RoutingRequest) -> Classification:
        """The classifier's view of a request (terms, technologies, domains)."""
        return classify(request, self.index.known)

    def route(
        self,
        request: RoutingRequest | str,
        *,
        files: Sequence[str] = (),
        requester: str | None = None,
    ) -> RoutingDecision:
        """Decide which plugin handles ``request`` (text or a `RoutingRequest`).

        Raises `InvalidRequest` for an empty request. Publishes the decision when the
        router has a bus and an event loop is running; persists it when it has a store.
        """
        decision = self._route(request, files, requester)
        if self.bus is not None:
            self._publish_later(decision)
        return decision

    async def aroute(
        self,
        request: RoutingRequest | str,
        *,
        files: Sequence[str] = (),
        requester: str | None = None,
    ) -> RoutingDecision:
        """`route`, then publish the decision on ``routing/decision`` and wait for it."""
        decision = self._route(request, files, requester)
        if self.bus is not None:
            await self._publish(self.bus, decision)
        return decision

    def _route(
        self, request: RoutingRequest | str, files: Sequence[str], requester: str | None
    ) -> RoutingDecision:
        started = time.perf_counter()
        try:
            if isinstance(request, RoutingRequest):
                prepared = request.with_files(files) if files else request
            else:
                prepared = RoutingRequest.from_text(request, files=files)
        except InvalidRequest:
            self.stats.invalid += 1
            raise
        with tracing.span("route", attributes={"routing.request_id": prepared.request_id}) as span:
            decision = self._decide(prepared, requester, started)
            if span is not None:
                span.set_attribute("routing.plugin", decision.primary_plugin or "")
                span.set_attribute("routing.confidence", decision.confidence)
                span.set_attribute("routing.strategy", decision.execution_strategy)
        self.stats.routed += 1
        _record(decision, time.perf_counter() - started)
        self._remember(prepared, decision)
        return decision

    def route_many(self, requests: Iterable[RoutingRequest]) -> Iterator[RoutingDecision]:
        """Route each request in turn (the index is shared)."""
        for request in requests:
            yield self.route(request)

    def record_outcome(self, request_id: str, plugin: str, success: bool) -> None:
        """Record whether ``plugin`` handled request ``request_id`` well.

        Later similar requests lean towards (success) or away from (failure) it. Raises
        `UnknownRequest` for an unknown id and `InvalidRequest` for an unknown plugin.
        """
        _request, terms = self._request_of(request_id)
        self._check_plugin(plugin)
        self.learner.add(
            request_id,
            plugin,
            "success" if success else "failure",
            terms,
            self._embedding(_request),
            semantic_text(_request),
        )
        if self.store is not None:
            self.store.record_outcome(request_id, plugin, success)
        self.stats.outcomes += 1

    def record_correction(self, request_id: str, plugin: str) -> None:
        """Record that request ``request_id`` should have gone to ``plugin``.

        The request becomes a labelled example: similar requests later lean towards
        ``plugin``. Raises `UnknownRequest` or `InvalidRequest` as `record_outcome`.
        """
        request, terms = self._request_of(request_id)
        self._check_plugin(plugin)
        self.learner.add(
            request_id,
            plugin,
            "correction",
            terms,
            self._embedding(request),
            semantic_text(request),
        )
        if self.store is not None:
            self.store.record_correction(request, plugin)
        self.stats.corrections += 1

    async def wait_published(self) -> None:
        """Wait until decisions scheduled for publication by `route` are sent."""
        await self._tasks.wait()

    def close(self) -> None:
        """Close the store if the router opened it (from a path); a `DecisionStore`
        passed in stays open for its owner."""
        if self.store is not None and self._owns_store:
            self.store.close()

    def _decide(
        self, request: RoutingRequest, requester: str | None, started: float
    ) -> RoutingDecision:
        asker = request.requester or requester or self.requester
        classification = classify(request, self.index.known)
        relevance, per_plugin, component_scores = self._scorer.relevance(classification)
        best_relevance = max(relevance.values(), default=0.0)
        learned: dict[str, tuple[float, str]] = {}
        if len(self.learner):
            learned = self.learner.adjustments(classification.terms, self._embedding(request))
        weights = self.weights
        # Only plugins with something going for them are scored: with 1,000 plugins,
        # looking at each one per decision would cost more than the index lookups.
        # Plugins far below the best relevance cannot reach the listed scores on words
        # alone; they stay candidates only for a capability, file or learned bonus.
        floor = best_relevance * _NEGLIGIBLE
        candidates = {position for position, value in relevance.items() if value >= floor}
        if len(candidates) > _SHORTLIST:
            # With many plugins, the best few dozen by words are the only ones a priority
            # or bonus can lift into the listed scores.
            ranked_words = sorted(candidates, key=lambda p: (-relevance[p], p))
            candidates = set(ranked_words[:_SHORTLIST])
        candidates.update(self._with_capabilities)
        if learned:
            candidates.update(self._positions[name] for name in learned)
        if request.files:
            candidates.update(self._with_globs)
            for tech in classification.technologies:
                candidates.update(self._declaring.get(term_of(tech), ()))
        profiles = self.index.profiles
        scores: list[_Candidate] = []
        excluded: dict[str, str] = {}
        for position in sorted(candidates):
            profile = profiles[position]
            name = profile.name
            allowed = profile.accepts_routing_from
            if "*" not in allowed and (asker is None or asker not in allowed):
                excluded[name] = (
                    f"acceptsRoutingFrom {list(allowed)} does not include {asker or 'anonymous'!r}"
                )
                continue
            parts = self._parts(position, relevance.get(position, 0.0), classification, request)
            learned_points = 0.0
            if name in learned:
                learned_points = learned[name][0] * weights.learned * max(best_relevance, 1.0)
            # Specificity weighs on words only: bonuses and corrections are explicit evidence.
            words_points = parts.relevance * self._specificity[position]
            base = words_points + parts.capability + parts.file_context + learned_points
            if base <= 0:
                continue
            available = availability_of(self.availability, name, weights)
            if available <= 0:
                why = self.unavailable_reason
                excluded[name] = (
                    f"unavailable ({'circuit breaker open' if why is None else why(name)})"
                )
                continue
            priority = profile.priority / 100
            total = base * priority * available
            if total <= 0:
                continue
            scores.append(
                _Candidate(total, name, position, parts, learned_points, priority, available)
            )
        scores.sort(key=_Candidate.order)
        scores = scores[: self.score_limit]
        similarity: dict[str, tuple[float, str]] = {}
        if self.semantic is not None and scores:
            scores, similarity = self._blend(request, scores, self.semantic)
        ranked: list[PluginScore] = []
        for rank, candidate in enumerate(scores):
            name, position, parts = candidate.plugin, candidate.position, candidate.parts
            learned_points = candidate.learned
            lines: tuple[str, ...] = (*parts.capability_evidence, *parts.file_evidence)
            if name in similarity:
                lines += (similarity[name][1],)
            if name in learned:
                amount, example = learned[name]
                kind = "similar to corrected" if amount > 0 else "similar to failed"
                lines += (f"{kind} request {example!r} ({learned_points:+.1f})",)
            components: tuple[str, ...] = ()
            if rank < _EXPLAINED:
                found, components = evidence(
                    self.index.profiles[position],
                    self.index,
                    classification,
                    per_plugin.get(position, []),
                )
                lines += found
            ranked.append(
                PluginScore(
                    plugin=name,
                    score=candidate.total,
                    relevance=parts.relevance,
                    capability=parts.capability,
                    file_context=parts.file_context,
                    learned=learned_points,
                    priority=candidate.priority,
                    availability=candidate.availability,
                    evidence=lines,
                    components=components,
                    semantic=similarity[name][0] if name in similarity else None,
                    specificity=self._specificity[position],
                )
            )
        calibrator = self.calibrator or load_calibrator(
            "words" if self.semantic is None else "semantic"
        )
        confidence = calibrator.confidence(ranked)
        # Not sure enough: no primary, nothing to dispatch; the candidates go to a person.
        triage = bool(ranked) and confidence < self.min_confidence
        primary = ranked[0].plugin if ranked and not triage else None
        fallbacks: tuple[str, ...] = ()
        plan: CollaborationPlan | None = None
        agents: list[AgentRecommendation] = []
        strategy: ExecutionStrategy = "triage"
        if triage:
            self.stats.triaged += 1
        else:
            # A fallback must be relevant in its own right: the orchestrator sends it the
            # work when the primary fails. A plugin below ``fallback_share`` of the primary's
            # score shares a word or two with the request, not its subject.
            bar = ranked[0].score * weights.fallback_share if ranked else 0.0
            fallbacks = tuple(
                score.plugin for score in ranked[1 : 1 + _FALLBACKS] if score.score >= bar
            )
            plan = plan_collaboration(classification, ranked, self._scorer, self._positions)
            strategy = "none" if primary is None else "single"
            if plan is not None:
                strategy = strategy_of(plan)
            chosen = list(plan.plugins) if plan else ([primary] if primary else [])
            agents = self._agents(request, chosen, component_scores)
            if plan is not None:
                plan = with_agents(plan, agents)
        return RoutingDecision(
            request_id=request.request_id,
            primary_plugin=primary,
            fallback_plugins=fallbacks,
            scores=tuple(ranked),
            execution_strategy=strategy,
            collaboration_plan=plan,
            recommended_agents=tuple(agents),
            confidence=confidence,
            min_confidence=self.min_confidence,
            domains=classification.domains,
            technologies=classification.technologies,
            complexity=classification.complexity,
            requester=asker,
            excluded=excluded,
            text=request.text,
            files=request.files,
            created_at=datetime.datetime.fromtimestamp(self.clock(), datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            elapsed_ms=(time.perf_counter() - started) * 1000,
            names=classification.names,
        )

    def _embedding(self, request: RoutingRequest) -> Sequence[float] | None:
        """The request's sentence embedding, when the semantic model can embed."""
        embed = getattr(self._semantic, "embed", None)
        return None if embed is None else embed(semantic_text(request))

    def _measure_specificity(self) -> tuple[float, ...]:
        """Each plugin's specificity factor (see `scoring`), from reference requests: the
        descriptions of the plugins' own components, each scored on words alone."""
        weights = self.weights
        profiles = self.index.profiles
        references = [
            (position, component.description)
            for position, profile in enumerate(profiles)
            for component in profile.components
            if len(component.description.split()) >= 4
        ]
        if len(references) > weights.specificity_queries:  # an even, repeatable sample
            step = len(references) / weights.specificity_queries
            references = [references[int(i * step)] for i in range(weights.specificity_queries)]
        shares = [0.0] * len(profiles)
        owned = [0] * len(profiles)  # a plugin is not measured on its own descriptions
        for owner, text in references:
            owned[owner] += 1
            totals = self._word_totals(RoutingRequest.from_text(text))
            best = max(totals.values(), default=0.0)
            if best > 0:
                for position, value in totals.items():
                    if position != owner:
                        shares[position] += value / best
        others = [len(references) - n for n in owned]
        hubs = [s / n if n else 0.0 for s, n in zip(shares, others, strict=True)]
        mean = sum(hubs) / len(hubs)
        floor = weights.specificity_floor
        return tuple(((mean + floor) / (hub + floor)) ** weights.specificity for hub in hubs)

    def _word_totals(self, request: RoutingRequest) -> dict[int, float]:
        """Plugin position -> its score on words, capabilities and priority alone."""
        classification = classify(request, self.index.known)
        relevance, _, _ = self._scorer.relevance(classification)
        totals: dict[int, float] = {}
        for position in set(relevance) | set(self._with_capabilities):
            parts = self._parts(position, relevance.get(position, 0.0), classification, request)
            value = parts.relevance + parts.capability + parts.file_context
            if value > 0:
                totals[position] = value * self.index.profiles[position].priority / 100
        return totals

    def _parts(
        self,
        position: int,
        relevance: float,
        classification: Classification,
        request: RoutingRequest,
    ) -> Parts:
        """A plugin's points before specificity, learning, priority and availability."""
        if request.files or position in self._capability_set:
            return self._scorer.parts(position, relevance, classification, request)
        return Parts(relevance, 0.0, 0.0, (), ())

    @staticmethod
    def _blend(
        request: RoutingRequest, scores: list[_Candidate], semantic: Semantic
    ) -> tuple[list[_Candidate], dict[str, tuple[float, str]]]:
        """Blend embedding similarity into the best lexical scores (already sorted), by
        `scoring.blend` (as `SemanticReranker.rerank` does after the fact)."""
        weight = semantic.weight

        def factor_of(item: _Candidate) -> float:
            return item.priority * item.availability

        # The similarity is put on the scale of the best score before learned points.
        best = max(item.total - item.learned * factor_of(item) for item in scores)
        found = semantic.similarities(semantic_text(request), [item.plugin for item in scores])
        blended: list[_Candidate] = []
        notes: dict[str, tuple[float, str]] = {}
        for item in scores:
            value, nearest = found.get(item.plugin, (0.0, ""))
            value = max(0.0, value)
            # Corrections and outcomes are a person's word, not a guess from the words:
            # the blend mixes the similarity with the other points only, and the learned
            # points count whole, as on words alone.
            learned = item.learned * item.priority * item.availability
            mixed = blend(item.total - learned, best, value, weight, factor_of(item)) + learned
            blended.append(replace(item, total=mixed))
            closest = f", closest: {nearest}" if nearest else ""
            notes[item.plugin] = (
                value,
                f"semantic similarity {value:.2f}{closest} (weight {weight:g})",
            )
        blended.sort(key=_Candidate.order)
        return blended, notes

    def _agents(
        self, request: RoutingRequest, plugins: list[str], component_scores: Mapping[int, float]
    ) -> list[AgentRecommendation]:
        """The chosen plugins' agents, ranked by the same scores that chose the plugins;
        the agent registry's own search when none of their agents matched a word."""
        if not plugins:
            return []
        wanted = {self._positions[name] for name in plugins}
        owner = self.index.component_owner
        components = self.index.components
        ranked = sorted(
            (
                (-value, position)
                for position, value in component_scores.items()
                if owner[position] in wanted and components[position].kind == "agent"
            )
        )[:_AGENTS]
        found: list[AgentRecommendation] = []
        for negative, position in ranked:
            plugin = self.index.profiles[owner[position]].name
            spec = self.registry.get(f"{plugin}:{components[position].name}")
            if spec is not None:
                found.append(
                    AgentRecommendation(
                        plugin=plugin,
                        name=spec.name,
                        score=round(-negative * self.weights.relevance_scale, 4),
                        reasons=(spec.description[:120],) if spec.description else (),
                    )
                )
        if found:
            return found
        if request.files:
            # The registry's search also matches the files against agents' globs.
            try:
                matches = self.registry.find_agents(
                    query=request.all_text[:2000],
                    context=list(request.files),
                    plugins=plugins,
                    limit=_AGENTS,
                )
            except ValueError:
                matches = []
            if matches:
                return [
                    AgentRecommendation(
                        plugin=m.plugin, name=m.name, score=m.score, reasons=m.reasons[:4]
                    )
                    for m in matches
                ]
        # No agent of theirs matched a word: list them as the plugin files do.
        listed = [agent for name in plugins for agent in self._plugins[name].agents]
        return [
            AgentRecommendation(
                plugin=agent.plugin, name=agent.name, score=0.0, reasons=("no word matched",)
            )
            for agent in listed[:_AGENTS]
        ]

    def _remember(self, request: RoutingRequest, decision: RoutingDecision) -> None:
        self._recent[request.request_id] = request
        self._recent.move_to_end(request.request_id)
        while len(self._recent) > _RECENT:
            self._recent.popitem(last=False)
        if self.store is not None:
            self.store.save_decision(request, decision.to_dict())

    def _request_of(self, request_id: str) -> tuple[RoutingRequest, Mapping[str, float]]:
        """The request routed as ``request_id`` (labels and all) and its terms."""
        found = self._recent.get(request_id)
        if found is None and self.store is not None:
            stored = self.store.get_decision(request_id)
            if stored is not None:
                found = stored.request()
        if found is None:
            raise UnknownRequest(request_id)
        return found, classify(found, self.index.known).terms

    def _check_plugin(self, plugin: str) -> None:
        if plugin not in self._plugins:
            raise InvalidRequest("plugin", f"unknown plugin {plugin!r}")

    def _load_examples(self, store: DecisionStore) -> None:
        examples: list[tuple[Callable[[], RoutingRequest], str, str]] = [
            (correction.request, correction.plugin, "correction")
            for correction in store.corrections()
        ]
        examples += [
            (stored.request, outcome.plugin, "success" if outcome.success else "failure")
            for outcome, stored in store.outcome_requests()
        ]
        for request_of, plugin, kind in examples:
            if plugin not in self._plugins:
                continue  # a plugin no longer installed
            try:
                request = request_of()
            except InvalidRequest as exc:  # an empty row written by hand: not an example
                _log.warning("routing store %s: skipping a stored example: %s", store.path, exc)
                continue
            terms = classify(request, self.index.known).terms
            self.learner.add(
                request.request_id,
                plugin,
                kind,
                terms,
                self._embedding(request),
                semantic_text(request),
            )

    def _publish_later(self, decision: RoutingDecision) -> None:
        bus = self.bus
        if bus is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: use aroute() to publish
        self._tasks.spawn(self._publish(bus, decision), loop=loop)

    async def _publish(self, bus: MessageBus, decision: RoutingDecision) -> None:
        try:
            await bus.publish(topic=DECISION_TOPIC, payload=decision.to_dict())
        except Exception:
            self.stats.publish_failures += 1
            _log.exception("routing decision %s could not be published", decision.request_id)
            return
        self.stats.published += 1


def _check_confidence(value: float) -> float:
    if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"min_confidence must be a number from 0 to 1, not {value!r}")
    return float(value)


def _record(decision: RoutingDecision, seconds: float) -> None:
    """Count a decision in the process's metrics (nothing when they are off)."""
    metrics = observe.active()
    if metrics is None:
        return
    metrics.inc("routing_decisions", (decision.primary_plugin or "none",))
    metrics.observe("routing_confidence", (), decision.confidence)
    metrics.observe("routing_duration_seconds", (), seconds)
    if decision.primary_plugin is None:
        reason = "below-confidence" if decision.execution_strategy == "triage" else "no-match"
        metrics.inc("routing_abstentions", (reason,))


def semantic_text(request: RoutingRequest) -> str:
    """What an embedding model reads of a request, as a reader of the issue sees it: its
    text, then its labels and components (its files when it has nothing else)."""
    text = " ".join(filter(None, (request.text, *request.labels, *request.components)))
    return text or " ".join(request.files)
