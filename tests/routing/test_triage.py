"""Abstaining: below ``min_confidence`` the router leaves the request to a person."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from jira_orchestrator.cli.route import route
from jira_orchestrator.routing import DecisionStore, Router, RoutingRequest
from jira_orchestrator.routing.calibration import Calibrator

app = typer.Typer()
app.command()(route)


@app.callback()
def _root() -> None:
    """Test root."""


runner = CliRunner()
# A request three plugins share about as much: which one should write it?
AMBIGUOUS = "README for the Terraform and React"


def test_an_unsure_decision_is_left_to_a_person(ecosystem: Path) -> None:
    router = Router.from_directory(ecosystem, min_confidence=0.6)
    decision = router.route(RoutingRequest.from_text(AMBIGUOUS, request_id="OPS-1"))
    assert decision.triaged
    assert decision.execution_strategy == "triage"
    assert decision.primary_plugin is None
    assert decision.fallback_plugins == ()
    assert decision.collaboration_plan is None
    assert decision.recommended_agents == ()
    assert 0 < decision.confidence < 0.6
    assert decision.min_confidence == 0.6
    candidates = [s.plugin for s in decision.candidates]
    assert [s.score for s in decision.candidates] == sorted(
        (s.score for s in decision.candidates), reverse=True
    )
    assert set(candidates) == {"doc-scribe", "pixel-kit", "cloud-ops"}
    assert all(score.evidence for score in decision.candidates)
    document = decision.to_dict()
    assert document["executionStrategy"] == "triage"
    assert document["candidates"] == candidates
    assert document["minConfidence"] == 0.6
    assert "not sure enough to route it" in decision.explain()
    assert router.stats.triaged == 1
    assert router.stats.routed == 1


def test_a_sure_decision_is_routed_at_the_same_threshold(ecosystem: Path) -> None:
    router = Router.from_directory(ecosystem, min_confidence=0.5)
    decision = router.route("Write the README and a user guide for the documentation")
    assert decision.confidence >= 0.5
    assert decision.primary_plugin == "doc-scribe"
    assert not decision.triaged
    assert "candidates" not in decision.to_dict()
    assert router.stats.triaged == 0


def test_confidence_comes_from_the_calibrator(ecosystem: Path) -> None:
    always = Calibrator((0.0, 0.0), 10.0)  # sure of everything
    never = Calibrator((0.0, 0.0), -10.0)
    sure = Router.from_directory(ecosystem, calibrator=always, min_confidence=0.5)
    assert sure.route(AMBIGUOUS).confidence > 0.99
    unsure = Router.from_directory(ecosystem, calibrator=never, min_confidence=0.5)
    assert unsure.route("Write the README").triaged


def test_a_plugin_often_wrong_is_left_to_a_person_sooner(ecosystem: Path) -> None:
    # The same decision, the same margin: only the winner's track record differs.
    request = "Write the README and a user guide for the documentation"
    trusted = Calibrator(
        (4.0, 0.0), -1.0, record={"doc-scribe": 0.95}, record_default=0.8, record_weight=3.0
    )
    doubted = Calibrator(
        (4.0, 0.0), -1.0, record={"doc-scribe": 0.2}, record_default=0.8, record_weight=3.0
    )
    sure = Router.from_directory(ecosystem, calibrator=trusted, min_confidence=0.6)
    unsure = Router.from_directory(ecosystem, calibrator=doubted, min_confidence=0.6)
    routed, left = sure.route(request), unsure.route(request)
    assert routed.primary_plugin == "doc-scribe"
    assert routed.confidence >= 0.6
    assert left.triaged
    assert left.confidence < 0.6
    assert left.candidates[0].plugin == "doc-scribe"


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_a_bad_threshold_is_refused(ecosystem: Path, bad: float) -> None:
    with pytest.raises(ValueError, match="min_confidence must be a number from 0 to 1"):
        Router.from_directory(ecosystem, min_confidence=bad)


def test_a_triaged_request_is_stored_and_can_be_corrected(ecosystem: Path, tmp_path: Path) -> None:
    with DecisionStore(tmp_path / "routing.db") as store:
        router = Router.from_directory(ecosystem, store=store, min_confidence=0.6)
        decision = router.route(RoutingRequest.from_text(AMBIGUOUS, request_id="OPS-2"))
        assert decision.triaged
        router.record_correction("OPS-2", "cloud-ops")  # a person picked
        stored = store.get_decision("OPS-2")
        assert stored is not None
        assert [c.plugin for c in store.corrections()] == ["cloud-ops"]


def test_cli_shows_the_candidates_and_exits_0(ecosystem: Path) -> None:
    result = runner.invoke(
        app, ["route", AMBIGUOUS, "--plugins", str(ecosystem), "--min-confidence", "0.6"]
    )
    assert result.exit_code == 0, result.output
    assert "Not sure enough to route" in result.stdout
    assert "needs 60%" in result.stdout
    assert "1. " in result.stdout
    assert "3. " in result.stdout
    assert all(name in result.stdout for name in ("cloud-ops", "doc-scribe", "pixel-kit"))


def test_cli_json_and_batch_carry_the_triage(ecosystem: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["route", AMBIGUOUS, "--plugins", str(ecosystem), "--min-confidence", "0.6", "--json"],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["executionStrategy"] == "triage"
    assert document["primaryPlugin"] is None
    assert len(document["candidates"]) == 3
    batch = tmp_path / "in.jsonl"
    batch.write_text(
        json.dumps({"id": "a", "text": AMBIGUOUS})
        + "\n"
        + json.dumps({"id": "b", "text": "Write the README and a user guide for the docs"})
        + "\n"
    )
    result = runner.invoke(
        app,
        ["route", "--plugins", str(ecosystem), "--batch", str(batch), "--min-confidence", "0.6"],
    )
    assert result.exit_code == 0, result.output
    lines = {line["id"]: line for line in map(json.loads, result.stdout.splitlines())}
    assert lines["a"]["executionStrategy"] == "triage"
    assert lines["a"]["primaryPlugin"] is None
    assert lines["b"]["executionStrategy"] == "single"
    assert all(0 < line["confidence"] <= 1 for line in lines.values())


@pytest.mark.parametrize("bad", ["1.5", "-1", "nan", "sure"])
def test_cli_refuses_a_bad_threshold(ecosystem: Path, bad: str) -> None:
    result = runner.invoke(
        app, ["route", "x y", "--plugins", str(ecosystem), "--min-confidence", bad]
    )
    assert result.exit_code == 2
    assert f"--min-confidence: must be a number from 0 to 1, not '{bad}'" in result.stderr


def test_decisions_show_a_triaged_request_and_stats_do_not_count_the_pick_as_an_error(
    ecosystem: Path, tmp_path: Path
) -> None:
    from jira_orchestrator.cli._app import app as full

    db = tmp_path / "routing.db"
    for request_id, floor in (("OPS-3", "0.6"), ("DOC-4", "0")):
        text = AMBIGUOUS if request_id == "OPS-3" else "Write the README"
        routed = runner.invoke(
            full,
            ["route", text, "--plugins", str(ecosystem), "--db", str(db), "--id", request_id,
             "--min-confidence", floor],
        )  # fmt: skip
        assert routed.exit_code == 0, routed.output
    for request_id, plugin in (("OPS-3", "cloud-ops"), ("DOC-4", "api-forge")):
        result = runner.invoke(
            full,
            ["decisions", "correct", request_id, plugin, "--db", str(db), "--plugins",
             str(ecosystem)],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    listed = runner.invoke(full, ["decisions", "list", "--db", str(db)])
    assert "(triage)" in listed.stdout
    entries = runner.invoke(full, ["decisions", "list", "--db", str(db), "--json"]).stdout
    by_id = {e["id"]: e for e in map(json.loads, entries.splitlines())}
    assert by_id["OPS-3"]["executionStrategy"] == "triage"
    assert 0 < by_id["OPS-3"]["confidence"] < 0.6
    report = json.loads(
        runner.invoke(full, ["decisions", "stats", "--db", str(db), "--json"]).stdout
    )
    assert report["corrected"] == 1  # DOC-4 only: picking for a triaged request is no error
    assert report["triagePicked"] == 1
    assert report["confusions"] == [{"routedTo": "doc-scribe", "shouldBe": "api-forge", "count": 1}]
