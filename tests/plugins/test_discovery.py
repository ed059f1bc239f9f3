"""Discovery of plugin folders: the real corpus loads cleanly; one bad file stops nothing."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from jira_orchestrator import ManifestError
from jira_orchestrator.plugins import (
    PluginCatalog,
    discover_plugins,
    is_plugin_dir,
    load_plugin,
)


def test_the_whole_corpus_loads_without_problems(corpus_catalog: PluginCatalog) -> None:
    assert corpus_catalog.problems == ()
    assert len(corpus_catalog) == 35
    assert sum(len(p.agents) for p in corpus_catalog) == 261
    assert sum(len(p.commands) for p in corpus_catalog) == 292
    assert sum(len(p.skills) for p in corpus_catalog) == 250
    names = [plugin.name for plugin in corpus_catalog]
    assert names == sorted(names)


def test_corpus_files_read_leniently_are_warnings_not_errors(
    corpus_catalog: PluginCatalog,
) -> None:
    lenient = [w for w in corpus_catalog.warnings if "not strict YAML" in w]
    assert lenient, "the corpus has front matter with unquoted ': ' in values"
    plugin = corpus_catalog.get("project-management-plugin")
    assert plugin is not None
    [task] = [c for c in plugin.commands if c.name == "pm-task"]
    assert task.description.startswith("Task CRUD operations: add, edit")


def test_corpus_components_carry_their_front_matter(corpus_catalog: PluginCatalog) -> None:
    plugin = corpus_catalog.get("aws-eks-helm-keycloak")
    assert plugin is not None
    assert plugin.version == "2.0.0"
    assert "helm" in plugin.manifest.keywords
    assert plugin.manifest.extra["author"]["name"]
    agents = {agent.name: agent for agent in plugin.agents}
    assert set(agents) >= {"deployment-strategist", "pipeline-architect", "setup-orchestrator"}
    assert agents["pipeline-architect"].model == "sonnet"
    assert "Helm" in agents["pipeline-architect"].description
    assert all(agent.plugin == "aws-eks-helm-keycloak" for agent in plugin.agents)


def test_catalog_lookup(corpus_catalog: PluginCatalog) -> None:
    assert "fastapi-backend" in corpus_catalog
    assert corpus_catalog.get("no-such-plugin") is None
    summary = corpus_catalog.get("fastapi-backend").summary()  # type: ignore[union-attr]
    assert summary["name"] == "fastapi-backend"
    assert {"version", "agents", "commands", "skills", "keywords"} <= set(summary)
    assert len(corpus_catalog.agents) == 261


def copy_plugins(corpus: Path, target: Path, names: list[str]) -> Path:
    for name in names:
        shutil.copytree(corpus / name, target / name)
    return target


def test_a_malformed_file_is_reported_and_the_rest_loads(corpus: Path, tmp_path: Path) -> None:
    root = copy_plugins(
        corpus, tmp_path, ["aws-eks-helm-keycloak", "fastapi-backend", "mui-expert"]
    )
    broken = root / "fastapi-backend" / "agents" / "api-architect.md"
    broken.write_text("---\nname: api-architect\ndescription: [never closed\n---\n")
    catalog = discover_plugins(root)
    assert [plugin.name for plugin in catalog] == [
        "aws-eks-helm-keycloak",
        "fastapi-backend",
        "mui-expert",
    ]
    [problem] = catalog.problems
    assert problem.startswith(f"{broken}: line 4: invalid YAML")
    fastapi = catalog.get("fastapi-backend")
    assert fastapi is not None
    original = load_plugin(corpus / "fastapi-backend")
    assert len(fastapi.agents) == len(original.agents) - 1
    assert len(fastapi.commands) == len(original.commands)
    assert fastapi.problems == (problem,)


def test_a_bad_manifest_leaves_only_that_plugin_out(corpus: Path, tmp_path: Path) -> None:
    root = copy_plugins(corpus, tmp_path, ["fastapi-backend", "mui-expert"])
    manifest = root / "mui-expert" / ".claude-plugin" / "plugin.json"
    manifest.write_text('{"name": "mui-expert", "version": 2,}')
    catalog = discover_plugins(root)
    assert [plugin.name for plugin in catalog] == ["fastapi-backend"]
    [problem] = catalog.problems
    assert problem == f"{manifest}: line 1, column 37: invalid JSON: Expecting property name" + (
        " enclosed in double quotes"
    )


def test_duplicate_plugin_names(write_plugin: Any, tmp_path: Path) -> None:
    write_plugin("one", {"name": "same"})
    write_plugin("two", {"name": "same"})
    catalog = discover_plugins(tmp_path / "plugins")
    assert len(catalog) == 1
    assert catalog.plugins[0].root.name == "one"
    [problem] = catalog.problems
    assert "plugin 'same' is already loaded" in problem
    assert any("differs from the folder name" in w for w in catalog.warnings)


def test_folders_that_are_not_plugins_are_skipped(write_plugin: Any, tmp_path: Path) -> None:
    write_plugin("real")
    (tmp_path / "plugins" / "docs").mkdir()
    (tmp_path / "plugins" / "README.md").write_text("# plugins\n")
    hidden = tmp_path / "plugins" / ".cache" / ".claude-plugin"
    hidden.mkdir(parents=True)
    (hidden / "plugin.json").write_text('{"name": "cache"}')
    catalog = discover_plugins(tmp_path / "plugins")
    assert [plugin.name for plugin in catalog] == ["real"]
    assert catalog.problems == ()


def test_a_plugin_folder_itself_can_be_scanned(write_plugin: Any) -> None:
    root = write_plugin("solo", files={"agents/a.md": "---\nname: a\n---\n"})
    assert is_plugin_dir(root)
    catalog = discover_plugins(root)
    assert [plugin.name for plugin in catalog] == ["solo"]
    assert [agent.name for agent in catalog.agents] == ["a"]


def test_empty_directory(tmp_path: Path) -> None:
    catalog = discover_plugins(tmp_path)
    assert (len(catalog), catalog.problems) == (0, ())


@pytest.mark.parametrize("make_file", [False, True])
def test_discover_rejects_what_is_not_a_directory(tmp_path: Path, make_file: bool) -> None:
    target = tmp_path / "plugins"
    if make_file:
        target.write_text("")
    with pytest.raises(NotADirectoryError, match="plugins directory"):
        discover_plugins(target)


def test_load_plugin_raises_for_a_bad_manifest(write_plugin: Any, tmp_path: Path) -> None:
    root = write_plugin("bad", {"name": "bad", "routing": {"priority": "top"}})
    with pytest.raises(ManifestError, match=r"routing\.priority"):
        load_plugin(root)
    with pytest.raises(ManifestError, match="file not found"):
        load_plugin(tmp_path)


def test_corpus_loads_quickly(corpus: Path) -> None:
    import time

    started = time.perf_counter()
    discover_plugins(corpus)
    assert time.perf_counter() - started < 5.0
