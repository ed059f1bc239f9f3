"""Collaboration plans: which plugins handle which domains of a request, in which order.

A request that spans domains (say backend, frontend and infrastructure) gets a plan when,
scoring its words of each domain alone, different plugins among the close runners-up
handle them best. Phases are ordered by tier (`TIERS`): planning, then data and backend,
then frontend and infrastructure, then delivery, then quality and security, then
documentation; a phase depends on the phases of the nearest tier before it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from jira_orchestrator.routing.classifier import Classification, domains_of
from jira_orchestrator.routing.decision import (
    AgentRecommendation,
    CollaborationPlan,
    ExecutionStrategy,
    Phase,
    PluginScore,
)
from jira_orchestrator.routing.scoring import Scorer

__all__ = ["COLLABORATION_SHARE", "TIERS", "plan_collaboration", "strategy_of", "with_agents"]

COLLABORATION_SHARE = 0.35
"""A plugin takes part only with at least this share of the primary's score."""
TIERS: Mapping[str, int] = {
    "planning": 0,
    "data": 1,
    "backend": 1,
    "frontend": 2,
    "infrastructure": 2,
    "delivery": 3,
    "security": 4,
    "quality": 4,
    "documentation": 5,
}
"""Phases run in this order; phases of the same tier can run side by side."""
_OTHER_TIER = 3
_CANDIDATES = 4
_DOMAINS = 4
_AGENTS_PER_PHASE = 2


def _tier(domain: str) -> int:
    return TIERS.get(domain, _OTHER_TIER)


def plan_collaboration(
    classification: Classification,
    ranked: Sequence[PluginScore],
    scorer: Scorer,
    positions: Mapping[str, int],
) -> CollaborationPlan | None:
    """Phases when the request spans domains that different plugins handle best, or None.

    ``ranked`` are the decision's scores, best first; ``positions`` maps a plugin to its
    position in the index ``scorer`` reads.
    """
    if len(classification.domains) < 2 or len(ranked) < 2:
        return None
    floor = ranked[0].score * COLLABORATION_SHARE
    candidates = {s.plugin: s.score for s in ranked[:_CANDIDATES] if s.score >= floor}
    if len(candidates) < 2:
        return None
    compared = frozenset(positions[name] for name in candidates)
    owners: list[tuple[str, str]] = []
    term_domains = {term: domains_of([term]) for term in classification.terms if " " not in term}
    for domain in classification.domains[:_DOMAINS]:
        # The request's words of this domain alone decide who handles it.
        sub = {
            term: classification.terms[term]
            for term, found in term_domains.items()
            if domain in found
        }
        if not sub:
            continue
        relevance, _, _ = scorer.relevance(Classification(terms=sub, words=()), compared)
        best = max(
            candidates,
            key=lambda name: (relevance.get(positions[name], 0.0), candidates[name], name),
        )
        if relevance.get(positions[best], 0.0) > 0:
            owners.append((domain, best))
    if len({plugin for _, plugin in owners}) < 2:
        return None
    owners.sort(key=lambda item: (_tier(item[0]), classification.domains.index(item[0])))
    phases: list[Phase] = []
    for index, (domain, plugin) in enumerate(owners):
        tier = _tier(domain)
        earlier = [(p, _tier(p.domain)) for p in phases if _tier(p.domain) < tier]
        nearest = max((t for _, t in earlier), default=None)
        depends = tuple(p.id for p, t in earlier if t == nearest)
        phases.append(
            Phase(id=f"phase-{index + 1}", plugin=plugin, domain=domain, depends_on=depends)
        )
    return CollaborationPlan(tuple(phases))


def strategy_of(plan: CollaborationPlan) -> ExecutionStrategy:
    """``parallel`` (one tier), ``sequential`` (one phase per tier) or ``phased``."""
    tiers = [_tier(phase.domain) for phase in plan.phases]
    if len(set(tiers)) == 1:
        return "parallel"
    if len(set(tiers)) == len(tiers):
        return "sequential"
    return "phased"


def with_agents(
    plan: CollaborationPlan, agents: Sequence[AgentRecommendation]
) -> CollaborationPlan:
    """The plan with each phase's best agents (of its plugin) named."""
    return CollaborationPlan(
        tuple(
            Phase(
                id=phase.id,
                plugin=phase.plugin,
                domain=phase.domain,
                depends_on=phase.depends_on,
                agents=tuple(a.qualified_name for a in agents if a.plugin == phase.plugin)[
                    :_AGENTS_PER_PHASE
                ],
            )
            for phase in plan.phases
        )
    )
