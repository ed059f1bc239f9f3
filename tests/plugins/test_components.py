"""Agent, command and skill files: front matter read as a person would, bad files reported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jira_orchestrator.plugins import (
    FrontMatterError,
    load_components,
    parse_front_matter,
)


def test_plain_front_matter() -> None:
    front, body, warnings = parse_front_matter("---\nname: x\ntags: [a, b]\n---\n# Title\n")
    assert front == {"name": "x", "tags": ["a", "b"]}
    assert body == "# Title\n"
    assert warnings == []


def test_no_front_matter() -> None:
    assert parse_front_matter("# Just a heading\n") == ({}, "# Just a heading\n", [])
    assert parse_front_matter("") == ({}, "", [])


def test_empty_front_matter_and_bom() -> None:
    assert parse_front_matter("\ufeff---\n---\nbody") == ({}, "body", [])


def test_unquoted_colon_is_read_as_text_with_a_warning() -> None:
    text = "---\ndescription: Task CRUD: add, edit, or block a task\nmodel: sonnet\n---\n"
    front, _, warnings = parse_front_matter(text)
    assert front == {"description": "Task CRUD: add, edit, or block a task", "model": "sonnet"}
    [warning] = warnings
    assert "not strict YAML" in warning
    assert "line 2" in warning


def test_lenient_reading_keeps_lists_and_numbers() -> None:
    text = "---\nname: a\ndescription: Triggers on: x, y\nmaxTurns: 20\ntools:\n  - Read\n---\n"
    front, _, _ = parse_front_matter(text)
    assert front == {
        "name": "a",
        "description": "Triggers on: x, y",
        "maxTurns": 20,
        "tools": ["Read"],
    }


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        ("---\nname: x\n# never closed\n", "line 1", "never closed"),
        ("---\n- a\n- b\n---\n", "front matter", "not a list"),
        ("---\njust text\n---\n", "front matter", "not text"),
        ("---\nname: [unclosed\n---\n", "line 3", "invalid YAML"),
        ("---\nname: x\n  bad: indent\n---\n", "line 3", "invalid YAML"),
    ],
)
def test_malformed_front_matter(text: str, where: str, reason: str) -> None:
    with pytest.raises(FrontMatterError) as caught:
        parse_front_matter(text)
    assert caught.value.where == where
    assert reason in caught.value.reason
    assert isinstance(caught.value, ValueError)


def make(root: Path, files: dict[str, str | bytes]) -> Path:
    for relative, content in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    return root


def test_fields_are_normalised(tmp_path: Path) -> None:
    root = make(
        tmp_path,
        {
            "agents/helper.md": (
                "---\nname: demo:helper\ndescription: Helps.\nmodel: sonnet\n"
                "tools: Read, Write, Read\ntags:\n  - python\ncategory: backend\n"
                "capabilities: [api-design]\nglobs: ['**/*.py']\ncreated: 2025-01-02\n---\nBody\n"
            ),
        },
    )
    [agent] = load_components(root, "demo").agents
    assert agent.name == "helper"  # the "<plugin>:" prefix is dropped
    assert agent.qualified_name == "demo:helper"
    assert agent.path == "agents/helper.md"
    assert agent.tools == ("Read", "Write")
    assert agent.tags == ("python",)
    assert agent.category == "backend"
    assert agent.capabilities == ("api-design",)
    assert agent.context_patterns == ("**/*.py",)
    assert agent.metadata["created"] == "2025-01-02"  # JSON-friendly
    assert json.loads(agent.model_dump_json())["name"] == "helper"


def test_names_and_descriptions_fall_back(tmp_path: Path) -> None:
    root = make(
        tmp_path,
        {
            "commands/deploy.md": "# Deploy\n\nShips the build to staging.\n",
            "skills/k8s/SKILL.md": "```\ncode\n```\n# Kubernetes\n",
            "agents/intent-only.md": "---\nintent: Reviews pull requests\n---\n",
        },
    )
    found = load_components(root, "demo")
    [command] = found.commands
    assert (command.name, command.description) == ("deploy", "Ships the build to staging.")
    [skill] = found.skills
    assert (skill.name, skill.description) == ("k8s", "Kubernetes")
    [agent] = found.agents
    assert (agent.name, agent.description) == ("intent-only", "Reviews pull requests")
    assert found.problems == ()


def test_readme_without_front_matter_is_not_an_agent(tmp_path: Path) -> None:
    root = make(tmp_path, {"agents/README.md": "# Agents\n", "agents/a.md": "---\nname: a\n---\n"})
    assert [a.name for a in load_components(root, "demo").agents] == ["a"]


def test_index_json_fills_gaps_both_shapes(tmp_path: Path) -> None:
    entries: dict[str, Any] = {
        "entries": [
            {"name": "demo:a", "intent": "Does A", "tags": ["x"], "path": "agents/a.md"},
        ]
    }
    root = make(
        tmp_path,
        {
            "agents/a.md": "# A\n",
            "agents/index.json": json.dumps(entries),
            "commands/go.md": "# Go\n",
            "commands/index.json": json.dumps({"commands": [{"name": "demo:go", "file": "go.md"}]}),
        },
    )
    found = load_components(root, "demo")
    [agent] = found.agents
    assert (agent.name, agent.intent, agent.tags) == ("a", "Does A", ("x",))
    [command] = found.commands
    assert command.name == "go"
    assert found.problems == ()
    assert found.warnings == ()


def test_stale_and_broken_indexes(tmp_path: Path) -> None:
    root = make(
        tmp_path,
        {
            "agents/a.md": "---\nname: a\n---\n",
            "agents/index.json": json.dumps({"entries": [{"name": "gone", "path": "agents/g.md"}]}),
            "commands/c.md": "---\nname: c\n---\n",
            "commands/index.json": "{ not json",
        },
    )
    found = load_components(root, "demo")
    assert [a.name for a in found.agents] == ["a"]
    assert [c.name for c in found.commands] == ["c"]  # a broken index does not stop the files
    [problem] = found.problems
    assert problem.startswith(f"{root / 'commands' / 'index.json'}: line 1, column 3: invalid JSON")
    [warning] = found.warnings
    assert "agents/g.md: listed in the index but not found" in warning


def test_bad_files_are_reported_and_skipped(tmp_path: Path) -> None:
    root = make(
        tmp_path,
        {
            "agents/good.md": "---\nname: good\n---\n",
            "agents/unclosed.md": "---\nname: unclosed\n",
            "agents/listy.md": "---\nname: [a, b]\n---\n",
            "agents/binary.md": b"---\nname: \xff\xfe\n---\n",
            "commands/broken.md": "---\nname: x\n  bad: indent\n---\n",
            "skills/s/SKILL.md": "---\n- just\n- a list\n---\n",
        },
    )
    found = load_components(root, "demo")
    assert [a.name for a in found.agents] == ["good"]
    assert found.commands == ()
    assert found.skills == ()
    by_file = {problem.split(": ", 1)[0]: problem for problem in found.problems}
    assert set(by_file) == {
        str(root / "agents" / "unclosed.md"),
        str(root / "agents" / "listy.md"),
        str(root / "agents" / "binary.md"),
        str(root / "commands" / "broken.md"),
        str(root / "skills" / "s" / "SKILL.md"),
    }
    assert "never closed" in by_file[str(root / "agents" / "unclosed.md")]
    assert "name: must be text, not a list" in by_file[str(root / "agents" / "listy.md")]
    assert "not UTF-8" in by_file[str(root / "agents" / "binary.md")]
    assert "line 3: invalid YAML" in by_file[str(root / "commands" / "broken.md")]


def test_duplicate_names_warn(tmp_path: Path) -> None:
    root = make(
        tmp_path, {"agents/a.md": "---\nname: x\n---\n", "agents/b.md": "---\nname: x\n---\n"}
    )
    found = load_components(root, "demo")
    assert len(found.agents) == 2
    [warning] = found.warnings
    assert "also defined by agents/a.md" in warning


def test_missing_folders_give_nothing(tmp_path: Path) -> None:
    found = load_components(tmp_path, "demo")
    assert (found.agents, found.commands, found.skills, found.problems) == ((), (), (), ())


def test_components_are_hashable_by_identity(tmp_path: Path) -> None:
    root = make(tmp_path, {"agents/a.md": "---\nname: a\nextra: {nested: [1]}\n---\n"})
    first = load_components(root, "demo").agents[0]
    again = load_components(root, "demo").agents[0]
    assert first == again
    assert len({first, again}) == 1


@pytest.mark.parametrize(
    ("front", "reason"),
    [
        ("me: &a [*a]", "nested deeper than"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
            "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n"
            "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d]",
            "more than 10000 values",
        ),
    ],
)
def test_alias_bombs_are_malformed(tmp_path: Path, front: str, reason: str) -> None:
    root = make(tmp_path, {"agents/bomb.md": f"---\nname: bomb\n{front}\n---\n"})
    found = load_components(root, "demo")
    assert found.agents == ()
    [problem] = found.problems
    assert reason in problem
