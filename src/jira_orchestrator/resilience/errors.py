"""Errors raised by the resilience layer, below ``JiraOrchestratorError``.

    JiraOrchestratorError
    ├── CircuitOpenError                     (core) a breaker refused the call
    ├── ResilienceConfigError (ValueError)   a bad option given to a breaker, retry or policy
    ├── CallTimeout (TimeoutError)           one attempt ran past the policy's timeout
    └── AllFallbacksFailed (ExceptionGroup)  every alternative of ``with_fallbacks`` failed

A bad ``errorHandling`` section of a manifest raises the core ``ManifestError`` instead,
with one ``json.path: message`` line per problem.
"""

from __future__ import annotations

from jira_orchestrator._core.errors import JiraOrchestratorError

__all__ = ["AllFallbacksFailed", "CallTimeout", "ResilienceConfigError"]


class ResilienceConfigError(JiraOrchestratorError, ValueError):
    """A bad option; ``option`` names it, the message says what is allowed."""

    def __init__(self, option: str, problem: str) -> None:
        self.option = option
        self.problem = problem
        super().__init__(f"{option}: {problem}")


class CallTimeout(JiraOrchestratorError, TimeoutError):
    """An attempt did not finish within ``timeout`` seconds and was cancelled."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(f"call did not finish within {timeout:g}s")


class AllFallbacksFailed(ExceptionGroup[Exception], JiraOrchestratorError):
    """Every alternative failed; ``exceptions`` holds each cause in the order tried."""
