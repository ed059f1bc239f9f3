"""Layer 4: the routing engine. Which plugin should handle a request, and why.

from jira_orchestrator.routing import Router

router = Router.from_directory("plugins")
decision = router.route("The Blazor grid freezes on every keystroke",
                        files=["Pages/Orders.razor"])
decision.primary_plugin, decision.fallback_plugins
print(decision.explain())
"""

from jira_orchestrator.routing.baseline import BM25Baseline
from jira_orchestrator.routing.batch import BatchItem, BatchProblem, BatchReader, read_batch
from jira_orchestrator.routing.cache import IndexCache
from jira_orchestrator.routing.calibration import Calibrator
from jira_orchestrator.routing.classifier import (
    Classification,
    Complexity,
    classify,
    technologies_of,
)
from jira_orchestrator.routing.corrections import (
    CorrectionProblem,
    read_corrections,
    write_corrections,
)
from jira_orchestrator.routing.decision import (
    AgentRecommendation,
    CollaborationPlan,
    ExecutionStrategy,
    Phase,
    PluginScore,
    RoutingDecision,
)
from jira_orchestrator.routing.errors import (
    InvalidRequest,
    NoPlugins,
    RoutingError,
    RoutingStoreError,
    UnknownRequest,
)
from jira_orchestrator.routing.evaluation import (
    Evaluation,
    LabelledExample,
    evaluate,
    load_labelled,
)
from jira_orchestrator.routing.learning import Learner
from jira_orchestrator.routing.profiles import FieldWeights, PluginProfile, build_profile
from jira_orchestrator.routing.request import RoutingRequest, adf_to_text
from jira_orchestrator.routing.router import DECISION_TOPIC, Router, RouterStats, Semantic
from jira_orchestrator.routing.scoring import Availability, ScoringWeights
from jira_orchestrator.routing.store import DecisionStore

__all__ = [
    "DECISION_TOPIC",
    "AgentRecommendation",
    "Availability",
    "BM25Baseline",
    "BatchItem",
    "BatchProblem",
    "BatchReader",
    "Calibrator",
    "Classification",
    "CollaborationPlan",
    "Complexity",
    "CorrectionProblem",
    "DecisionStore",
    "Evaluation",
    "ExecutionStrategy",
    "FieldWeights",
    "IndexCache",
    "InvalidRequest",
    "LabelledExample",
    "Learner",
    "NoPlugins",
    "Phase",
    "PluginProfile",
    "PluginScore",
    "Router",
    "RouterStats",
    "RoutingDecision",
    "RoutingError",
    "RoutingRequest",
    "RoutingStoreError",
    "ScoringWeights",
    "Semantic",
    "UnknownRequest",
    "adf_to_text",
    "build_profile",
    "classify",
    "evaluate",
    "load_labelled",
    "read_batch",
    "read_corrections",
    "technologies_of",
    "write_corrections",
]
