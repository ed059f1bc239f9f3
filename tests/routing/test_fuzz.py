"""Arbitrary input never crashes the router: it routes or says what is wrong."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jira_orchestrator.routing import (
    BatchItem,
    BatchProblem,
    InvalidRequest,
    Router,
    RoutingRequest,
    adf_to_text,
    read_batch,
)

T = TypeVar("T")


def _attempt(function: Callable[[], T]) -> tuple[T | None, InvalidRequest | None]:
    """The result, or the `InvalidRequest` raised (any other error fails the test)."""
    try:
        return function(), None
    except InvalidRequest as exc:
        return None, exc


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def small_router(tmp_path_factory: pytest.TempPathFactory) -> Router:
    root = tmp_path_factory.mktemp("plugins")
    for name, description in [("alpha", "Kubernetes Helm charts"), ("beta", "React forms")]:
        (root / name / ".claude-plugin").mkdir(parents=True)
        (root / name / ".claude-plugin" / "plugin.json").write_text(
            json.dumps({"name": name, "description": description})
        )
    return Router.from_directory(root)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300), files=st.lists(st.text(max_size=40), max_size=3))
def test_any_text_routes_or_is_refused(small_router: Router, text: str, files: list[str]) -> None:
    decision, error = _attempt(lambda: small_router.route(text, files=files))
    if decision is None:
        assert "empty request" in str(error)
        return
    assert decision.primary_plugin in (None, "alpha", "beta")
    json.dumps(decision.to_dict())
    assert decision.explain()


@settings(max_examples=150)
@given(document=json_values)
def test_any_json_as_adf_converts_or_names_the_node(document: Any) -> None:
    text, error = _attempt(lambda: adf_to_text(document))
    if text is None:
        assert error is not None
        assert error.where.startswith("description: ")


@settings(max_examples=150)
@given(issue=json_values)
def test_any_json_as_a_jira_issue_builds_or_names_the_field(issue: Any) -> None:
    request, error = _attempt(lambda: RoutingRequest.from_jira(issue))
    if request is None:
        assert error is not None
        assert error.where
    else:
        assert request.text.strip() or request.files


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(st.text(max_size=60), json_values.map(json.dumps)), max_size=6))
@example(lines=["0", "\x00"])  # a NUL byte below a text line: that line's problem
def test_any_batch_file_yields_items_or_numbered_problems(tmp_path: Path, lines: list[str]) -> None:
    path = tmp_path / "batch.jsonl"
    text = "\n".join(line.replace("\n", " ").replace("\r", " ") for line in lines)
    path.write_text(text)
    # The first line that is not blank decides whether the file is text: a NUL byte there
    # refuses the whole file at once; a NUL byte further down is that line's problem.
    first = next((line for line in text.split("\n") if line.strip() or "\x00" in line), "")
    if "\x00" in first:
        with pytest.raises(InvalidRequest, match="not a text file"):
            list(read_batch(path))
        return
    for entry in read_batch(path):
        assert isinstance(entry, BatchItem | BatchProblem)
        assert entry.line >= 1
        if "\x00" in text.split("\n")[entry.line - 1]:
            assert isinstance(entry, BatchProblem)
            assert "NUL" in entry.reason
