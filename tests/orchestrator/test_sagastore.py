"""The saga store and `Saga.recover` without a crash: bad files, changed definitions."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from jira_orchestrator.orchestrator import FunctionStep, Saga, SagaStore, SagaStoreError


def interrupted_run(store: SagaStore, completed: list[tuple[str, Any]], running: str) -> None:
    """What a crash leaves behind: completed steps with results, one step started."""
    store.start_run("r1", "s", {"x": 1})
    for position, (step_id, result) in enumerate(completed):
        store.step_started("r1", position, step_id)
        store.set_step("r1", position, "completed", result=result)
    store.step_started("r1", len(completed), running)


async def test_recover_records_compensation_failures(tmp_path: Path) -> None:
    undone: list[Any] = []

    def undo_a(result: Any) -> None:
        undone.append(result)

    def undo_b(result: Any) -> None:
        raise ConnectionError("billing is down")

    with SagaStore(tmp_path / "s.db") as store:
        interrupted_run(store, [("a", {"id": 1}), ("b", [2])], "c")
        saga = Saga(
            "s",
            [
                FunctionStep("a", lambda v: v, compensate=undo_a),
                FunctionStep("b", lambda v: v, compensate=undo_b),
                FunctionStep("c", lambda v: v),
            ],
            store=store,
        )
        [outcome] = await saga.recover()
        assert outcome.status == "compensation-failed"
        assert outcome.compensated == ["a"]
        assert isinstance(outcome.compensation_errors["b"], ConnectionError)
        assert outcome.interrupted == "c"
        assert undone == [{"id": 1}]
        run = store.get("r1")
        assert run is not None
        assert run.status == "compensation-failed"
        assert [(s.step_id, s.status, s.error) for s in run.steps] == [
            ("a", "compensated", None),
            ("b", "compensation-failed", "ConnectionError: billing is down"),
            ("c", "interrupted", None),
        ]
        assert await saga.recover() == []  # left for an operator, not retried forever


async def test_recover_refuses_steps_missing_from_the_definition(tmp_path: Path) -> None:
    with SagaStore(tmp_path / "s.db") as store:
        interrupted_run(store, [("old-step", 1)], "next")
        saga = Saga("s", [FunctionStep("renamed", lambda v: v, compensate=print)], store=store)
        [outcome] = await saga.recover()
        assert outcome.status == "compensation-failed"
        assert "'old-step' (position 0) is not in saga 's' any more" in str(
            outcome.compensation_errors["old-step"]
        )


async def test_recover_only_touches_its_own_saga(tmp_path: Path) -> None:
    with SagaStore(tmp_path / "s.db") as store:
        interrupted_run(store, [("a", 1)], "b")
        other = Saga("other", [FunctionStep("a", lambda v: v)], store=store)
        assert await other.recover() == []
        assert store.runs(unfinished=True)[0].saga == "s"


async def test_recover_needs_a_store() -> None:
    with pytest.raises(SagaStoreError, match="has no store"):
        await Saga("s", [FunctionStep("a", lambda v: v)]).recover()


def test_run_ids_are_unique(tmp_path: Path) -> None:
    with SagaStore(tmp_path / "s.db") as store:
        store.start_run("r", "s", None)
        with pytest.raises(SagaStoreError, match="'r' exists already"):
            store.start_run("r", "s", None)


def test_results_that_are_not_json_are_kept_as_repr(tmp_path: Path) -> None:
    with SagaStore(tmp_path / "s.db") as store:
        store.start_run("r", "s", {1, 2})
        assert store.get("r").input == "{1, 2}"  # type: ignore[union-attr]
        assert store.get("nope") is None


def test_corrupt_and_foreign_files_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(SagaStoreError, match="damaged or not SQLite"):
        SagaStore(garbage)
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE things (x)")
    db.close()
    with pytest.raises(SagaStoreError, match="not a saga store"):
        SagaStore(foreign)
    with pytest.raises(TypeError):
        SagaStore(42)  # type: ignore[arg-type]


def test_closed_store_says_so(tmp_path: Path) -> None:
    store = SagaStore(tmp_path / "s.db")
    store.close()
    store.close()
    with pytest.raises(SagaStoreError, match="is closed"):
        store.start_run("r", "s", None)
