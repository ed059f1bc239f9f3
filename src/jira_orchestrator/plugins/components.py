"""Agents, commands and skills: Markdown files with YAML front matter, and their indexes.

A plugin folder holds ``agents/*.md``, ``commands/*.md`` and ``skills/*/SKILL.md``. Each
file may open with YAML front matter between ``---`` lines (``name``, ``description``,
``intent``, ``tags``, ``model``, ``tools``, ...). Real front matter is imperfect, so the
parser reads it the way a person would:

- an unquoted value holding ``: `` (``description: Task CRUD: add, edit``) is read as
  text, with a warning, instead of failing the whole file;
- ``tools: Read, Write`` is the list ``["Read", "Write"]``;
- a file without front matter is named after the file (a skill after its folder) and
  described by its first paragraph.

A file is malformed, and reported as ``file: where: reason`` without stopping the other
files, when its front matter is never closed, is not a mapping, is not YAML even when
read leniently, or has a ``name`` that is not text; also when it is not UTF-8.
``agents/index.json`` and ``commands/index.json`` fill in what a file leaves out.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field

from jira_orchestrator._core.errors import JiraOrchestratorError

__all__ = [
    "AgentSpec",
    "CommandSpec",
    "Component",
    "ComponentKind",
    "ComponentLoad",
    "FrontMatterError",
    "SkillSpec",
    "load_components",
    "parse_front_matter",
]

ComponentKind = Literal["agent", "command", "skill"]

_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_KEY_LINE = re.compile(r"^(?P<key>[A-Za-z_][\w.-]*)[ \t]*:[ \t]+(?P<value>\S.*?)[ \t]*$")
# A plain YAML scalar cannot hold ': ' or ' #', nor start with these characters.
_NEEDS_QUOTES = re.compile(r": | #|^[`@%]")
_QUOTED_OR_FLOW = ("'", '"', "[", "{", "|", ">", "&", "*", "!")


class FrontMatterError(JiraOrchestratorError, ValueError):
    """Front matter that cannot be read even leniently; ``where`` locates it in the file."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")


class Component(BaseModel):
    """An agent, command or skill of a plugin, read from its Markdown file."""

    model_config = ConfigDict(frozen=True)

    kind: ClassVar[ComponentKind]

    plugin: str
    name: str
    path: str = Field(description="the file, relative to the plugin folder, with '/'")
    description: str = ""
    intent: str | None = None
    category: str | None = None
    model: str | None = None
    tags: tuple[str, ...] = ()
    keywords: tuple[str, ...] = Field(default=(), description="keywords and trigger phrases")
    capabilities: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    context_patterns: tuple[str, ...] = Field(default=(), description="file globs (``globs``)")
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="the front matter as written, and index fields"
    )

    @property
    def qualified_name(self) -> str:
        """``<plugin>:<name>``, unique across plugins."""
        return f"{self.plugin}:{self.name}"

    def __hash__(self) -> int:
        # ``metadata`` is a dict, so the generated hash would fail; the file identifies it.
        return hash((type(self).kind, self.plugin, self.path, self.name))


class AgentSpec(Component):
    """An agent (``agents/<name>.md``)."""

    kind: ClassVar[ComponentKind] = "agent"


class CommandSpec(Component):
    """A slash command (``commands/<name>.md``)."""

    kind: ClassVar[ComponentKind] = "command"


class SkillSpec(Component):
    """A skill (``skills/<name>/SKILL.md``)."""

    kind: ClassVar[ComponentKind] = "skill"


C = TypeVar("C", bound=Component)


class ComponentLoad(BaseModel):
    """What `load_components` found in one plugin folder."""

    model_config = ConfigDict(frozen=True)

    agents: tuple[AgentSpec, ...] = ()
    commands: tuple[CommandSpec, ...] = ()
    skills: tuple[SkillSpec, ...] = ()
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def parse_front_matter(text: str) -> tuple[dict[str, Any], str, list[str]]:
    """Split Markdown into (front matter, body, warnings).

    No front matter gives an empty mapping. Raises `FrontMatterError` when the front
    matter is malformed; a warning says when it was only readable leniently.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip() != "---":
        return {}, text, []
    for index in range(1, len(lines)):
        if lines[index].rstrip() in ("---", "..."):
            block = "".join(lines[1:index])
            body = "".join(lines[index + 1 :])
            break
    else:
        raise FrontMatterError("line 1", "front matter opened with '---' is never closed")
    warnings: list[str] = []
    try:
        data = yaml.load(block, Loader=_LOADER)
    except yaml.YAMLError as exc:
        data = _load_leniently(block, exc)
        warnings.append(f"not strict YAML ({_yaml_reason(exc)}); read leniently")
    if data is None:
        return {}, body, warnings
    if not isinstance(data, dict):
        raise FrontMatterError(
            "front matter", f"must be a mapping of 'key: value' lines, not {_kind(data)}"
        )
    return {str(key): value for key, value in data.items()}, body, warnings


def _load_leniently(block: str, error: yaml.YAMLError) -> Any:
    # Quote the values a person reads as text but YAML rejects ("a: b: c"), then retry.
    patched: list[str] = []
    for line in block.splitlines():
        match = _KEY_LINE.match(line)
        if match:
            value = match.group("value")
            if not value.startswith(_QUOTED_OR_FLOW) and _NEEDS_QUOTES.search(value):
                line = f"{match.group('key')}: {json.dumps(value)}"
        patched.append(line)
    try:
        return yaml.load("\n".join(patched), Loader=_LOADER)
    except yaml.YAMLError:
        raise FrontMatterError(_yaml_where(error), f"invalid YAML: {_yaml_reason(error)}") from None


def _yaml_where(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    # +2: marks are 0-based and the block starts after the opening '---' line.
    return f"line {mark.line + 2}" if mark is not None else "front matter"


def _yaml_reason(error: yaml.YAMLError) -> str:
    problem = getattr(error, "problem", None)
    mark = getattr(error, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 2}, column {mark.column + 1}"
    return str(problem or error).splitlines()[0]


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    return type(value).__name__


def load_components(root: Path, plugin: str) -> ComponentLoad:
    """Read the agents, commands and skills of the plugin folder ``root``.

    Never raises for a bad file: each is reported in ``problems`` (and left out) or, when
    it could be read leniently, in ``warnings``.
    """
    problems: list[str] = []
    warnings: list[str] = []
    agents = _load_kind(
        AgentSpec, root, plugin, sorted(_md_files(root / "agents")), problems, warnings
    )
    commands = _load_kind(
        CommandSpec, root, plugin, sorted(_md_files(root / "commands")), problems, warnings
    )
    skill_files = sorted((root / "skills").glob("*/SKILL.md")) if (root / "skills").is_dir() else []
    skills = _load_kind(SkillSpec, root, plugin, skill_files, problems, warnings)
    return ComponentLoad(
        agents=tuple(agents),
        commands=tuple(commands),
        skills=tuple(skills),
        problems=tuple(problems),
        warnings=tuple(warnings),
    )


def _md_files(folder: Path) -> Iterable[Path]:
    if not folder.is_dir():
        return ()
    return (path for path in folder.glob("*.md") if path.is_file())


def _load_kind(
    cls: type[C],
    root: Path,
    plugin: str,
    files: list[Path],
    problems: list[str],
    warnings: list[str],
) -> list[C]:
    index = _read_index(root, cls.kind, problems, warnings)
    loaded: list[C] = []
    seen: dict[str, str] = {}
    for file in files:
        relative = file.relative_to(root).as_posix()
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            problems.append(f"{file}: byte {exc.start}: not UTF-8 text ({exc.reason})")
            continue
        except OSError as exc:
            problems.append(f"{file}: $: cannot read: {exc.strerror or exc}")
            continue
        try:
            front, body, notes = parse_front_matter(text)
        except FrontMatterError as exc:
            problems.append(f"{file}: {exc.where}: {exc.reason}")
            continue
        warnings.extend(f"{file}: front matter: {note}" for note in notes)
        if not front and cls.kind != "skill" and file.name.lower() == "readme.md":
            continue  # a folder's README, not a component
        try:
            component = _build(cls, plugin, relative, file, front, body, index.pop(relative, {}))
        except FrontMatterError as exc:
            problems.append(f"{file}: {exc.where}: {exc.reason}")
            continue
        if component.name in seen:
            warnings.append(
                f"{file}: name: {cls.kind} {component.name!r} is also defined by"
                f" {seen[component.name]}; both are kept"
            )
        seen.setdefault(component.name, relative)
        loaded.append(component)
    for relative in sorted(index):
        warnings.append(
            f"{root / cls.kind}s/index.json: {relative}: listed in the index but not found"
        )
    return loaded


def _read_index(
    root: Path, kind: ComponentKind, problems: list[str], warnings: list[str]
) -> dict[str, dict[str, Any]]:
    """``<kind>s/index.json`` as {relative path: entry}; both shapes seen in the wild."""
    folder = f"{kind}s"
    file = root / folder / "index.json"
    if kind == "skill" or not file.is_file():
        return {}
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        problems.append(f"{file}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}")
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{file}: $: cannot read: {exc}")
        return {}
    entries: object = None
    if isinstance(document, dict):
        entries = document.get("entries", document.get(folder))
    elif isinstance(document, list):
        entries = document
    if not isinstance(entries, list):
        problems.append(f"{file}: $: expected a list under 'entries' or '{folder}'")
        return {}
    found: dict[str, dict[str, Any]] = {}
    for position, entry in enumerate(entries):
        where = f"{file}: entries[{position}]"
        if not isinstance(entry, dict):
            warnings.append(f"{where}: not an object; ignored")
            continue
        target = entry.get("path") or entry.get("file")
        if not isinstance(target, str) or not target:
            warnings.append(f"{where}: no 'path' or 'file'; ignored")
            continue
        relative = target if "/" in target else f"{folder}/{target}"
        found[relative.removeprefix("./")] = entry
    return found


def _build(
    cls: type[C],
    plugin: str,
    relative: str,
    file: Path,
    front: Mapping[str, Any],
    body: str,
    entry: Mapping[str, Any],
) -> C:
    def pick(*keys: str) -> Any:
        for key in keys:
            for source in (front, entry):
                value = source.get(key)
                if value is not None and value != "" and value != []:
                    return value
        return None

    raw_name = pick("name")
    if raw_name is not None and not isinstance(raw_name, str | int | float):
        raise FrontMatterError("name", f"must be text, not {_kind(raw_name)}")
    fallback = file.parent.name if cls.kind == "skill" else file.stem
    name = str(raw_name).strip() if raw_name is not None else fallback
    name = name.removeprefix(f"{plugin}:") or fallback
    intent = _text(pick("intent"))
    description = _text(pick("description")) or intent or _first_paragraph(body)
    categories = _strings(pick("categories"))
    metadata = {**{k: v for k, v in entry.items() if k not in ("path", "file")}, **front}
    return cls(
        plugin=plugin,
        name=name,
        path=relative,
        description=description,
        intent=intent,
        category=_text(pick("category")) or (categories[0] if categories else None),
        model=_text(pick("model")),
        tags=_strings(pick("tags")),
        keywords=_strings(pick("keywords"))
        + _strings(pick("triggers"))
        + _strings(pick("trigger_phrases", "trigger-phrases")),
        capabilities=_strings(pick("capabilities")),
        tools=_strings(pick("tools", "allowed-tools", "allowed_tools", "allowedTools")),
        context_patterns=_strings(pick("globs", "contextPatterns", "context_patterns")),
        metadata=_plain(metadata),
    )


def _text(value: object) -> str | None:
    """A scalar as text; a list of scalars joined; anything else is ignored."""
    if value is None:
        return None
    if isinstance(value, list):
        parts = [str(item).strip() for item in value if _is_scalar(item)]
        return ", ".join(part for part in parts if part) or None
    if _is_scalar(value):
        return " ".join(str(value).split()) or None
    return None


def _strings(value: object) -> tuple[str, ...]:
    """A list of scalars, or comma-separated text (``tools: Read, Write``), as strings."""
    if value is None:
        return ()
    if isinstance(value, str):
        items: list[object] = list(value.split(","))
    elif isinstance(value, list | tuple):
        items = list(value)
    elif _is_scalar(value):
        items = [value]
    else:
        return ()
    out = (str(item).strip() for item in items if _is_scalar(item))
    return tuple(dict.fromkeys(item for item in out if item))


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool | datetime.date)


_MAX_VALUES = 10_000
_MAX_DEPTH = 50


def _plain(value: Any) -> Any:
    """Front matter made JSON-friendly: dates become ISO text, keys strings.

    YAML aliases can make a tiny file expand without bound or refer to itself; both are
    malformed here (`FrontMatterError`), not a hang or a crash.
    """
    budget = [_MAX_VALUES]

    def convert(item: Any, depth: int) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise FrontMatterError("front matter", f"more than {_MAX_VALUES} values")
        if depth > _MAX_DEPTH:
            raise FrontMatterError(
                "front matter", f"nested deeper than {_MAX_DEPTH} levels (a recursive alias?)"
            )
        if isinstance(item, dict):
            return {str(key): convert(inner, depth + 1) for key, inner in item.items()}
        if isinstance(item, list | tuple):
            return [convert(inner, depth + 1) for inner in item]
        if isinstance(item, datetime.date):
            return item.isoformat()
        return item

    return convert(value, 0)


def _first_paragraph(body: str) -> str:
    heading = ""
    in_code = False
    for line in body.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            in_code = not in_code
            continue
        if in_code or not stripped:
            continue
        if stripped.startswith("#"):
            heading = heading or stripped.lstrip("#").strip()
            continue
        text = stripped.lstrip(">").strip()
        if text:
            return text[:300]
    return heading
