"""Every package's public surface: each name of its ``__all__`` importable and documented,
and every exception class of the package under `JiraOrchestratorError`."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import jira_orchestrator
from jira_orchestrator import JiraOrchestratorError

PACKAGES = [
    "jira_orchestrator",
    *sorted(
        info.name
        for info in pkgutil.walk_packages(jira_orchestrator.__path__, "jira_orchestrator.")
        if info.ispkg and not any(part.startswith("_") for part in info.name.split("."))
    ),
]
OPTIONAL = ("jira_orchestrator.web", "jira_orchestrator.integrations")  # the web extra


def _load(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as error:  # pragma: no cover - only without an optional extra
        if name.startswith(OPTIONAL):
            pytest.skip(f"{name} needs an optional extra: {error}")
        raise


def _exports() -> list[tuple[str, str]]:
    found = []
    for package in PACKAGES:
        try:
            module = importlib.import_module(package)
        except ImportError:  # pragma: no cover
            continue
        found += [(package, name) for name in getattr(module, "__all__", [])]
    return found


def _modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(jira_orchestrator.__path__, "jira_orchestrator."):
        if info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_declares_its_public_names(package: str) -> None:
    module = _load(package)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list | tuple), f"{package} has no __all__"
    assert len(set(exported)) == len(exported), f"{package}.__all__ names a name twice"
    assert module.__doc__, f"{package} has no docstring"


@pytest.mark.parametrize(("package", "name"), _exports())
def test_every_exported_name_is_importable_and_documented(package: str, name: str) -> None:
    module = _load(package)
    assert hasattr(module, name), f"{package}.__all__ names {name!r}, which it lacks"
    value = getattr(module, name)
    if inspect.isclass(value) or inspect.isfunction(value):
        assert inspect.getdoc(value), f"{package}.{name} has no docstring"


@pytest.mark.parametrize("module_name", _modules())
def test_every_public_exception_is_a_jira_orchestrator_error(module_name: str) -> None:
    try:
        module = importlib.import_module(module_name)
    except ImportError:  # pragma: no cover - an optional extra
        pytest.skip(f"{module_name} needs an optional extra")
    for name, value in vars(module).items():
        if (
            inspect.isclass(value)
            and issubclass(value, BaseException)
            and value.__module__ == module_name
            and not name.startswith("_")  # private control flow, never raised to callers
        ):
            assert issubclass(value, JiraOrchestratorError), (
                f"{module_name}.{name} is not a JiraOrchestratorError"
            )
