"""The package's public names, and the layering rule: resilience imports only _core."""

from __future__ import annotations

import ast
from pathlib import Path

import jira_orchestrator.resilience as resilience

PACKAGE = Path(resilience.__file__).parent
ALLOWED = ("jira_orchestrator._core", "jira_orchestrator.resilience")


def test_every_public_name_is_exported_and_importable() -> None:
    assert sorted(resilience.__all__) == sorted(set(resilience.__all__))
    for name in resilience.__all__:
        assert getattr(resilience, name) is not None, name
    # Only identifiers: pytest's assertion rewriting may leave "@py_builtins" behind.
    public = {n for n in vars(resilience) if n.isidentifier() and not n.startswith("_")}
    modules = {"circuit_breaker", "errors", "fallback", "policy", "retry"}
    assert public - modules - set(resilience.__all__) == set()


def test_the_seed_names_are_there() -> None:
    from jira_orchestrator.resilience import CircuitBreaker, RetryPolicy

    assert callable(CircuitBreaker.execute)
    assert callable(CircuitBreaker.get_state)
    assert callable(RetryPolicy.execute)


def test_resilience_imports_nothing_above_its_layer() -> None:
    offenders = []
    for source in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.ImportFrom) and node.level:
                offenders.append(f"{source.name}: relative import")
            for name in names:
                if name.startswith("jira_orchestrator") and not name.startswith(ALLOWED):
                    offenders.append(f"{source.name}: {name}")
    assert offenders == []
