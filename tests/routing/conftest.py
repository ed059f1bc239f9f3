"""Fixtures for the routing tests: the real corpus, a router over it, and small ecosystems."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from jira_orchestrator.routing import Router

CORPUS = Path(
    os.environ.get(
        "JIRA_ORCHESTRATOR_CORPUS",
        Path(__file__).resolve().parents[3] / "shared" / "corpus" / "claude-plugins",
    )
)
LABELLED = Path(__file__).resolve().parents[1] / "data" / "routing_labelled.jsonl"
HOLDOUT = Path(__file__).resolve().parents[1] / "data" / "routing_holdout.jsonl"
BLIND = Path(__file__).resolve().parents[1] / "data" / "routing_blind.jsonl"
# Written by someone who never saw the router, its code or its output: only the corpus.
INDEPENDENT = Path(__file__).resolve().parents[1] / "data" / "routing_independent.jsonl"
# A second such set, written the same way, to check a change once before it is kept.
FRESH = Path(__file__).resolve().parents[1] / "data" / "routing_fresh.jsonl"
VALIDATION = Path(__file__).resolve().parents[1] / "data" / "routing_validation.jsonl"
CHECK = Path(__file__).resolve().parents[1] / "data" / "routing_check.jsonl"
CONFIRM = Path(__file__).resolve().parents[1] / "data" / "routing_confirm.jsonl"

WritePlugin = Callable[..., Path]


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The 35 real plugins (../shared/corpus/claude-plugins, or $JIRA_ORCHESTRATOR_CORPUS)."""
    if not CORPUS.is_dir():
        pytest.skip(f"plugin corpus not found at {CORPUS}")
    return CORPUS


@pytest.fixture(scope="session")
def corpus_router(corpus: Path) -> Router:
    """One router over the corpus for the whole run (building it reads ~800 files)."""
    return Router.from_directory(corpus)


@pytest.fixture
def write_plugin(tmp_path: Path) -> WritePlugin:
    """Write a plugin folder under tmp_path/plugins; ``files`` maps paths to text."""

    def write(
        name: str,
        manifest: Mapping[str, Any] | None = None,
        files: Mapping[str, str] | None = None,
    ) -> Path:
        root = tmp_path / "plugins" / name
        (root / ".claude-plugin").mkdir(parents=True, exist_ok=True)
        document = {"name": name, "version": "1.0.0", **(manifest or {})}
        (root / ".claude-plugin" / "plugin.json").write_text(json.dumps(document))
        for relative, text in (files or {}).items():
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        return root

    return write


def agent(name: str, description: str, body: str = "") -> str:
    """An agent file's text."""
    return f"---\nname: {name}\ndescription: {description}\n---\n\n{body}\n"


@pytest.fixture
def ecosystem(write_plugin: WritePlugin, tmp_path: Path) -> Path:
    """Four small plugins in distinct domains; returns the plugins folder."""
    write_plugin(
        "api-forge",
        {
            "description": "Python backend services: REST endpoints, database models, caching",
            "keywords": ["python", "api", "backend"],
        },
        {
            "agents/endpoint-builder.md": agent(
                "endpoint-builder", "Builds REST API endpoints with validation and pagination"
            ),
            "agents/query-tuner.md": agent(
                "query-tuner", "Finds slow database queries and adds indexes and caching"
            ),
        },
    )
    write_plugin(
        "pixel-kit",
        {
            "description": "Frontend user interface: React components, styling and layout",
            "keywords": ["react", "frontend", "css"],
        },
        {
            "agents/component-smith.md": agent(
                "component-smith", "Creates React components, forms and page layouts"
            ),
        },
    )
    write_plugin(
        "cloud-ops",
        {
            "description": "Infrastructure: Kubernetes clusters, Helm charts and Terraform",
            "keywords": ["kubernetes", "helm", "terraform"],
        },
        {
            "agents/chart-author.md": agent(
                "chart-author", "Writes Helm charts and Kubernetes manifests for deployments"
            ),
        },
    )
    write_plugin(
        "doc-scribe",
        {
            "description": "Documentation: READMEs, guides, architecture decision records",
            "keywords": ["documentation", "readme", "adr"],
        },
        {"agents/guide-writer.md": agent("guide-writer", "Writes user guides and READMEs")},
    )
    return tmp_path / "plugins"
