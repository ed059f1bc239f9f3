"""Every public name of the orchestrator package is exported, documented and importable."""

from __future__ import annotations

import jira_orchestrator.orchestrator as orchestrator
from jira_orchestrator.cli import dlq
from jira_orchestrator.orchestrator import chains, deadletters, errors, sagastore, workflows


def test_all_is_complete_and_sorted() -> None:
    assert len(set(orchestrator.__all__)) == len(orchestrator.__all__)
    for name in orchestrator.__all__:
        assert hasattr(orchestrator, name), name
    for module in (chains, deadletters, errors, sagastore, workflows):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
            assert name in orchestrator.__all__, f"{module.__name__}.{name} is not re-exported"
    assert dlq.__all__ == ["dlq_app"]


def test_errors_sit_under_the_root_error() -> None:
    from jira_orchestrator import JiraOrchestratorError

    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, JiraOrchestratorError), name
        assert cls.__doc__, name
    assert issubclass(errors.WorkflowError, ValueError)
    assert issubclass(errors.StepTimeout, TimeoutError)
    assert issubclass(errors.DeadLetterNotFound, LookupError)


def test_layering_orchestrator_does_not_import_cli_or_routing() -> None:
    import ast
    from pathlib import Path

    root = Path(orchestrator.__file__).parent
    mine = ["__init__", "chains", "deadletters", "errors", "sagastore", "workflows"]
    for name in mine:
        tree = ast.parse((root / f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(
                    ("jira_orchestrator.cli", "jira_orchestrator.routing", "jira_orchestrator.web")
                ), f"{name}.py imports {node.module}"
