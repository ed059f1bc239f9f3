"""Describing RPC methods from their signatures, before any call is made."""

from __future__ import annotations

import pytest

from jira_orchestrator.messagebus.rpc import method_from_function


def test_type_hints_that_cannot_be_resolved_are_refused_at_registration() -> None:
    def handler(issue: NotDefinedAnywhere) -> None:  # type: ignore[name-defined]  # noqa: F821
        return None

    with pytest.raises(TypeError, match="cannot read the type hints of 'handle_issue'"):
        method_from_function("handle_issue", handler)


def test_a_function_with_kwargs_ignores_unnamed_parameters() -> None:
    def handler(name: str, **_: object) -> str:
        return name

    method = method_from_function("greet", handler)
    assert method.bind({"name": "Ada", "extra": 1}) == ([], {"name": "Ada"})


def test_not_a_function_is_refused() -> None:
    with pytest.raises(TypeError, match="callable"):
        method_from_function("x", "not a function")  # type: ignore[arg-type]
