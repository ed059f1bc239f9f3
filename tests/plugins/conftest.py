"""Fixtures for the plugins tests: the real corpus and a factory for plugin folders."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from jira_orchestrator.plugins import PluginCatalog, discover_plugins

CORPUS = Path(
    os.environ.get(
        "JIRA_ORCHESTRATOR_CORPUS",
        Path(__file__).resolve().parents[3] / "shared" / "corpus" / "claude-plugins",
    )
)

WritePlugin = Callable[..., Path]


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The 35 real plugins (../shared/corpus/claude-plugins, or $JIRA_ORCHESTRATOR_CORPUS)."""
    if not CORPUS.is_dir():
        pytest.skip(f"plugin corpus not found at {CORPUS}")
    return CORPUS


@pytest.fixture(scope="session")
def corpus_catalog(corpus: Path) -> PluginCatalog:
    return discover_plugins(corpus)


@pytest.fixture
def write_plugin(tmp_path: Path) -> WritePlugin:
    """Write a plugin folder under tmp_path/plugins and return its path.

    ``manifest`` is a mapping (dumped as JSON) or raw text; ``files`` maps paths inside the
    plugin folder to their text.
    """

    def write(
        name: str = "demo",
        manifest: Mapping[str, Any] | str | None = None,
        files: Mapping[str, str | bytes] | None = None,
    ) -> Path:
        root = tmp_path / "plugins" / name
        (root / ".claude-plugin").mkdir(parents=True, exist_ok=True)
        if manifest is None:
            manifest = {"name": name, "version": "1.0.0"}
        text = manifest if isinstance(manifest, str) else json.dumps(manifest, indent=2)
        (root / ".claude-plugin" / "plugin.json").write_text(text, encoding="utf-8")
        for relative, content in (files or {}).items():
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        return root

    return write
