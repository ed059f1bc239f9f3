"""Corrections as JSON Lines: export a store's corrections, import them into another.

A team's corrections are what the router learns most from; they outlive an upgrade or
move to another environment as a file, one correction a line::

    {"kind": "routing-correction", "version": 1, "id": "OPS-7",
     "plugin": "aws-eks-helm-keycloak", "text": "pods restart after ...", "files": [],
     "labels": ["k8s"], "components": [], "issueType": "Bug", "issueKey": "OPS-7",
     "requester": null, "createdAt": "2026-12-03T10:41:08.240+00:00"}

`write_corrections` writes them; `read_corrections` reads a file line by line and yields
a `Correction` or a `CorrectionProblem` (``FILE:LINE: reason``) per line, so a bad line
is reported and skipped and the rest still counts; `DecisionStore.import_corrections`
stores them, keeping the newer of two corrections of the same request.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TextIO

from jira_orchestrator.routing.errors import InvalidRequest
from jira_orchestrator.routing.request import RoutingRequest
from jira_orchestrator.routing.store import Correction, correction_from_request

__all__ = [
    "KIND",
    "CorrectionProblem",
    "correction_line",
    "read_corrections",
    "write_corrections",
]

KIND = "routing-correction"
VERSION = 1
_MAX_LINE = 1 << 20
_LINE = "line"


@dataclass(frozen=True, slots=True)
class CorrectionProblem:
    """A line of a corrections file that could not be read, and why."""

    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


def correction_line(correction: Correction) -> dict[str, Any]:
    """One correction as its JSON Lines object."""
    request = correction.request()
    return {
        "kind": KIND,
        "version": VERSION,
        "id": correction.request_id,
        "plugin": correction.plugin,
        "text": request.text,
        "files": list(request.files),
        "labels": list(request.labels),
        "components": list(request.components),
        "issueType": request.issue_type,
        "issueKey": request.issue_key,
        "requester": request.requester,
        "createdAt": datetime.fromtimestamp(correction.created_at, UTC).isoformat(
            timespec="milliseconds"
        ),
    }


def write_corrections(corrections: Iterable[Correction], out: TextIO) -> int:
    """Write ``corrections`` to ``out``, one JSON object a line; returns how many."""
    count = 0
    for correction in corrections:
        out.write(json.dumps(correction_line(correction), ensure_ascii=False) + "\n")
        count += 1
    return count


def read_corrections(
    lines: Iterable[str], source: str = "corrections"
) -> Iterator[Correction | CorrectionProblem]:
    """Each line of a corrections file (``source`` names it in problems) as a
    `Correction`, or a `CorrectionProblem` saying which line is wrong and why; blank
    lines are skipped."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if len(line) > _MAX_LINE:
            yield CorrectionProblem(source, number, f"line longer than {_MAX_LINE} characters")
            continue
        try:
            yield _correction(json.loads(line))
        except json.JSONDecodeError as exc:
            yield CorrectionProblem(source, number, f"invalid JSON: {exc.msg}")
        except InvalidRequest as exc:
            where = exc.where.removeprefix(f"{_LINE}: ")
            yield CorrectionProblem(source, number, f"{where}: {exc.reason}")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false"}.get(
        type(value), "null" if value is None else "a number"
    )


def _correction(data: Any) -> Correction:
    if not isinstance(data, dict):
        raise InvalidRequest(_LINE, f"expected a JSON object, not {_kind(data)}")
    if data.get("kind") != KIND:
        raise InvalidRequest("kind", f"expected {KIND!r}, not {data.get('kind')!r}")
    version = data.get("version")
    if version != VERSION:
        raise InvalidRequest("version", f"this release reads version {VERSION}, not {version!r}")
    plugin = data.get("plugin")
    if not isinstance(plugin, str) or not plugin.strip():
        raise InvalidRequest("plugin", "expected the plugin's name")
    request_id = data.get("id")
    if not isinstance(request_id, str) or not request_id:
        raise InvalidRequest("id", "expected the request's id")
    for key in ("issueType", "issueKey", "requester"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise InvalidRequest(key, f"expected text or null, not {_kind(data[key])}")
    created = data.get("createdAt")
    try:
        when = datetime.fromisoformat(created) if isinstance(created, str) else None
    except ValueError:
        when = None
    if when is None:
        raise InvalidRequest("createdAt", f"expected an ISO 8601 time, not {created!r}")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    request = RoutingRequest.from_mapping(
        {key: data[key] for key in ("id", "text", "files", "labels", "components") if key in data},
        where=_LINE,
    )
    request = replace(
        request,
        issue_type=data.get("issueType"),
        issue_key=data.get("issueKey"),
        requester=data.get("requester"),
    )
    return correction_from_request(request, plugin, when.timestamp())
