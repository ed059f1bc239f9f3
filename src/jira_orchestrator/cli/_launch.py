"""How ``up`` starts each plugin's process: a ``plugin.py`` with this Python, or the
``runtime`` of its manifest (``node dist/plugin.js`` and the like), in the plugin folder.

A runtime's entry must resolve (symbolic links followed) inside the plugin folder, its
program must be on the PATH the plugin will see, and the files it ``requires`` (its
``node_modules``) must exist; otherwise the plugin is `NotStartable`, with a reason that
says what to do, and ``up`` carries on without it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from jira_orchestrator._core.errors import JiraOrchestratorError
from jira_orchestrator.plugins import PluginInfo

__all__ = ["Launch", "NotStartable", "plan_launch"]


class NotStartable(JiraOrchestratorError):
    """A plugin whose process cannot be started here; the message says why and what to do."""


@dataclass(frozen=True)
class Launch:
    """One plugin's command line and the folder it runs in."""

    name: str
    argv: tuple[str, ...]
    cwd: Path | None
    """The plugin folder for a runtime; None for a ``plugin.py``, which runs where ``up`` does."""
    runtime: str
    """``python``, or the manifest's runtime program (``node``), or ``executable``."""


def plan_launch(plugin: PluginInfo, *, python: str, path: str | None) -> Launch | None:
    """The process of ``plugin``: None for a plugin with nothing to run (agents and
    commands only); raise `NotStartable` when it has a runtime that cannot start here.
    ``path`` is the PATH the plugin process gets (None: the default search path)."""
    root = plugin.root.resolve()
    runtime = plugin.manifest.runtime
    if runtime is None:
        entry = root / "plugin.py"
        if not entry.is_file():
            return None
        return Launch(plugin.name, (python, str(entry)), None, "python")
    entry = (root / runtime.entry).resolve()
    if not entry.is_relative_to(root):
        raise NotStartable(f"runtime.entry {runtime.entry!r} resolves outside its folder ({entry})")
    setup = f" (run `{runtime.setup}` in {root})" if runtime.setup else ""
    for needed in (*runtime.requires, runtime.entry):
        if not (root / needed).exists():
            raise NotStartable(f"{needed} is missing{setup}")
    if not entry.is_file():
        raise NotStartable(f"runtime.entry {runtime.entry!r} is not a file")
    if runtime.command is None:
        if not os.access(entry, os.X_OK):
            raise NotStartable(f"runtime.entry {runtime.entry!r} is not executable (chmod +x)")
        return Launch(plugin.name, (str(entry),), root, "executable")
    program = shutil.which(runtime.command, path=path)
    if program is None:
        raise NotStartable(f"{runtime.command} is not installed (not found on PATH)")
    return Launch(plugin.name, (program, str(entry)), root, runtime.command)
