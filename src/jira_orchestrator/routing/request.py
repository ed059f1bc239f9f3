"""What is routed: free text or a Jira issue, with the files it touches.

A Jira description is plain text or Atlassian Document Format (ADF, the JSON tree the
Jira Cloud REST API v3 returns); `adf_to_text` flattens ADF to text, one line per block.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jira_orchestrator._core.ids import new_id
from jira_orchestrator.routing.errors import InvalidRequest

__all__ = ["RoutingRequest", "adf_to_text"]

_BLOCKS = frozenset(
    [
        "doc",
        "paragraph",
        "heading",
        "bulletList",
        "orderedList",
        "listItem",
        "blockquote",
        "codeBlock",
        "panel",
        "table",
        "tableRow",
        "tableHeader",
        "tableCell",
        "rule",
        "mediaSingle",
        "mediaGroup",
        "expand",
        "nestedExpand",
        "taskList",
        "taskItem",
        "decisionList",
        "decisionItem",
        "layoutSection",
        "layoutColumn",
    ]
)
_MAX_DEPTH = 100


def adf_to_text(document: Any, *, where: str = "description") -> str:
    """The text of an ADF document (or node): blocks on their own lines.

    Raises `InvalidRequest` naming the node path (``description: content[1].content[0]``)
    when a node is not an object, has no ``type``, or its ``content``/``text`` has the
    wrong type.
    """
    lines: list[str] = []
    current: list[str] = []

    def flush() -> None:
        text = "".join(current).strip()
        if text:
            lines.append(text)
        current.clear()

    def walk(node: Any, path: str, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise InvalidRequest(f"{where}: {path}", f"nested deeper than {_MAX_DEPTH} levels")
        if not isinstance(node, Mapping):
            raise InvalidRequest(
                f"{where}: {path}", f"an ADF node must be an object, not {_kind(node)}"
            )
        kind = node.get("type")
        if not isinstance(kind, str) or not kind:
            raise InvalidRequest(f"{where}: {path}", "an ADF node needs a 'type' string")
        if kind == "text":
            text = node.get("text")
            if not isinstance(text, str):
                raise InvalidRequest(f"{where}: {path}.text", "a text node needs a 'text' string")
            current.append(text)
            return
        if kind == "hardBreak":
            flush()
            return
        if kind in ("mention", "emoji", "status", "date", "inlineCard", "blockCard"):
            attrs = node.get("attrs")
            if isinstance(attrs, Mapping):
                value = attrs.get("text") or attrs.get("shortName") or attrs.get("url")
                if isinstance(value, str):
                    current.append(f" {value} ")
            return
        content = node.get("content", [])
        if not isinstance(content, list):
            raise InvalidRequest(f"{where}: {path}.content", "'content' must be a list")
        block = kind in _BLOCKS
        if block:
            flush()
        for index, child in enumerate(content):
            walk(
                child, f"{path}.content[{index}]" if path != "$" else f"content[{index}]", depth + 1
            )
        if block:
            flush()

    walk(document, "$", 0)
    flush()
    return "\n".join(lines)


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    return "null" if value is None else type(value).__name__


def _strings(value: object, where: str) -> tuple[str, ...]:
    """A list of strings (or of ``{"name": ...}`` objects, as Jira sends components)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if not isinstance(value, list | tuple):
        raise InvalidRequest(where, f"expected a list of strings, not {_kind(value)}")
    out: list[str] = []
    for index, item in enumerate(value):
        if isinstance(item, Mapping):
            item = item.get("name") or item.get("value")
        if not isinstance(item, str):
            raise InvalidRequest(f"{where}[{index}]", f"expected a string, not {_kind(item)}")
        if item.strip():
            out.append(item.strip())
    return tuple(out)


@dataclass(frozen=True, slots=True)
class RoutingRequest:
    """A request to route. Build it with `from_text`, `from_jira` or `from_mapping`.

    ``requester`` is the plugin id asking (checked against ``acceptsRoutingFrom``); None
    means the router's own default.
    """

    text: str
    files: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    issue_type: str | None = None
    issue_key: str | None = None
    requester: str | None = None
    request_id: str = field(default_factory=new_id)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise InvalidRequest("text", f"expected text, not {_kind(self.text)}")
        if not self.text.strip() and not self.files:
            raise InvalidRequest("text", "empty request: give some text or at least one file")
        if not self.request_id or not isinstance(self.request_id, str):
            raise InvalidRequest("id", "a request id must be a non-empty string")

    @classmethod
    def from_text(
        cls,
        text: str,
        *,
        files: Iterable[str] = (),
        labels: Iterable[str] = (),
        components: Iterable[str] = (),
        requester: str | None = None,
        request_id: str | None = None,
    ) -> RoutingRequest:
        """A free-text request. Raises `InvalidRequest` when there is neither text nor file."""
        return cls(
            text=text,
            files=tuple(str(f) for f in files),
            labels=tuple(labels),
            components=tuple(components),
            requester=requester,
            request_id=request_id or new_id(),
        )

    @classmethod
    def from_jira(
        cls,
        issue: Mapping[str, Any],
        *,
        files: Iterable[str] = (),
        requester: str | None = None,
    ) -> RoutingRequest:
        """A Jira issue as the REST API returns it (``{"key", "fields": {...}}``) or flat.

        ``description`` may be text or ADF. The issue key becomes the request id.
        """
        if not isinstance(issue, Mapping):
            raise InvalidRequest("issue", f"expected a JSON object, not {_kind(issue)}")
        fields = issue.get("fields", issue)
        if not isinstance(fields, Mapping):
            raise InvalidRequest("fields", f"expected a JSON object, not {_kind(fields)}")
        summary = fields.get("summary") or ""
        if not isinstance(summary, str):
            raise InvalidRequest("fields.summary", f"expected text, not {_kind(summary)}")
        description = fields.get("description")
        if description is None:
            body = ""
        elif isinstance(description, str):
            body = description
        else:
            body = adf_to_text(description, where="fields.description")
        issue_type = fields.get("issuetype") or fields.get("issueType")
        if isinstance(issue_type, Mapping):
            issue_type = issue_type.get("name")
        key = issue.get("key") or issue.get("id")
        return cls(
            text="\n".join(part for part in (summary.strip(), body.strip()) if part),
            files=tuple(str(f) for f in files) or _strings(fields.get("files"), "fields.files"),
            labels=_strings(fields.get("labels"), "fields.labels"),
            components=_strings(fields.get("components"), "fields.components"),
            issue_type=issue_type if isinstance(issue_type, str) else None,
            issue_key=str(key) if key else None,
            requester=requester,
            request_id=str(key) if key else new_id(),
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, where: str = "request") -> RoutingRequest:
        """A batch line: ``id``, ``text``, optional ``files``, ``labels``, ``components``.

        A Jira issue (with ``fields``) is accepted too. Raises `InvalidRequest` naming
        ``where`` and the field.
        """
        if not isinstance(data, Mapping):
            raise InvalidRequest(where, f"expected a JSON object, not {_kind(data)}")
        if "fields" in data:
            return cls.from_jira(data)
        text = data.get("text", data.get("summary", ""))
        if not isinstance(text, str):
            raise InvalidRequest(f"{where}: text", f"expected text, not {_kind(text)}")
        description = data.get("description")
        if isinstance(description, Mapping):
            description = adf_to_text(description, where=f"{where}: description")
        if isinstance(description, str) and description.strip():
            text = f"{text}\n{description}" if text else description
        raw_id = data.get("id")
        if raw_id is not None and not isinstance(raw_id, str | int):
            raise InvalidRequest(f"{where}: id", f"expected text or a number, not {_kind(raw_id)}")
        requester = data.get("requester")
        try:
            return cls(
                text=text,
                files=_strings(data.get("files"), f"{where}: files"),
                labels=_strings(data.get("labels"), f"{where}: labels"),
                components=_strings(data.get("components"), f"{where}: components"),
                requester=requester if isinstance(requester, str) else None,
                request_id=str(raw_id) if raw_id is not None and str(raw_id) else new_id(),
            )
        except InvalidRequest as exc:
            if exc.where.startswith(where):
                raise
            raise InvalidRequest(f"{where}: {exc.where}", exc.reason) from None

    @property
    def all_text(self) -> str:
        """The text with labels, components and issue type, as the classifier reads it."""
        extra = [*self.labels, *self.components]
        return " ".join([self.text, *extra])

    def with_files(self, files: Sequence[str]) -> RoutingRequest:
        """A copy with more files."""
        return RoutingRequest(
            text=self.text,
            files=(*self.files, *files),
            labels=self.labels,
            components=self.components,
            issue_type=self.issue_type,
            issue_key=self.issue_key,
            requester=self.requester,
            request_id=self.request_id,
        )
