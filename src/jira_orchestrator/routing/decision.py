"""The routing decision: who handles a request, who falls back, and why.

`RoutingDecision.to_dict` is the wire form (camelCase keys, published on
``routing/decision`` and printed by ``route --json``); `RoutingDecision.explain` is the
same in words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "CANDIDATES",
    "AgentRecommendation",
    "CollaborationPlan",
    "ExecutionStrategy",
    "Phase",
    "PluginScore",
    "RoutingDecision",
]

ExecutionStrategy = Literal["none", "single", "sequential", "parallel", "phased", "triage"]
"""``single``: one plugin; ``sequential``/``parallel``: every phase after / beside the
other; ``phased``: some phases side by side, others after them; ``none``: no plugin fits;
``triage``: the router is not sure enough (confidence below its ``min_confidence``), a
person picks among the candidates and nothing is dispatched."""

CANDIDATES = 3
"""How many candidates a ``triage`` decision offers."""


@dataclass(frozen=True, slots=True)
class PluginScore:
    """One plugin's score and the parts and evidence it was made of."""

    plugin: str
    score: float
    relevance: float = 0.0
    capability: float = 0.0
    file_context: float = 0.0
    learned: float = 0.0
    priority: float = 1.0
    availability: float = 1.0
    evidence: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    semantic: float | None = None
    """Embedding similarity to the request (0..1), when the router blends one in."""
    specificity: float = 1.0
    """How much less than a hub this plugin scores on others' subjects (see `scoring`)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly, camelCase (``semantic`` only when the router used embeddings)."""
        document: dict[str, Any] = {
            "plugin": self.plugin,
            "score": round(self.score, 4),
            "relevance": round(self.relevance, 4),
            "capability": round(self.capability, 4),
            "fileContext": round(self.file_context, 4),
            "learned": round(self.learned, 4),
            "priority": self.priority,
            "availability": self.availability,
            "specificity": round(self.specificity, 4),
            "evidence": list(self.evidence),
            "components": list(self.components),
        }
        if self.semantic is not None:
            document["semantic"] = round(self.semantic, 4)
        return document


@dataclass(frozen=True, slots=True)
class AgentRecommendation:
    """An agent of a chosen plugin, ranked for this request."""

    plugin: str
    name: str
    score: float
    reasons: tuple[str, ...] = ()

    @property
    def qualified_name(self) -> str:
        """``<plugin>:<name>``."""
        return f"{self.plugin}:{self.name}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly, camelCase."""
        return {
            "plugin": self.plugin,
            "name": self.name,
            "qualifiedName": self.qualified_name,
            "score": round(self.score, 4),
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True, slots=True)
class Phase:
    """One step of a collaboration: a plugin working on one domain of the request."""

    id: str
    plugin: str
    domain: str
    depends_on: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly, camelCase."""
        return {
            "id": self.id,
            "plugin": self.plugin,
            "domain": self.domain,
            "dependsOn": list(self.depends_on),
            "agents": list(self.agents),
        }


@dataclass(frozen=True, slots=True)
class CollaborationPlan:
    """Phases with dependencies, when a request spans domains handled by different plugins."""

    phases: tuple[Phase, ...]

    @property
    def plugins(self) -> tuple[str, ...]:
        """The plugins taking part, in phase order, without repeats."""
        return tuple(dict.fromkeys(phase.plugin for phase in self.phases))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly, camelCase."""
        return {"phases": [phase.to_dict() for phase in self.phases]}


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """The outcome of routing one request."""

    request_id: str
    primary_plugin: str | None
    fallback_plugins: tuple[str, ...] = ()
    scores: tuple[PluginScore, ...] = ()
    execution_strategy: ExecutionStrategy = "single"
    collaboration_plan: CollaborationPlan | None = None
    recommended_agents: tuple[AgentRecommendation, ...] = ()
    confidence: float = 0.0
    """The probability that the primary plugin is right (for ``triage``: that the best
    candidate is), from the router's calibrator."""
    domains: tuple[str, ...] = ()
    technologies: tuple[str, ...] = ()
    complexity: str = "low"
    requester: str | None = None
    excluded: dict[str, str] = field(default_factory=dict)
    text: str = ""
    files: tuple[str, ...] = ()
    created_at: str = ""
    elapsed_ms: float = 0.0
    names: tuple[str, ...] = ()
    """Service names and paths the text mentions, read as names (weak evidence)."""
    min_confidence: float = 0.0
    """The router's ``min_confidence`` when it decided (below it: ``triage``)."""

    @property
    def triaged(self) -> bool:
        """True when the router left the request to a person (strategy ``triage``)."""
        return self.execution_strategy == "triage"

    @property
    def candidates(self) -> tuple[PluginScore, ...]:
        """The best `CANDIDATES` plugins, best first, with their evidence."""
        return self.scores[:CANDIDATES]

    def score_of(self, plugin: str) -> PluginScore | None:
        """The score entry of ``plugin``, or None when it scored nothing."""
        return next((s for s in self.scores if s.plugin == plugin), None)

    def to_dict(self) -> dict[str, Any]:
        """The wire form (camelCase keys)."""
        return {
            "requestId": self.request_id,
            "primaryPlugin": self.primary_plugin,
            "fallbackPlugins": list(self.fallback_plugins),
            "confidence": round(self.confidence, 4),
            "executionStrategy": self.execution_strategy,
            "collaborationPlan": (
                self.collaboration_plan.to_dict() if self.collaboration_plan else None
            ),
            "recommendedAgents": [agent.to_dict() for agent in self.recommended_agents],
            "scores": [score.to_dict() for score in self.scores],
            "classification": {
                "domains": list(self.domains),
                "technologies": list(self.technologies),
                "complexity": self.complexity,
                "names": list(self.names),
            },
            "requester": self.requester,
            "excluded": [
                {"plugin": plugin, "reason": reason} for plugin, reason in self.excluded.items()
            ],
            "createdAt": self.created_at,
            "elapsedMs": round(self.elapsed_ms, 3),
            "minConfidence": self.min_confidence,
            **({"candidates": [s.plugin for s in self.candidates]} if self.triaged else {}),
        }

    def summary(self) -> dict[str, Any]:
        """The batch line: ``id``, ``primaryPlugin``, ``fallbackPlugins``, ``confidence``,
        ``executionStrategy``, ``scores``."""
        return {
            "id": self.request_id,
            "primaryPlugin": self.primary_plugin,
            "fallbackPlugins": list(self.fallback_plugins),
            "confidence": round(self.confidence, 4),
            "executionStrategy": self.execution_strategy,
            "scores": [{"plugin": s.plugin, "score": round(s.score, 4)} for s in self.scores],
        }

    def explain(self, top: int = 5) -> str:
        """Why this decision, in words: the winner, the runners-up, and their evidence."""
        lines: list[str] = []
        if self.triaged:
            lines.append(
                f"Request {self.request_id}: not sure enough to route it"
                f" (confidence {self.confidence:.0%}, needs {self.min_confidence:.0%});"
                " a person should pick among: " + ", ".join(s.plugin for s in self.candidates) + "."
            )
        elif self.primary_plugin is None:
            lines.append(f"Request {self.request_id}: no plugin fits.")
        else:
            lines.append(
                f"Request {self.request_id} goes to {self.primary_plugin}"
                f" (confidence {self.confidence:.0%})."
            )
        if self.fallback_plugins:
            lines.append("Fallbacks, in order: " + ", ".join(self.fallback_plugins) + ".")
        facts = []
        if self.domains:
            facts.append("domains " + ", ".join(self.domains))
        if self.technologies:
            facts.append("technologies " + ", ".join(self.technologies))
        if self.names:
            facts.append("names (weak evidence) " + ", ".join(self.names))
        facts.append(f"complexity {self.complexity}")
        lines.append("The request reads as: " + "; ".join(facts) + ".")
        for rank, score in enumerate(self.scores[:top], 1):
            parts = [f"relevance {score.relevance:.1f}"]
            if score.capability:
                parts.append(f"capabilities {score.capability:.1f}")
            if score.file_context:
                parts.append(f"files {score.file_context:.1f}")
            if score.learned:
                parts.append(f"learned {score.learned:+.1f}")
            if score.priority != 1.0:
                parts.append(f"x priority {score.priority:g}")
            if score.availability != 1.0:
                parts.append(f"x availability {score.availability:g}")
            if score.specificity != 1.0:
                parts.append(f"x specificity {score.specificity:.2f}")
            if score.semantic is not None:
                parts.append(f"blended with semantic similarity {score.semantic:.2f}")
            lines.append(f"{rank}. {score.plugin}: {score.score:.1f} = " + ", ".join(parts))
            if score.components:
                lines.append("   best matches: " + ", ".join(score.components))
            for item in score.evidence:
                lines.append(f"   - {item}")
        for plugin, reason in self.excluded.items():
            lines.append(f"Left out {plugin}: {reason}.")
        if self.collaboration_plan:
            lines.append(f"Collaboration ({self.execution_strategy}):")
            for phase in self.collaboration_plan.phases:
                after = f" after {', '.join(phase.depends_on)}" if phase.depends_on else ""
                lines.append(f"   {phase.id}: {phase.plugin} for {phase.domain}{after}")
        if self.recommended_agents:
            lines.append(
                "Recommended agents: "
                + ", ".join(a.qualified_name for a in self.recommended_agents)
                + "."
            )
        return "\n".join(lines)
