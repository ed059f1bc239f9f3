"""Fault switches: make the sandbox answer the next requests with an error, as Jira can."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

__all__ = ["FAULT_STATUSES", "RATE_LIMIT_REASONS", "Fault", "FaultSwitches"]

FAULT_STATUSES = frozenset({401, 403, 409, 429, 500, 502, 503, 504})
RATE_LIMIT_REASONS = frozenset(
    {
        "jira-burst-based",
        "jira-per-issue-on-write",
        "jira-quota-tenant-based",
        "jira-quota-global-based",
    }
)


@dataclass
class Fault:
    """Answer ``status`` to the next ``times`` matching requests.

    ``method`` (``"POST"``) and ``path`` (a glob on the path, ``/rest/api/3/issue/*/comment``)
    narrow which requests match; ``None`` matches all. ``retry_after`` (seconds) is sent as
    ``Retry-After`` (a 429 always carries one, default 1); ``reason`` is a 429's
    ``RateLimit-Reason``.
    """

    status: int
    times: int = 1
    method: str | None = None
    path: str | None = None
    retry_after: int | None = None
    reason: str = "jira-burst-based"

    def __post_init__(self) -> None:
        if self.status not in FAULT_STATUSES:
            raise ValueError(
                f"fault status must be one of {sorted(FAULT_STATUSES)}, not {self.status}"
            )
        if self.times < 1:
            raise ValueError(f"fault times must be at least 1, not {self.times}")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError(f"fault retry_after must be >= 0, not {self.retry_after}")
        if self.reason not in RATE_LIMIT_REASONS:
            raise ValueError(
                f"fault reason must be one of {sorted(RATE_LIMIT_REASONS)}, not {self.reason!r}"
            )
        if self.method is not None:
            self.method = self.method.upper()
        if self.status == 429 and self.retry_after is None:
            self.retry_after = 1

    def matches(self, method: str, path: str) -> bool:
        """Whether a request ``method path`` is one this fault answers."""
        return (self.method is None or self.method == method.upper()) and (
            self.path is None or fnmatch.fnmatchcase(path, self.path)
        )

    def to_json(self) -> dict[str, Any]:
        """The fault as ``/_sandbox/faults`` lists it (camelCase keys)."""
        return {
            "status": self.status,
            "times": self.times,
            "method": self.method,
            "path": self.path,
            "retryAfter": self.retry_after,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: Any) -> Fault:
        """A fault from ``/_sandbox/faults``'s JSON body; ``ValueError`` names a bad key."""
        if not isinstance(data, dict):
            raise ValueError("a fault is a JSON object")
        known = {"status", "times", "method", "path", "retryAfter", "reason"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault keys {sorted(unknown)} (known: {sorted(known)})")
        for key, kind in (("status", int), ("times", int), ("retryAfter", int)):
            value = data.get(key)
            if key in data and value is not None and (type(value) is not kind):
                raise ValueError(f"fault {key} must be an integer")
        for key in ("method", "path", "reason"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise ValueError(f"fault {key} must be a string")
        if "status" not in data:
            raise ValueError("a fault needs a status")
        return cls(
            status=data["status"],
            times=data.get("times") or 1,
            method=data.get("method"),
            path=data.get("path"),
            retry_after=data.get("retryAfter"),
            reason=data.get("reason") or "jira-burst-based",
        )


class FaultSwitches:
    """The armed faults, first armed answers first; each match uses up one of its ``times``."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(
        self,
        status: int,
        *,
        times: int = 1,
        method: str | None = None,
        path: str | None = None,
        retry_after: int | None = None,
        reason: str = "jira-burst-based",
    ) -> Fault:
        """Arm a fault (see `Fault`) and return it."""
        return self.arm(Fault(status, times, method, path, retry_after, reason))

    def arm(self, fault: Fault) -> Fault:
        """Arm ``fault`` and return it."""
        self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Disarm every fault."""
        self._faults.clear()

    @property
    def armed(self) -> list[Fault]:
        """The faults still armed, in the order they answer."""
        return list(self._faults)

    def take(self, method: str, path: str) -> Fault | None:
        """The fault that answers this request, if any, using up one of its ``times``."""
        for fault in self._faults:
            if fault.matches(method, path):
                fault.times -= 1
                if fault.times == 0:
                    self._faults.remove(fault)
                return fault
        return None
