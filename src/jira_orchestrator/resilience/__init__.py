"""Resilience: circuit breakers, retries, timeouts and fallbacks, pure and clock-injected.

Layer 2: imports only ``jira_orchestrator._core``. State changes reach the message bus
through listeners that the messaging layer registers, never by importing it here.
"""

from jira_orchestrator._core.errors import CircuitOpenError
from jira_orchestrator.resilience._manifest import read_error_handling
from jira_orchestrator.resilience._matching import ExceptionSpec, is_caller_error
from jira_orchestrator.resilience.circuit_breaker import (
    CircuitBreaker,
    CircuitState,
    CircuitStateChange,
    StateListener,
)
from jira_orchestrator.resilience.errors import (
    AllFallbacksFailed,
    CallTimeout,
    ResilienceConfigError,
)
from jira_orchestrator.resilience.fallback import (
    FALLBACK_STRATEGIES,
    FallbackStrategy,
    with_fallbacks,
)
from jira_orchestrator.resilience.policy import ResiliencePolicy, call_with_timeout
from jira_orchestrator.resilience.retry import (
    BACKOFFS,
    JITTERS,
    Backoff,
    Jitter,
    RetryPolicy,
    retry_after_hint,
)

__all__ = [
    "BACKOFFS",
    "FALLBACK_STRATEGIES",
    "JITTERS",
    "AllFallbacksFailed",
    "Backoff",
    "CallTimeout",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "CircuitStateChange",
    "ExceptionSpec",
    "FallbackStrategy",
    "Jitter",
    "ResilienceConfigError",
    "ResiliencePolicy",
    "RetryPolicy",
    "StateListener",
    "call_with_timeout",
    "is_caller_error",
    "read_error_handling",
    "retry_after_hint",
    "with_fallbacks",
]
