"""Reading a manifest's ``errorHandling`` section into Python options (seconds, snake_case).

Every problem is collected, each as ``json.path: message``, and raised together as one
``ManifestError``, so a plugin author fixes them all in one go.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jira_orchestrator._core.errors import ManifestError
from jira_orchestrator.resilience.fallback import FALLBACK_STRATEGIES
from jira_orchestrator.resilience.retry import BACKOFFS, JITTERS

__all__ = ["ErrorHandling", "manifest_mapping", "read_error_handling"]

_ROOT = "errorHandling"
_BREAKER_KEYS = (
    "enabled",
    "threshold",
    "timeout",
    "halfOpenRetries",
    "monitoringWindow",
    "halfOpenMaxCalls",
    "slowCallThreshold",
    "failureRate",
    "minimumCalls",
)
_RETRY_KEYS = (
    "enabled",
    "maxRetries",
    "backoff",
    "initialDelay",
    "maxDelay",
    "jitter",
    "deadline",
)
_FALLBACK_KEYS = ("strategy", "fallbackPlugin")
_ROOT_KEYS = ("timeout", "circuitBreaker", "retryPolicy", "fallback")


@dataclass
class ErrorHandling:
    """The section in Python units; ``breaker``/``retry`` are ``None`` when disabled."""

    timeout: float | None = None
    breaker: dict[str, Any] | None = field(default_factory=dict)
    retry: dict[str, Any] | None = field(default_factory=dict)
    fallback_strategy: str = "none"
    fallback_plugin: str | None = None


def manifest_mapping(manifest: object) -> Mapping[str, Any]:
    """The manifest as a mapping: itself, or a pydantic model's camelCase JSON dump."""
    if isinstance(manifest, Mapping):
        return manifest
    dump = getattr(manifest, "model_dump", None)
    if callable(dump):
        data = dump(by_alias=True, mode="json")
        if isinstance(data, Mapping):
            return data
    raise ManifestError(
        [f"(manifest): must be a JSON object or a model, got {type(manifest).__name__}"]
    )


class _Reader:
    """Typed getters that record a problem instead of raising, and return the default.

    ``null`` counts as absent, since a model dumped without ``exclude_none`` writes a
    ``null`` for every optional key it was not given.
    """

    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def section(self, parent: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
        value = parent.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.problem(path, f"must be an object, got {_json_type(value)}")
            return {}
        return value

    def known_keys(self, data: Mapping[str, Any], path: str, allowed: tuple[str, ...]) -> None:
        for key in data:
            if key in allowed:
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(allowed)}"
            self.problem(f"{path}.{key}", f"unknown key; {hint}")

    def boolean(self, data: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
        value = _get(data, key, default)
        if not isinstance(value, bool):
            self.problem(f"{path}.{key}", f"must be true or false, got {_show(value)}")
            return default
        return value

    def integer(
        self, data: Mapping[str, Any], key: str, path: str, default: int, minimum: int
    ) -> int:
        value = _get(data, key, default)
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON has one number type; 5.0 is 5
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(f"{path}.{key}", f"must be an integer, got {_show(value)}")
            return default
        if value < minimum:
            self.problem(f"{path}.{key}", f"must be at least {minimum}, got {value}")
            return default
        return value

    def millis(
        self, data: Mapping[str, Any], key: str, path: str, default_ms: float, *, zero: bool = False
    ) -> float:
        """A duration in milliseconds, returned in seconds."""
        seconds = self.optional_millis(data, key, path, default_ms, zero=zero)
        return default_ms / 1000 if seconds is None else seconds

    def optional_millis(
        self,
        data: Mapping[str, Any],
        key: str,
        path: str,
        default_ms: float | None,
        *,
        zero: bool = False,
    ) -> float | None:
        """A duration in milliseconds, returned in seconds."""
        value = _get(data, key, default_ms)
        default = None if default_ms is None else default_ms / 1000
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(f"{path}.{key}", f"must be a number of milliseconds, got {_show(value)}")
            return default
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
            bound = "zero or more" if zero else "more than zero"
            self.problem(f"{path}.{key}", f"must be {bound} milliseconds, got {_show(value)}")
            return default
        return value / 1000

    def choice(
        self, data: Mapping[str, Any], key: str, path: str, default: str, choices: tuple[str, ...]
    ) -> str:
        value = _get(data, key, default)
        if value not in choices:
            self.problem(
                f"{path}.{key}", f"must be one of {', '.join(choices)}, got {_show(value)}"
            )
            return default
        return str(value)

    def fraction(self, data: Mapping[str, Any], key: str, path: str) -> float | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
            self.problem(f"{path}.{key}", f"must be a fraction in (0, 1], got {_show(value)}")
            return None
        return float(value)


def _get(data: Mapping[str, Any], key: str, default: Any) -> Any:
    value = data.get(key)
    return default if value is None else value


def _show(value: object) -> str:
    """``value`` as JSON spells it, since that is what the plugin author wrote."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _json_type(value: object) -> str:
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__


def read_error_handling(manifest: Mapping[str, Any]) -> ErrorHandling:
    """Parse ``manifest["errorHandling"]``; missing parts get the seed's defaults."""
    read = _Reader()
    root = read.section(manifest, _ROOT, _ROOT)
    read.known_keys(root, _ROOT, _ROOT_KEYS)
    settings = ErrorHandling(timeout=read.optional_millis(root, "timeout", _ROOT, None))

    path = f"{_ROOT}.circuitBreaker"
    data = read.section(root, "circuitBreaker", path)
    read.known_keys(data, path, _BREAKER_KEYS)
    breaker: dict[str, Any] = {
        "threshold": read.integer(data, "threshold", path, 5, 1),
        "timeout": read.millis(data, "timeout", path, 60_000),
        "half_open_retries": read.integer(data, "halfOpenRetries", path, 3, 1),
        "monitoring_window": read.optional_millis(data, "monitoringWindow", path, 300_000),
        "half_open_max_calls": read.integer(data, "halfOpenMaxCalls", path, 1, 1),
        "slow_call_threshold": read.optional_millis(data, "slowCallThreshold", path, None),
        "failure_rate": read.fraction(data, "failureRate", path),
        "minimum_calls": read.integer(data, "minimumCalls", path, 10, 1),
    }
    settings.breaker = breaker if read.boolean(data, "enabled", path, True) else None

    path = f"{_ROOT}.retryPolicy"
    data = read.section(root, "retryPolicy", path)
    read.known_keys(data, path, _RETRY_KEYS)
    retry: dict[str, Any] = {
        "max_retries": read.integer(data, "maxRetries", path, 3, 0),
        "backoff": read.choice(data, "backoff", path, "exponential", BACKOFFS),
        "initial_delay": read.millis(data, "initialDelay", path, 1_000, zero=True),
        "max_delay": read.millis(data, "maxDelay", path, 10_000, zero=True),
        "jitter": read.choice(data, "jitter", path, "full", JITTERS),
        "deadline": read.optional_millis(data, "deadline", path, None),
    }
    if retry["max_delay"] < retry["initial_delay"]:
        read.problem(
            f"{path}.maxDelay",
            f"must not be less than initialDelay ({retry['initial_delay'] * 1000:g}),"
            f" got {retry['max_delay'] * 1000:g}",
        )
        retry["max_delay"] = retry["initial_delay"]
    settings.retry = retry if read.boolean(data, "enabled", path, True) else None

    path = f"{_ROOT}.fallback"
    data = read.section(root, "fallback", path)
    read.known_keys(data, path, _FALLBACK_KEYS)
    plugin = data.get("fallbackPlugin")
    if plugin is not None and (not isinstance(plugin, str) or not plugin):
        read.problem(f"{path}.fallbackPlugin", f"must be a plugin id, got {_show(plugin)}")
        plugin = None
    default_strategy = "plugin" if data.get("fallbackPlugin") is not None else "none"
    strategy = read.choice(data, "strategy", path, default_strategy, FALLBACK_STRATEGIES)
    if strategy == "plugin" and plugin is None and data.get("fallbackPlugin") is None:
        read.problem(f"{path}.fallbackPlugin", 'required when strategy is "plugin"')
    elif strategy != "plugin" and plugin is not None:
        read.problem(
            f"{path}.fallbackPlugin", f'only used with strategy "plugin", not {strategy!r}'
        )
    settings.fallback_strategy = strategy
    settings.fallback_plugin = plugin

    if read.problems:
        raise ManifestError(read.problems)
    return settings
