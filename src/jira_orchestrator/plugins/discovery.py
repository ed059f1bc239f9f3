"""Discovery: find the plugin folders in a directory and load each one.

A plugin folder is one that holds ``.claude-plugin/plugin.json``. Loading a folder reads
its manifest and its agents, commands and skills (see `components`). A bad manifest
leaves that plugin out; a bad agent, command or skill file leaves that file out. Either
way the problem is reported (``file: where: reason``) and every other plugin still loads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jira_orchestrator._core.errors import ManifestError
from jira_orchestrator.plugins.components import (
    AgentSpec,
    CommandSpec,
    SkillSpec,
    load_components,
)
from jira_orchestrator.plugins.manifest import MANIFEST_PATH, PluginManifest, load_manifest

if TYPE_CHECKING:
    from jira_orchestrator.plugins.registry import AgentRegistry

__all__ = ["PluginCatalog", "PluginInfo", "discover_plugins", "is_plugin_dir", "load_plugin"]


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """A loaded plugin folder: its manifest and components, and what was wrong with them."""

    root: Path
    manifest: PluginManifest
    agents: tuple[AgentSpec, ...] = ()
    commands: tuple[CommandSpec, ...] = ()
    skills: tuple[SkillSpec, ...] = ()
    problems: tuple[str, ...] = ()
    """Files left out because they are malformed (the plugin itself loaded)."""
    warnings: tuple[str, ...] = ()
    """Files read leniently, stale index entries, and the like."""

    @property
    def name(self) -> str:
        """The plugin id (the manifest's ``name``)."""
        return self.manifest.name

    @property
    def version(self) -> str:
        """The manifest's ``version``."""
        return self.manifest.version

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly summary: name, version, counts, keywords, path and problems."""
        return {
            "name": self.name,
            "version": self.version,
            "description": self.manifest.description,
            "agents": len(self.agents),
            "commands": len(self.commands),
            "skills": len(self.skills),
            "keywords": list(self.manifest.keywords),
            "path": str(self.root),
            "problems": len(self.problems),
        }


@dataclass(frozen=True, slots=True)
class PluginCatalog:
    """Every plugin found under ``root``, sorted by name, with all problems and warnings."""

    root: Path
    plugins: tuple[PluginInfo, ...] = ()
    problems: tuple[str, ...] = ()
    """Plugins left out (bad manifest, duplicate name) and files left out of loaded plugins."""
    warnings: tuple[str, ...] = ()
    _by_name: dict[str, PluginInfo] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self._by_name.update((plugin.name, plugin) for plugin in self.plugins)

    def __iter__(self) -> Iterator[PluginInfo]:
        return iter(self.plugins)

    def __len__(self) -> int:
        return len(self.plugins)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def get(self, name: str) -> PluginInfo | None:
        """The plugin called ``name``, or None."""
        return self._by_name.get(name)

    @property
    def agents(self) -> tuple[AgentSpec, ...]:
        """Every agent of every plugin, in plugin order."""
        return tuple(agent for plugin in self.plugins for agent in plugin.agents)

    def registry(self) -> AgentRegistry:
        """An `AgentRegistry` over these plugins."""
        from jira_orchestrator.plugins.registry import AgentRegistry

        return AgentRegistry(self.plugins)


def is_plugin_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder holding ``.claude-plugin/plugin.json``."""
    return (Path(path) / MANIFEST_PATH).is_file()


def load_plugin(path: str | os.PathLike[str]) -> PluginInfo:
    """Load one plugin folder.

    Raises `ManifestError` when the manifest is missing or invalid. Malformed agent,
    command or skill files do not raise: they are left out and listed in ``problems``.
    """
    root = Path(path)
    manifest = load_manifest(root / MANIFEST_PATH)
    found = load_components(root, manifest.name)
    return PluginInfo(
        root=root,
        manifest=manifest,
        agents=found.agents,
        commands=found.commands,
        skills=found.skills,
        problems=found.problems,
        warnings=found.warnings,
    )


def discover_plugins(root: str | os.PathLike[str]) -> PluginCatalog:
    """Load every plugin folder directly under ``root`` (and ``root`` itself if a plugin).

    Folders without ``.claude-plugin/plugin.json`` and hidden folders are skipped. Never
    raises for a bad plugin; raises `NotADirectoryError` when ``root`` is not a directory.
    """
    base = Path(root)
    if not base.is_dir():
        reason = "does not exist" if not base.exists() else "is not a directory"
        raise NotADirectoryError(f"plugins directory {str(base)!r} {reason}")
    candidates = [base] if is_plugin_dir(base) else []
    candidates += sorted(
        child
        for child in base.iterdir()
        if not child.name.startswith(".") and child.is_dir() and is_plugin_dir(child)
    )
    plugins: dict[str, PluginInfo] = {}
    problems: list[str] = []
    warnings: list[str] = []
    for folder in candidates:
        try:
            plugin = load_plugin(folder)
        except ManifestError as exc:
            problems.extend(exc.problems)
            continue
        problems.extend(plugin.problems)
        warnings.extend(plugin.warnings)
        if plugin.name in plugins:
            problems.append(
                f"{folder / MANIFEST_PATH}: name: plugin {plugin.name!r} is already loaded"
                f" from {plugins[plugin.name].root}; this one is left out"
            )
            continue
        if folder != base and plugin.name != folder.name:
            warnings.append(
                f"{folder / MANIFEST_PATH}: name: {plugin.name!r} differs from the folder"
                f" name {folder.name!r}"
            )
        plugins[plugin.name] = plugin
    return PluginCatalog(
        root=base,
        plugins=tuple(sorted(plugins.values(), key=lambda plugin: plugin.name)),
        problems=tuple(problems),
        warnings=tuple(warnings),
    )
