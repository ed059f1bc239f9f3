"""Atlassian Document Format (ADF): build it, check it, read it as text or wiki markup.

Jira Cloud's REST API v3 takes and returns rich text (descriptions, comment bodies) as ADF,
a JSON tree: ``{"type": "doc", "version": 1, "content": [blocks]}``. Webhook bodies carry the
REST v2 representation of the same text instead: a wiki-markup string. This module builds
ADF (`doc`, `paragraph`, `text`, `heading`, `bullet_list`, `code_block`, `mention`, ...),
finds what makes a body invalid (`adf_problems`), and renders ADF as plain text
(`adf_to_text`) or as the wiki markup a webhook carries (`wiki_from_adf`).

Every builder returns plain ``dict``/``list`` values, ready for ``json.dumps``. Builders
raise ``ValueError`` for what Atlassian's schema rejects (an empty text node, a heading
level outside 1-6, ``code`` combined with ``strong``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from jira_orchestrator.routing.request import adf_to_text as _flatten

__all__ = [
    "Node",
    "adf_from_text",
    "adf_problems",
    "adf_to_text",
    "bullet_list",
    "code_block",
    "doc",
    "hard_break",
    "heading",
    "is_adf",
    "mention",
    "ordered_list",
    "paragraph",
    "rule",
    "text",
    "wiki_from_adf",
]

Node = dict[str, Any]
Inline = Node | str
"""An inline node, or a ``str`` that stands for an unmarked text node."""


def text(
    value: str,
    *,
    strong: bool = False,
    em: bool = False,
    code: bool = False,
    link: str | None = None,
) -> Node:
    """A text node with marks: ``strong``, ``em``, ``code`` (inline code), ``link`` (an URL).

    Raises ``ValueError`` for empty text, and for ``code`` with ``strong`` or ``em`` (ADF
    allows inline code only with a link).
    """
    if not value:
        raise ValueError("an ADF text node cannot be empty")
    if code and (strong or em):
        raise ValueError("inline code cannot also be strong or emphasised in ADF")
    marks: list[Node] = []
    if strong:
        marks.append({"type": "strong"})
    if em:
        marks.append({"type": "em"})
    if code:
        marks.append({"type": "code"})
    if link is not None:
        marks.append({"type": "link", "attrs": {"href": link}})
    node: Node = {"type": "text", "text": value}
    if marks:
        node["marks"] = marks
    return node


def mention(account_id: str, display_name: str | None = None) -> Node:
    """A mention of a user by Atlassian account id (shown as ``@display_name``)."""
    attrs: dict[str, str] = {"id": account_id}
    if display_name:
        attrs["text"] = f"@{display_name.removeprefix('@')}"
    return {"type": "mention", "attrs": attrs}


def hard_break() -> Node:
    """A line break inside a paragraph."""
    return {"type": "hardBreak"}


def paragraph(*content: Inline) -> Node:
    """A paragraph of inline nodes; a ``str`` is an unmarked text node, ``""`` is skipped."""
    return {"type": "paragraph", "content": _inlines(content)}


def heading(level: int, *content: Inline) -> Node:
    """A heading, ``level`` 1 (largest) to 6."""
    if not 1 <= level <= 6:
        raise ValueError(f"an ADF heading level is 1 to 6, not {level}")
    return {"type": "heading", "attrs": {"level": level}, "content": _inlines(content)}


def bullet_list(*items: Inline | Iterable[Node]) -> Node:
    """A bulleted list; an item is a ``str``, an inline node, or a sequence of blocks."""
    return _list("bulletList", items)


def ordered_list(*items: Inline | Iterable[Node]) -> Node:
    """A numbered list; items as for `bullet_list`."""
    return _list("orderedList", items)


def code_block(code: str, language: str | None = None) -> Node:
    """A block of preformatted code, with an optional language for highlighting."""
    node: Node = {"type": "codeBlock", "content": [{"type": "text", "text": code}] if code else []}
    if language:
        node["attrs"] = {"language": language}
    return node


def rule() -> Node:
    """A horizontal rule."""
    return {"type": "rule"}


def doc(*blocks: Node | str) -> Node:
    """A whole ADF document; a ``str`` block becomes a paragraph."""
    content = [paragraph(block) if isinstance(block, str) else block for block in blocks]
    return {"type": "doc", "version": 1, "content": content}


def adf_from_text(value: str) -> Node:
    """Plain text as an ADF document, the way a person would have typed it in Jira.

    Blank lines separate paragraphs; a block whose lines all start with ``- `` or ``* ``
    becomes a bulleted list; other line breaks stay line breaks.
    """
    blocks: list[Node] = []
    for chunk in re.split(r"\n\s*\n", value.strip()):
        lines = [line.rstrip() for line in chunk.splitlines() if line.strip()]
        if not lines:
            continue
        if all(re.match(r"\s*[-*] ", line) for line in lines):
            items = [re.sub(r"^\s*[-*] ", "", line).strip() for line in lines]
            blocks.append(bullet_list(*[item for item in items if item]))
            continue
        inlines: list[Inline] = []
        for index, line in enumerate(lines):
            if index:
                inlines.append(hard_break())
            inlines.append(line)
        blocks.append(paragraph(*inlines))
    return doc(*blocks)


def adf_to_text(document: Any) -> str:
    """Plain text of a description or comment body: ADF (v3), a wiki string (v2) or ``None``.

    Blocks go on lines of their own; marks are dropped. Raises ``ValueError`` (the routing
    layer's ``InvalidRequest``) naming the node path when the ADF tree is malformed.
    """
    if document is None:
        return ""
    if isinstance(document, str):
        return document
    return _flatten(document, where="adf")


def is_adf(value: Any) -> bool:
    """Whether ``value`` looks like an ADF document (a ``doc`` object with a ``version``)."""
    return isinstance(value, Mapping) and value.get("type") == "doc" and "version" in value


def adf_problems(document: Any, *, limit: int = 10) -> list[str]:
    """What makes ``document`` an invalid ADF document, at most ``limit`` problems, each
    naming its path (``content[0].content[2].text: ...``); empty when it is valid.

    This is the structural part of Atlassian's ADF JSON Schema (node and mark types, the
    required keys, non-empty text, heading levels, list items), enough to reject what
    Jira Cloud rejects in practice: a plain or markdown string, a missing ``version``, an
    empty text node, an unknown node type.
    """
    problems: list[str] = []
    if not isinstance(document, Mapping):
        return [f"$: an ADF document must be an object, not {_kind(document)}"]
    if document.get("type") != "doc":
        problems.append("$.type: an ADF document has type 'doc'")
    if document.get("version") != 1:
        problems.append("$.version: an ADF document has version 1")
    extra = set(document) - {"type", "version", "content"}
    if extra:
        problems.append(f"$: unknown keys {sorted(extra)}")
    content = document.get("content")
    if not isinstance(content, list):
        problems.append("$.content: must be a list of block nodes")
    else:
        for index, child in enumerate(content):
            _check(child, f"content[{index}]", "block", problems, 1)
    return problems[:limit]


def wiki_from_adf(document: Any) -> str:
    """ADF as the wiki markup Jira's REST v2 (and its webhooks) write for the same text.

    ``*strong*``, ``_em_``, ``{{code}}``, ``[text|url]``, ``h2. heading``, ``* item``,
    ``# item``, ``{code:lang}...{code}``, ``[~accountid:ID]``; paragraphs are separated by
    a blank line. A ``str`` (already v2) is returned as is, ``None`` as ``""``.
    """
    if document is None:
        return ""
    if isinstance(document, str):
        return document
    return "\n\n".join(block for block in _wiki_blocks(document.get("content") or [], 0) if block)


def _inlines(content: Iterable[Inline]) -> list[Node]:
    return [
        {"type": "text", "text": item} if isinstance(item, str) else item
        for item in content
        if item != ""
    ]


def _list(kind: str, items: Iterable[Inline | Iterable[Node]]) -> Node:
    entries: list[Node] = []
    for item in items:
        blocks = [paragraph(item)] if isinstance(item, str | dict) else list(item)
        entries.append({"type": "listItem", "content": blocks})
    if not entries:
        raise ValueError("an ADF list needs at least one item")
    return {"type": kind, "content": entries}


def _kind(value: object) -> str:
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "null" if value is None else type(value).__name__


# Node type -> (the role it plays, the role its children play). "block" nodes sit in a doc,
# "inline" nodes in a paragraph or heading, "plain" is unmarked text; None: no content.
_NODES: dict[str, tuple[str, str | None]] = {
    "paragraph": ("block", "inline"),
    "heading": ("block", "inline"),
    "bulletList": ("block", "listItem"),
    "orderedList": ("block", "listItem"),
    "listItem": ("listItem", "block"),
    "codeBlock": ("block", "plain"),
    "blockquote": ("block", "block"),
    "panel": ("block", "block"),
    "rule": ("block", None),
    "expand": ("block", "block"),
    "table": ("block", "tableRow"),
    "tableRow": ("tableRow", "tableCell"),
    "tableCell": ("tableCell", "block"),
    "tableHeader": ("tableCell", "block"),
    "mediaSingle": ("block", "media"),
    "mediaGroup": ("block", "media"),
    "media": ("media", None),
    "blockCard": ("block", None),
    "embedCard": ("block", None),
    "taskList": ("block", "taskItem"),
    "taskItem": ("taskItem", "inline"),
    "decisionList": ("block", "decisionItem"),
    "decisionItem": ("decisionItem", "inline"),
    "text": ("inline", None),
    "hardBreak": ("inline", None),
    "mention": ("inline", None),
    "emoji": ("inline", None),
    "date": ("inline", None),
    "status": ("inline", None),
    "inlineCard": ("inline", None),
    "placeholder": ("inline", None),
}
_MARKS = frozenset(
    [
        "strong",
        "em",
        "code",
        "link",
        "strike",
        "underline",
        "subsup",
        "textColor",
        "backgroundColor",
        "annotation",
    ]
)
_REQUIRED_ATTRS = {"heading": ("level",), "mention": ("id",), "emoji": ("shortName",)}
_MAX_DEPTH = 100


def _check(node: Any, path: str, role: str, problems: list[str], depth: int) -> None:
    if depth > _MAX_DEPTH:
        problems.append(f"{path}: nested deeper than {_MAX_DEPTH} levels")
        return
    if not isinstance(node, Mapping):
        problems.append(f"{path}: an ADF node must be an object, not {_kind(node)}")
        return
    kind = node.get("type")
    if not isinstance(kind, str) or kind not in _NODES:
        problems.append(f"{path}.type: unknown ADF node type {kind!r}")
        return
    own_role, child_role = _NODES[kind]
    allowed = {"plain": "inline"}.get(role, role)
    if own_role != allowed or (role == "plain" and kind != "text"):
        problems.append(f"{path}: a {kind!r} node cannot appear here")
        return
    attrs = node.get("attrs")
    if attrs is not None and not isinstance(attrs, Mapping):
        problems.append(f"{path}.attrs: must be an object")
        attrs = None
    for key in _REQUIRED_ATTRS.get(kind, ()):
        if not attrs or key not in attrs:
            problems.append(f"{path}.attrs.{key}: required for a {kind!r} node")
    if (
        kind == "heading"
        and attrs
        and not (isinstance(attrs.get("level"), int) and 1 <= attrs["level"] <= 6)
    ):
        problems.append(f"{path}.attrs.level: a heading level is 1 to 6")
    if kind == "text":
        _check_text(node, path, plain=role == "plain", problems=problems)
        return
    content = node.get("content")
    if child_role is None:
        if content is not None:
            problems.append(f"{path}.content: a {kind!r} node has no content")
        return
    if content is None:
        if kind in ("bulletList", "orderedList", "listItem", "table", "tableRow"):
            problems.append(f"{path}.content: a {kind!r} node needs content")
        return
    if not isinstance(content, list):
        problems.append(f"{path}.content: must be a list")
        return
    if not content and kind in ("bulletList", "orderedList", "listItem"):
        problems.append(f"{path}.content: a {kind!r} node needs at least one item")
    for index, child in enumerate(content):
        _check(child, f"{path}.content[{index}]", child_role, problems, depth + 1)


def _check_text(node: Mapping[str, Any], path: str, *, plain: bool, problems: list[str]) -> None:
    value = node.get("text")
    if not isinstance(value, str) or not value:
        problems.append(f"{path}.text: a text node needs a non-empty 'text' string")
    extra = set(node) - {"type", "text", "marks"}
    if extra:
        problems.append(f"{path}: unknown keys {sorted(extra)} on a text node")
    marks = node.get("marks", [])
    if not isinstance(marks, list):
        problems.append(f"{path}.marks: must be a list")
        return
    if plain and marks:
        problems.append(f"{path}.marks: text in a code block takes no marks")
    kinds = set()
    for index, mark in enumerate(marks):
        mark_type = mark.get("type") if isinstance(mark, Mapping) else None
        if mark_type not in _MARKS:
            problems.append(f"{path}.marks[{index}]: unknown mark {mark_type!r}")
            continue
        kinds.add(mark_type)
        if mark_type == "link" and not (
            isinstance(mark.get("attrs"), Mapping) and isinstance(mark["attrs"].get("href"), str)
        ):
            problems.append(f"{path}.marks[{index}].attrs.href: a link needs an 'href' string")
    if "code" in kinds and kinds - {"code", "link", "annotation"}:
        problems.append(f"{path}.marks: inline code combines only with a link")


def _wiki_blocks(blocks: Iterable[Any], depth: int) -> list[str]:
    out = []
    for block in blocks:
        if isinstance(block, Mapping):
            out.append(_wiki_block(block, depth))
    return out


def _wiki_block(node: Mapping[str, Any], depth: int) -> str:
    kind = node.get("type")
    content = node.get("content") or []
    if kind == "paragraph":
        return _wiki_inline(content)
    if kind == "heading":
        level = (node.get("attrs") or {}).get("level", 1)
        return f"h{level}. {_wiki_inline(content)}"
    if kind in ("bulletList", "orderedList"):
        bullet = ("*" if kind == "bulletList" else "#") * (depth + 1)
        lines = []
        for item in content:
            first = True
            for child in (item.get("content") or []) if isinstance(item, Mapping) else []:
                if not isinstance(child, Mapping):
                    continue
                if child.get("type") in ("bulletList", "orderedList"):
                    lines.append(_wiki_block(child, depth + 1))
                else:
                    rendered = _wiki_block(child, depth)
                    lines.append(f"{bullet} {rendered}" if first else rendered)
                    first = False
        return "\n".join(lines)
    if kind == "codeBlock":
        language = (node.get("attrs") or {}).get("language")
        body = "".join(c.get("text", "") for c in content if isinstance(c, Mapping))
        opener = f"{{code:{language}}}" if language else "{code}"
        return f"{opener}\n{body}\n{{code}}"
    if kind == "blockquote":
        return "{quote}\n" + "\n\n".join(_wiki_blocks(content, depth)) + "\n{quote}"
    if kind == "rule":
        return "----"
    return "\n\n".join(_wiki_blocks(content, depth)) if content else ""


def _wiki_inline(content: Iterable[Any]) -> str:
    parts = []
    for node in content:
        if not isinstance(node, Mapping):
            continue
        kind = node.get("type")
        attrs = node.get("attrs") or {}
        if kind == "text":
            parts.append(_wiki_text(node))
        elif kind == "hardBreak":
            parts.append("\n")
        elif kind == "mention":
            parts.append(f"[~accountid:{attrs.get('id', '')}]")
        elif kind == "emoji":
            parts.append(str(attrs.get("text") or attrs.get("shortName", "")))
        elif kind == "inlineCard":
            parts.append(f"[{attrs.get('url', '')}|{attrs.get('url', '')}|smart-link]")
        else:
            parts.append(str(attrs.get("text", "")))
    return "".join(parts)


def _wiki_text(node: Mapping[str, Any]) -> str:
    value = str(node.get("text", ""))
    href = None
    for mark in node.get("marks") or []:
        mark_type = mark.get("type") if isinstance(mark, Mapping) else None
        if mark_type == "strong":
            value = f"*{value}*"
        elif mark_type == "em":
            value = f"_{value}_"
        elif mark_type == "code":
            value = f"{{{{{value}}}}}"
        elif mark_type == "strike":
            value = f"-{value}-"
        elif mark_type == "underline":
            value = f"+{value}+"
        elif mark_type == "link":
            href = (mark.get("attrs") or {}).get("href")
    return f"[{value}|{href}]" if href else value
