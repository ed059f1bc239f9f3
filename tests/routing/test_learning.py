"""Learning from corrections and outcomes, persisted in SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from jira_orchestrator.routing import DecisionStore, InvalidRequest, Router, UnknownRequest

from .conftest import WritePlugin, agent


@pytest.fixture
def lookalikes(write_plugin: WritePlugin, tmp_path: Path) -> Path:
    """Two plugins a request about invoices cannot tell apart by words alone."""
    write_plugin(
        "billing-core",
        {"description": "Invoices, payments and billing runs", "keywords": ["billing"]},
        {"agents/a.md": agent("invoicer", "Creates and sends invoices")},
    )
    write_plugin(
        "ledger-sync",
        {"description": "Accounting ledger synchronisation", "keywords": ["ledger"]},
        {"agents/b.md": agent("syncer", "Syncs invoices and payments to the ledger")},
    )
    return tmp_path / "plugins"


def _other(plugin: str | None) -> str:
    return "ledger-sync" if plugin == "billing-core" else "billing-core"


REQUEST = "Invoices from the March billing run are missing in the accounting ledger"
SIMILAR = "Invoices from the April billing run are missing in the accounting ledger"


def test_a_correction_changes_a_later_similar_decision(lookalikes: Path) -> None:
    router = Router.from_directory(lookalikes)
    first = router.route(REQUEST)
    wrong = first.primary_plugin
    right = _other(wrong)
    assert router.route(SIMILAR).primary_plugin == wrong
    router.record_correction(first.request_id, right)
    later = router.route(SIMILAR)
    assert later.primary_plugin == right
    score = later.score_of(right)
    assert score is not None
    assert score.learned > 0
    assert any(first.request_id in line for line in score.evidence)
    unrelated = router.route("Card payments fail at checkout")
    assert unrelated.score_of(right).learned == 0  # type: ignore[union-attr]


def test_corrections_survive_a_restart(lookalikes: Path, tmp_path: Path) -> None:
    db = tmp_path / "routing.db"
    router = Router.from_directory(lookalikes, store=db)
    first = router.route(REQUEST)
    wrong = first.primary_plugin
    right = _other(wrong)
    router.record_correction(first.request_id, right)
    router.close()
    store = DecisionStore(db)
    assert store.count_decisions() == 1
    assert [c.plugin for c in store.corrections()] == [right]
    assert store.get_decision(first.request_id).primary_plugin == wrong  # type: ignore[union-attr]
    store.close()
    again = Router.from_directory(lookalikes, store=db)
    assert again.route(SIMILAR).primary_plugin == right
    # The stored decision is enough to correct a request routed in an earlier run.
    again.record_correction(first.request_id, _other(right))
    assert again.route(SIMILAR).primary_plugin == wrong
    again.close()


def test_outcomes_lean_towards_success_and_away_from_failure(lookalikes: Path) -> None:
    router = Router.from_directory(lookalikes)
    first = router.route(REQUEST)
    chosen = first.primary_plugin
    assert chosen is not None
    before = router.route(SIMILAR).score_of(chosen)
    router.record_outcome(first.request_id, chosen, success=False)
    after = router.route(SIMILAR).score_of(chosen)
    assert before is not None
    assert after is not None
    assert after.score < before.score
    router.record_outcome(first.request_id, _other(chosen), success=True)
    assert router.route(SIMILAR).score_of(_other(chosen)).learned > 0  # type: ignore[union-attr]
    assert router.stats.outcomes == 2


def test_outcomes_are_persisted(lookalikes: Path, tmp_path: Path) -> None:
    with DecisionStore(tmp_path / "r.db") as store:
        router = Router.from_directory(lookalikes, store=store)
        first = router.route(REQUEST)
        router.record_outcome(first.request_id, "billing-core", success=True)
        assert [(o.plugin, o.success) for o in store.outcomes()] == [("billing-core", True)]


def test_unknown_request_or_plugin(lookalikes: Path) -> None:
    router = Router.from_directory(lookalikes)
    with pytest.raises(UnknownRequest, match="no routing decision with request id 'nope'"):
        router.record_correction("nope", "ledger-sync")
    decision = router.route(REQUEST)
    with pytest.raises(InvalidRequest, match="unknown plugin 'ghost'"):
        router.record_outcome(decision.request_id, "ghost", success=True)


def test_a_store_path_that_cannot_be_opened(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(Exception, match=r"dir\.db"):
        DecisionStore(tmp_path / "dir.db")
