"""The manifest's ``runtime``: how ``up`` starts a plugin in another language, checked
before anything runs (paths stay inside the plugin folder, the program is a name on PATH)."""

from __future__ import annotations

from typing import Any

import pytest

from jira_orchestrator import ManifestError
from jira_orchestrator.plugins import manifest_json_schema, parse_manifest


def test_a_runtime_is_read_with_its_defaults() -> None:
    manifest = parse_manifest(
        {"name": "notes", "runtime": {"command": "node", "entry": "dist/plugin.js"}}
    )
    assert manifest.runtime is not None
    assert (manifest.runtime.command, manifest.runtime.entry) == ("node", "dist/plugin.js")
    assert manifest.runtime.requires == []
    assert manifest.runtime.setup is None
    assert parse_manifest({"name": "py"}).runtime is None  # a plugin.py, or nothing to run
    assert "runtime" in manifest_json_schema()["properties"]


@pytest.mark.parametrize(
    ("runtime", "problem"),
    [
        ({"command": "node"}, "runtime.entry: required field is missing"),
        (
            {"entry": "../other/plugin.js"},
            "runtime.entry: must stay inside the plugin folder ('..' is refused), not "
            "'../other/plugin.js'",
        ),
        (
            {"entry": "/usr/lib/node/plugin.js"},
            "runtime.entry: must be a path relative to the plugin folder, not "
            "'/usr/lib/node/plugin.js'",
        ),
        ({"entry": "~/plugin.js"}, "runtime.entry: must be a path relative to the plugin"),
        ({"entry": "C:\\\\plugin.js"}, "runtime.entry: must be a path relative to the plugin"),
        (
            {"entry": "a.js", "requires": ["node_modules/../../x"]},
            "runtime.requires[0]: must stay inside the plugin folder",
        ),
        (
            {"command": "/usr/bin/node", "entry": "a.js"},
            "runtime.command: must be the name of a program found on PATH (such as 'node'), "
            "not '/usr/bin/node'",
        ),
        ({"command": "node --inspect", "entry": "a.js"}, "runtime.command: must be the name"),
        ({"entry": ""}, "runtime.entry: String should have at least 1 character"),
    ],
)
def test_a_runtime_that_would_run_something_else_is_refused_naming_where(
    runtime: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ManifestError) as error:
        parse_manifest({"name": "notes", "runtime": runtime}, source="plugin.json")
    assert [p for p in error.value.problems if p.startswith(f"plugin.json: {problem}")], (
        error.value.problems
    )
