"""The on-disk cache of built router indexes (`routing.cache`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jira_orchestrator.cli._app import app
from jira_orchestrator.plugins import discover_plugins
from jira_orchestrator.routing import Router, ScoringWeights
from jira_orchestrator.routing.cache import IndexCache
from jira_orchestrator.routing.evaluation import load_labelled
from jira_orchestrator.routing.index import ProfileIndex

from .conftest import LABELLED


def _entries(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.index"))


def test_a_router_read_from_the_cache_decides_as_the_one_built(
    corpus: Path, tmp_path: Path
) -> None:
    built = Router.from_directory(corpus, cache=tmp_path)
    assert not built.index_from_cache
    assert len(_entries(tmp_path)) == 1
    read = Router.from_directory(corpus, cache=tmp_path)
    assert read.index_from_cache
    assert read._specificity == built._specificity
    for example in load_labelled(LABELLED):
        first, second = built.route(example.request), read.route(example.request)
        assert second.to_dict() | {"elapsedMs": 0, "createdAt": ""} == (
            first.to_dict() | {"elapsedMs": 0, "createdAt": ""}
        )


def test_a_changed_component_file_or_setting_is_never_served_stale(
    ecosystem: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    assert not Router.from_directory(ecosystem, cache=cache).index_from_cache
    assert Router.from_directory(ecosystem, cache=cache).index_from_cache
    agent = ecosystem / "cloud-ops" / "agents" / "chart-author.md"
    agent.write_text(agent.read_text() + "\nAlso tunes zeppelin fleets.\n")
    changed = Router.from_directory(ecosystem, cache=cache)
    assert not changed.index_from_cache
    assert changed.route("the zeppelin fleet").primary_plugin == "cloud-ops"
    weights = dataclasses.replace(ScoringWeights(), relevance_scale=5.0)
    assert not Router.from_directory(ecosystem, cache=cache, weights=weights).index_from_cache
    assert Router.from_directory(ecosystem, cache=cache, weights=weights).index_from_cache


def test_a_damaged_entry_is_built_again_and_replaced(
    ecosystem: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    Router.from_directory(ecosystem, cache=tmp_path)
    (entry,) = _entries(tmp_path)
    for damage in (b"", b"\x01\x00\x00\x00", entry.read_bytes()[:-40], b"\xff" * 64):
        entry.write_bytes(damage)
        router = Router.from_directory(ecosystem, cache=tmp_path)
        assert not router.index_from_cache
        assert router.route("Write a README").primary_plugin == "doc-scribe"
        assert "damaged, building again" in caplog.text
        assert Router.from_directory(ecosystem, cache=tmp_path).index_from_cache


def test_a_cache_that_cannot_be_written_only_costs_the_speed(
    ecosystem: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    router = Router.from_directory(ecosystem, cache=blocked)
    assert router.route("Write a README").primary_plugin == "doc-scribe"
    assert "cannot write" in caplog.text


def test_only_the_newest_entries_are_kept(ecosystem: Path, tmp_path: Path) -> None:
    cache = IndexCache(tmp_path)
    plugins = discover_plugins(ecosystem).plugins
    for scale in range(12):
        weights = dataclasses.replace(ScoringWeights(), relevance_scale=1.0 + scale)
        Router(plugins, weights=weights, cache=cache)
    assert len(_entries(tmp_path)) == 8


def test_bytes_that_are_not_a_saved_index_are_refused() -> None:
    for data in (b"", b"\x93\x01\x02\x03", b"{}", b"\xc1"):
        with pytest.raises(ValueError, match="saved routing index"):
            ProfileIndex.loads(data)


def test_the_cli_caches_unless_told_not_to(
    ecosystem: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    monkeypatch.setenv("JIRA_ORCHESTRATOR_CACHE", str(tmp_path / "env-cache"))
    args = ["route", "Write a README", "--plugins", str(ecosystem)]
    assert runner.invoke(app, [*args, "--no-cache"]).exit_code == 0
    assert not (tmp_path / "env-cache").exists()
    assert runner.invoke(app, args).exit_code == 0
    assert len(_entries(tmp_path / "env-cache")) == 1
    result = runner.invoke(app, [*args, "--cache", str(tmp_path / "given")])
    assert result.exit_code == 0
    assert result.stdout.startswith("doc-scribe")
    assert len(_entries(tmp_path / "given")) == 1
