"""Which exceptions a breaker records, a retry retries or a fallback replaces."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from jira_orchestrator._core.errors import (
    InvalidEndpoint,
    InvalidMessage,
    ManifestError,
    RPCError,
    StateAccessDenied,
)
from jira_orchestrator.resilience.errors import ResilienceConfigError

__all__ = ["ExceptionMatcher", "ExceptionSpec", "is_caller_error"]

ExceptionPredicate = Callable[[BaseException], bool]
ExceptionSpec = (
    type[BaseException] | ExceptionPredicate | Iterable[type[BaseException] | ExceptionPredicate]
)

_CALLER_ERROR_TYPES = (InvalidMessage, InvalidEndpoint, ManifestError, StateAccessDenied)
# JSON-RPC codes that blame the request, not the server: parse error, invalid request,
# method not found, invalid params.
_CALLER_RPC_CODES = frozenset({-32700, -32600, -32601, -32602})


def is_caller_error(exc: BaseException) -> bool:
    """True for errors caused by the caller's input, which say nothing about the callee's health.

    Bad messages, bad endpoints, bad manifests, denied state access and JSON-RPC
    "invalid request/params/method" errors. Breakers ignore them, retries and fallbacks
    let them through: retrying bad input cannot help, and a fallback would hide the bug.
    """
    if isinstance(exc, _CALLER_ERROR_TYPES):
        return True
    return isinstance(exc, RPCError) and exc.code in _CALLER_RPC_CODES


class ExceptionMatcher:
    """Matches an exception against exception types and predicates."""

    __slots__ = ("_predicates", "_types")

    def __init__(self, option: str, spec: ExceptionSpec) -> None:
        items: list[object]
        if isinstance(spec, type) or callable(spec):
            items = [spec]
        elif isinstance(spec, Iterable) and not isinstance(spec, (str, bytes)):
            items = list(spec)
        else:
            raise ResilienceConfigError(
                option, f"must be exception types or predicates, got {spec!r}"
            )
        types: list[type[BaseException]] = []
        predicates: list[ExceptionPredicate] = []
        for item in items:
            if isinstance(item, type):
                if not issubclass(item, BaseException):
                    raise ResilienceConfigError(option, f"{item.__name__} is not an exception type")
                types.append(item)
            elif callable(item):
                predicates.append(item)
            else:
                raise ResilienceConfigError(
                    option, f"must be exception types or predicates, got {item!r}"
                )
        self._types = tuple(types)
        self._predicates = tuple(predicates)

    def __bool__(self) -> bool:
        return bool(self._types or self._predicates)

    def __call__(self, exc: BaseException) -> bool:
        if isinstance(exc, self._types):
            return True
        return any(predicate(exc) for predicate in self._predicates)
