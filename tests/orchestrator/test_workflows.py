"""Workflow files in YAML and JSON, and every way they can be wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jira_orchestrator.messagebus import Message, get_message_bus
from jira_orchestrator.orchestrator import (
    Parallel,
    PluginStep,
    Saga,
    SagaFailed,
    SagaStore,
    Sequential,
    StepRegistry,
    WorkflowError,
    build_workflows,
    load_workflow,
    load_workflows,
)

registry = StepRegistry()
calls: list[str] = []


@registry.register()
async def plan(value: Any) -> dict[str, Any]:
    calls.append("plan")
    return {"issue": value, "files": 2}


@registry.register("count-files")
def count_files(value: dict[str, Any]) -> int:
    return int(value["files"])


@registry.register()
def is_big(value: Any) -> bool:
    return isinstance(value, int) and value > 1


registry["is_dict"] = lambda value: isinstance(value, dict)
registry["keys"] = lambda value: sorted(value)


@registry.register()
def undo_plan(result: Any) -> None:
    calls.append(f"undo {result['issue']}")


@registry.register()
async def explode(value: Any) -> None:
    raise RuntimeError("exploded")


RELEASE_YAML = """\
version: 1
workflows:
  release:
    kind: sequential
    steps:
      - id: plan
        call: plan
        compensate: undo_plan
      - id: files
        call: count-files
        when: is_dict
      - id: checks
        kind: parallel
        allow_partial: true
        steps:
          - {id: lint, plugin: infra, command: lint, parameters: {strict: true}, timeout: 5}
          - {id: scan, plugin: infra, command: scan}
      - id: pick
        kind: conditional
        branches:
          - when: is_big
            step: {id: never, call: plan}
        otherwise: {id: done, use: finish}
  finish:
    steps:
      - {id: finish-plan, call: plan, transform: keys}
"""


@pytest.fixture(autouse=True)
def clear_calls() -> None:
    calls.clear()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


async def test_yaml_workflow_builds_and_runs(tmp_path: Path) -> None:
    infra = get_message_bus("infra")
    checks_seen: dict[str, Any] = {}

    @infra.subscribe("plugin/infra/request")
    async def handle(message: Message) -> None:
        assert message.correlation_id is not None
        command, parameters = message.payload["command"], message.payload["parameters"]
        checks_seen[command] = [command, parameters]
        await infra.respond(message.correlation_id, {"status": "success", "result": command})

    path = write(tmp_path, "release.yaml", RELEASE_YAML)
    bus = get_message_bus("jira-orchestrator")
    flows = load_workflows(path, registry=registry, bus=bus)
    assert set(flows) == {"release", "finish"}
    release = flows["release"]
    assert isinstance(release, Sequential)
    assert [type(s).__name__ for s in release.steps] == [
        "FunctionStep",
        "FunctionStep",
        "Parallel",
        "Conditional",
    ]
    checks = release.steps[2]
    assert isinstance(checks, Parallel)
    assert checks.allow_partial
    lint = checks.steps[0]
    assert isinstance(lint, PluginStep)
    assert lint.timeout == 5.0
    assert lint.parameters == {"strict": True}
    result = await release.run("PROJ-1")
    assert calls == ["plan", "plan"]  # plan, then finish-plan through `use`
    assert result == {"issue": ["lint", "scan"], "files": 2}
    assert dict(checks_seen) == {
        "lint": ["lint", {"strict": True, "input": 2}],
        "scan": ["scan", {"input": 2}],
    }


async def test_json_saga_with_store_compensates(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "order.json",
        json.dumps(
            {
                "id": "order",
                "kind": "saga",
                "steps": [
                    {"id": "plan", "call": "plan", "compensate": {"call": "undo_plan"}},
                    {"id": "explode", "call": "explode"},
                ],
            }
        ),
    )
    with SagaStore(tmp_path / "s.db") as store:
        saga = load_workflow(path, registry=registry, saga_store=store)
        assert isinstance(saga, Saga)
        assert saga.store is store
        with pytest.raises(SagaFailed):
            await saga.run("PROJ-2")
        assert calls == ["plan", "undo PROJ-2"]
        assert store.runs("order")[0].status == "compensated"


def test_load_workflow_by_name(tmp_path: Path) -> None:
    path = write(tmp_path, "flows.yml", RELEASE_YAML)
    bus = get_message_bus("o")
    assert load_workflow(path, "finish", registry=registry, bus=bus).id == "finish"
    with pytest.raises(WorkflowError, match="say which one to load"):
        load_workflow(path, registry=registry, bus=bus)
    with pytest.raises(
        WorkflowError, match=r"workflows.nope: no such workflow \(has: release, finish\)"
    ):
        load_workflow(path, "nope", registry=registry, bus=bus)


def problems(tmp_path: Path, text: str, name: str = "wf.yaml", **kwargs: Any) -> list[str]:
    path = write(tmp_path, name, text)
    with pytest.raises(WorkflowError) as caught:
        load_workflows(path, registry=registry, **kwargs)
    prefix = f"{path}: "
    assert all(line.startswith(prefix) for line in caught.value.problems), caught.value.problems
    assert str(caught.value) == "\n".join(caught.value.problems)
    return [line.removeprefix(prefix) for line in caught.value.problems]


def test_malformed_files_name_file_and_position(tmp_path: Path) -> None:
    assert problems(tmp_path, "workflows:\n  a: [\n") == [
        "line 3, column 1: invalid YAML: expected the node content, but found '<stream end>'"
    ]
    assert problems(tmp_path, '{"workflows": }', name="wf.json") == [
        "line 1, column 15: invalid JSON: Expecting value"
    ]
    assert problems(tmp_path, "- a\n- b\n") == ["$: a workflow file holds an object, not list"]
    assert problems(tmp_path, "x", name="wf.toml") == [
        "$: a workflow file ends in .yaml, .yml or .json"
    ]
    with pytest.raises(WorkflowError, match="no such file"):
        load_workflows(tmp_path / "missing.yaml")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = """\
workflows:
  w:
    kind: sequential
    steps:
      - {id: a, kind: teleport}
      - {id: b, call: nothing-like-this}
      - {id: c, call: plan, tiemout: 3}
      - {call: plan}
      - {id: e, call: plan, timeout: -1}
      - {id: f, plugin: a/b, command: ""}
      - {id: g, call: plan, plugin: x}
      - {id: h, kind: parallel, steps: []}
      - {id: i, kind: conditional, branches: [{when: is_big}]}
      - {id: j, when: 3, call: plan}
      - 42
"""
    found = problems(tmp_path, text, bus=get_message_bus("o"))
    assert found == [
        "workflows.w.steps[0].kind: unknown step kind 'teleport' (expected one of call, "
        "conditional, parallel, plugin, saga, sequential, use)",
        "workflows.w.steps[1].call: no callable registered as 'nothing-like-this' (known: "
        "count-files, explode, is_big, is_dict, keys, plan, undo_plan)",
        "workflows.w.steps[2].tiemout: unknown key for a call step (allowed: call, compensate, "
        "id, kind, timeout, transform, when)",
        "workflows.w.steps[3].id: a step needs an id (a non-empty string), not None",
        "workflows.w.steps[4].timeout: must be a positive number of seconds, not -1",
        "workflows.w.steps[5].plugin: must be a plugin id, not 'a/b'",
        "workflows.w.steps[5].command: must be a non-empty string, not ''",
        "workflows.w.steps[6]: ambiguous step: it has plugin and call; give its kind",
        "workflows.w.steps[7].steps: must be a non-empty list of steps",
        "workflows.w.steps[8].branches[0]: a branch is exactly "
        "{when: <callable name>, step: {...}}",
        "workflows.w.steps[9].when: must be the name of a registered callable, not 3",
        "workflows.w.steps[10]: a step must be an object, not int",
    ]


def test_duplicate_step_ids(tmp_path: Path) -> None:
    text = (
        "id: w\nsteps:\n  - {id: a, call: plan}\n"
        "  - {id: p, kind: parallel, steps: [{id: a, call: plan}]}\n"
    )
    assert problems(tmp_path, text) == [
        "$.steps[1].steps[0].id: duplicate step id 'a' (first at $.steps[0])"
    ]


def test_cycles_between_workflows(tmp_path: Path) -> None:
    text = """\
workflows:
  a: {steps: [{id: to-b, use: b}]}
  b: {steps: [{id: to-c, use: c}]}
  c: {steps: [{id: to-a, use: a}]}
"""
    found = problems(tmp_path, text)
    assert "workflows.c.steps[0].use: workflow cycle: a -> b -> c -> a" in found
    self_loop = "workflows:\n  a: {steps: [{id: me, use: a}]}\n"
    assert problems(tmp_path, self_loop) == ["workflows.a.steps[0].use: workflow cycle: a -> a"]
    unknown = "workflows:\n  a: {steps: [{id: x, use: zz}]}\n"
    assert problems(tmp_path, unknown) == [
        "workflows.a.steps[0].use: no workflow named 'zz' in this file (known: a)"
    ]


def test_plugin_steps_need_a_bus(tmp_path: Path) -> None:
    text = "id: w\nplugin: infra\ncommand: lint\n"
    assert problems(tmp_path, text) == ["$: a plugin step needs a bus: pass bus=... when loading"]


def test_top_level_shape(tmp_path: Path) -> None:
    assert problems(tmp_path, "workflows: {}\n") == [
        "workflows: must be a non-empty mapping of names to steps"
    ]
    assert problems(tmp_path, "workflows: {a: {call: plan}}\nextra: 1\n") == [
        "$.extra: unknown top-level key"
    ]
    assert problems(tmp_path, "call: plan\n") == ["$.id: a single-workflow file needs an id"]
    assert problems(tmp_path, "id: w\nfoo: 1\n") == [
        "$: cannot tell the step kind: give kind, plugin, call, use or steps"
    ]


def test_bad_compensations(tmp_path: Path) -> None:
    text = """\
id: s
kind: saga
steps:
  - {id: a, call: plan, compensate: 5}
  - {id: b, call: plan, compensate: {call: undo_plan, extra: 1}}
  - {id: c, call: plan, compensate: {plugin: infra}}
"""
    assert problems(tmp_path, text, bus=get_message_bus("o")) == [
        "$.steps[0].compensate: must be a registered callable's name, {call} or {plugin, command}",
        "$.steps[1].compensate: unknown keys ['extra'] beside call",
        "$.steps[2].compensate.command: must be a non-empty string, not None",
    ]


def test_build_workflows_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="registry must be a mapping"):
        build_workflows({"id": "w", "call": "plan"}, registry=["plan"])  # type: ignore[arg-type]
    with pytest.raises(WorkflowError, match="<workflow>: \\$: a workflow file holds an object"):
        build_workflows(None)


def test_registry_refuses_a_second_registration() -> None:
    local = StepRegistry()
    local.register("x")(print)
    with pytest.raises(ValueError, match="'x' is registered already"):
        local.register("x")(print)


def test_duplicates_are_reported_with_the_other_problems(tmp_path: Path) -> None:
    text = "id: w\nsteps:\n  - {id: a, call: plan}\n  - {id: a, call: nope}\n"
    found = problems(tmp_path, text)
    assert found[0] == "$.steps[1].id: duplicate step id 'a' (first at $.steps[0])"
    assert found[1].startswith("$.steps[1].call: no callable registered as 'nope'")


def test_a_workflow_used_twice_has_duplicate_ids(tmp_path: Path) -> None:
    text = """\
workflows:
  a: {steps: [{id: x, use: b}, {id: y, use: b}]}
  b: {steps: [{id: inner, call: plan}]}
"""
    assert problems(tmp_path, text) == [
        "workflows.a: chain 'a': duplicate step id 'b'",
        "workflows.a: chain 'a': duplicate step id 'inner'",
    ]
