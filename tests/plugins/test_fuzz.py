"""Arbitrary input never escapes as anything but the documented errors."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from jira_orchestrator import ManifestError
from jira_orchestrator.plugins import (
    FrontMatterError,
    PluginManifest,
    parse_front_matter,
    parse_manifest,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
sections = st.sampled_from(
    ["name", "version", "routing", "communication", "errorHandling", "stateManagement"]
)


def manifest_or_problems(document: Any) -> PluginManifest | list[str]:
    try:
        return parse_manifest(document, source="f.json")
    except ManifestError as error:
        return error.problems


@given(st.dictionaries(sections, json_values, max_size=6))
def test_any_json_object_is_a_manifest_or_a_manifest_error(document: dict[str, Any]) -> None:
    result = manifest_or_problems(document)
    if isinstance(result, PluginManifest):
        assert result.name == document["name"]
    else:
        assert result
        assert all(problem.startswith("f.json: ") for problem in result)


@given(st.binary(max_size=200))
def test_any_bytes_are_a_manifest_or_a_manifest_error(data: bytes) -> None:
    result = manifest_or_problems(data)
    assert isinstance(result, PluginManifest) or result


@given(st.text(max_size=300))
def test_any_front_matter_parses_or_raises_front_matter_error(body: str) -> None:
    outcome: dict[str, Any] | FrontMatterError
    try:
        outcome, _, _ = parse_front_matter(f"---\n{body}\n---\n")
    except FrontMatterError as error:
        outcome = error
    if isinstance(outcome, FrontMatterError):
        assert outcome.where
    else:
        assert isinstance(outcome, dict)
