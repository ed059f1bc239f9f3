"""The public names of jira_orchestrator.plugins exist and are documented."""

from __future__ import annotations

import inspect

import jira_orchestrator.plugins as plugins


def test_all_names_exist_and_are_sorted() -> None:
    assert plugins.__all__ == sorted(plugins.__all__, key=lambda n: (not n.isupper(), n))
    for name in plugins.__all__:
        value = getattr(plugins, name)
        assert value is not None, name


def test_design_entry_points_are_exported() -> None:
    for name in ("load_manifest", "discover_plugins", "AgentRegistry", "PluginManifest"):
        assert name in plugins.__all__


def test_public_callables_have_docstrings() -> None:
    for name in plugins.__all__:
        value = getattr(plugins, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert (value.__doc__ or "").strip(), name
