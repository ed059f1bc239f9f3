"""Learning from corrections and outcomes, persisted in SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from jira_orchestrator.routing import (
    DecisionStore,
    InvalidRequest,
    Router,
    RoutingRequest,
    UnknownRequest,
)

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


@pytest.mark.parametrize("restart", [False, True], ids=["same router", "after a restart"])
def test_a_correction_remembers_the_labels_components_and_type_of_the_request(
    lookalikes: Path, tmp_path: Path, restart: bool
) -> None:
    # A Jira issue often says the most in its labels and components; the corrected
    # example must be the request as routed, not its text alone.
    db = tmp_path / "routing.db"
    router = Router.from_directory(lookalikes, store=db)
    issue = RoutingRequest.from_text(
        "Please have a look",
        labels=["invoices", "billing-run"],
        components=["Accounting ledger"],
        request_id="FIN-1",
    )
    first = router.route(issue)
    right = _other(first.primary_plugin)
    router.record_correction("FIN-1", right)
    if restart:
        router.close()
        router = Router.from_directory(lookalikes, store=db)
    # Another issue that shares nothing with the first but its labels and components.
    later = router.route(
        RoutingRequest.from_text(
            "Something is off here",
            labels=["invoices", "billing-run"],
            components=["Accounting ledger"],
        )
    )
    score = later.score_of(right)
    assert score is not None
    assert score.learned > 0
    assert later.primary_plugin == right
    router.close()
    with DecisionStore(db) as store:
        stored = store.get_decision("FIN-1")
        assert stored is not None
        assert stored.request() == issue
        (correction,) = store.corrections()
        assert correction.request() == issue


OLD_SCHEMA = """
CREATE TABLE decisions (request_id TEXT PRIMARY KEY, created_at REAL NOT NULL,
    text TEXT NOT NULL, files TEXT NOT NULL, primary_plugin TEXT, decision TEXT NOT NULL);
CREATE TABLE outcomes (id INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL,
    plugin TEXT NOT NULL, success INTEGER NOT NULL, created_at REAL NOT NULL);
CREATE TABLE corrections (request_id TEXT PRIMARY KEY, plugin TEXT NOT NULL,
    text TEXT NOT NULL, files TEXT NOT NULL, created_at REAL NOT NULL);
"""


def test_a_database_of_the_first_format_is_read_and_learned_from(
    lookalikes: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as old:
        old.executescript(OLD_SCHEMA)
        old.execute(
            "INSERT INTO decisions VALUES ('OLD-1', 1.0, ?, '[]', 'billing-core', '{}')",
            (REQUEST,),
        )
        old.execute(
            "INSERT INTO corrections VALUES ('OLD-1', 'ledger-sync', ?, '[]', 2.0)", (REQUEST,)
        )
        # A row written by hand with nothing to learn from: skipped, not fatal.
        old.execute("INSERT INTO corrections VALUES ('OLD-2', 'ledger-sync', '', '[]', 3.0)")
    old.close()
    router = Router.from_directory(lookalikes, store=db)
    assert "skipping a stored example" in caplog.text
    assert router.route(SIMILAR).primary_plugin == "ledger-sync"
    first = router.store.get_decision("OLD-1")  # type: ignore[union-attr]
    assert first is not None
    assert first.request() == RoutingRequest.from_text(REQUEST, request_id="OLD-1")
    # New rows carry the whole request in the added column.
    router.route(RoutingRequest.from_text("x", labels=["ledger"], request_id="NEW-1"))
    router.record_correction("NEW-1", "billing-core")
    router.close()
    with DecisionStore(db) as store:
        assert store.correction_of("NEW-1").request().labels == ("ledger",)  # type: ignore[union-attr]


def test_an_embedded_example_sways_requests_alike_in_meaning_not_in_words() -> None:
    from jira_orchestrator.routing.learning import Learner

    learner = Learner()
    learner.add("OPS-1", "cloud-ops", "correction", {"pods": 1.0, "restart": 1.0}, [1.0, 0.0])
    learner.add("DOC-1", "doc-scribe", "correction", {"readme": 1.0}, [0.0, 1.0])
    # No word in common: only the embedding relates them (cosine 0.96, rescaled 0.94).
    found = learner.adjustments({"container": 1.0, "crash": 1.0}, [0.96, 0.28])
    assert set(found) == {"cloud-ops"}
    assert found["cloud-ops"][1] == "OPS-1"
    assert found["cloud-ops"][0] == pytest.approx((0.96 - 0.3) / 0.7, abs=1e-6)
    # Unrelated in meaning (cosine at the floor or below): nothing.
    assert learner.adjustments({"container": 1.0}, [0.3, -0.95]) == {}
    # Without the request's embedding, the words alone decide, as before.
    assert learner.adjustments({"container": 1.0, "crash": 1.0}) == {}


def test_a_semantic_model_given_later_embeds_the_stored_examples(
    write_plugin: WritePlugin, tmp_path: Path
) -> None:
    """Corrections loaded from the store are embedded when the model arrives, and then
    sway requests that share their meaning but not their words."""
    for name, description in [
        ("cloud-ops", "Kubernetes clusters, Helm charts and deployments"),
        ("doc-scribe", "Documentation: READMEs and user guides"),
    ]:
        root = write_plugin(name, {"name": name, "description": description})
    db = tmp_path / "routing.db"
    first = Router.from_directory(root.parent, store=db)
    decision = first.route("the service keeps restarting after we raised the memory limit")
    first.record_correction(decision.request_id, "doc-scribe")  # a team's own choice
    first.close()

    class Toy:
        """Two meanings: restarts and crashes, or anything else."""

        weight = 0.0  # the blend itself changes nothing here

        def __init__(self) -> None:
            self.encoded: list[str] = []

        def encode(self, texts: Sequence[str]) -> list[list[float]]:
            self.encoded += texts
            return [
                [1.0, 0.0] if any(w in t for w in ("restart", "crash")) else [0.0, 1.0]
                for t in texts
            ]

        def embed(self, text: str) -> list[float]:
            return self.encode([text])[0]

        def similarities(self, text: str, plugins: Sequence[str]) -> dict[str, tuple[float, str]]:
            return dict.fromkeys(plugins, (0.0, ""))

    later = Router.from_directory(root.parent, store=db)
    try:
        toy = Toy()
        later.semantic = toy
        assert toy.encoded == ["the service keeps restarting after we raised the memory limit"]
        decision = later.route("our workers crash in a loop since Tuesday")
        assert decision.primary_plugin == "doc-scribe"
        assert decision.score_of("doc-scribe").learned > 0
        plain = later.route("write the quarterly figures down")
        assert plain.score_of("doc-scribe") is None or plain.score_of("doc-scribe").learned == 0
    finally:
        later.close()


def _terms(n: int) -> dict[str, float]:
    """A request's terms: two words of its own and one all requests share."""
    return {f"word{n}": 1.0, f"other{n}": 1.0, "deploy": 0.2}


def test_the_same_outcome_again_and_again_is_one_example() -> None:
    from jira_orchestrator.routing import Learner

    learner = Learner()
    for n in range(1000):
        learner.add(f"R-{n}", "k8s", "success", _terms(0))
    learner.add("F-1", "k8s", "failure", _terms(0))
    assert len(learner) == 2  # a stream of like issues does not grow the learner
    once = Learner()
    once.add("R-0", "k8s", "success", _terms(0))
    once.add("F-1", "k8s", "failure", _terms(0))
    assert learner.adjustments(_terms(0)) == once.adjustments(_terms(0))


def test_the_learner_keeps_the_most_recent_outcomes_and_every_correction() -> None:
    from jira_orchestrator.routing import Learner

    learner = Learner(max_outcomes=100)
    learner.add("C-1", "billing", "correction", _terms(0))
    for n in range(1, 1001):
        learner.add(f"R-{n}", "k8s", "success", _terms(n))
    assert len(learner) == 101  # memory stays flat however many issues are done
    assert learner.adjustments(_terms(1)) == {}  # the oldest outcomes are gone
    assert learner.adjustments(_terms(1000))["k8s"][1] == "R-1000"
    assert learner.adjustments(_terms(0))["billing"][1] == "C-1"  # corrections stay
    with pytest.raises(ValueError, match="max_outcomes"):
        Learner(max_outcomes=0)
