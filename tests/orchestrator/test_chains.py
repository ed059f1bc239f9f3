"""Sequential, parallel, conditional and saga chains defined in Python."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from jira_orchestrator.messagebus import Message, get_message_bus
from jira_orchestrator.orchestrator import (
    Conditional,
    FunctionStep,
    Parallel,
    ParallelResult,
    ParallelStepsFailed,
    PluginStep,
    PluginStepError,
    Saga,
    SagaFailed,
    SagaStore,
    Sequential,
    StepFailed,
    StepTimeout,
    WorkflowError,
)


async def double(value: int) -> int:
    return value * 2


def add_one(value: int) -> int:  # plain callables are steps too
    return value + 1


async def boom(value: Any) -> Any:
    raise RuntimeError(f"boom on {value!r}")


async def test_sequential_passes_each_result_on() -> None:
    chain = Sequential("calc", [double, add_one, FunctionStep("again", double)])
    assert await chain.run(5) == 22
    assert await chain(1) == 6


async def test_sequential_condition_skips_and_transform_reshapes() -> None:
    seen: list[Any] = []

    async def record(value: Any) -> Any:
        seen.append(value)
        return value

    chain = Sequential(
        "shape",
        [
            FunctionStep("only-big", double, condition=lambda v: v > 10),
            FunctionStep("wrap", record, transform=lambda v: {"n": v}),
            FunctionStep("unwrap", record, transform=lambda v: v["n"] + 1),
        ],
    )
    assert await chain.run(3) == 4  # only-big skipped: 3 passes through
    assert await chain.run(20) == 41
    assert seen == [{"n": 3}, 4, {"n": 40}, 41]


async def test_async_condition_and_transform() -> None:
    async def is_even(value: int) -> bool:
        return value % 2 == 0

    async def halve(value: int) -> int:
        return value // 2

    step = FunctionStep("s", add_one, condition=is_even, transform=halve)
    assert await step.run(8) == 5
    assert await step.run(7) == 7


async def test_failure_names_the_path_and_keeps_the_cause() -> None:
    chain = Sequential("outer", [double, Sequential("inner", [add_one, boom])])
    with pytest.raises(StepFailed) as caught:
        await chain.run(1)
    assert caught.value.path == ["outer", "inner", "boom"]
    assert caught.value.step_id == "boom"
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert str(caught.value) == "step outer/inner/boom failed: RuntimeError: boom on 3"


async def test_a_condition_that_raises_fails_its_step() -> None:
    def broken(value: Any) -> bool:
        raise KeyError("missing")

    chain = Sequential("c", [FunctionStep("s", double, condition=broken)])
    with pytest.raises(StepFailed) as caught:
        await chain.run(1)
    assert caught.value.path == ["c", "s"]
    assert isinstance(caught.value.error, KeyError)


@pytest.mark.looptime
async def test_step_timeout_cancels_the_step() -> None:
    cancelled = asyncio.Event()

    async def slow(value: Any) -> Any:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return value

    loop = asyncio.get_running_loop()
    start = loop.time()
    chain = Sequential("c", [FunctionStep("slow", slow, timeout=2.5)])
    with pytest.raises(StepTimeout) as caught:
        await chain.run(1)
    assert loop.time() - start == pytest.approx(2.5)
    assert caught.value.path == ["c", "slow"]
    assert isinstance(caught.value, TimeoutError)
    assert cancelled.is_set()


async def test_a_timeout_error_raised_by_the_step_is_not_a_step_timeout() -> None:
    async def raises_timeout(value: Any) -> Any:
        raise TimeoutError("upstream")

    with pytest.raises(StepFailed) as caught:
        await FunctionStep("t", raises_timeout, timeout=30).run(None)
    assert not isinstance(caught.value, StepTimeout)


@pytest.mark.looptime
async def test_parallel_gives_all_results_each_step_bounded_alone() -> None:
    async def after(seconds: float, value: str) -> Any:
        async def step(_: Any) -> str:
            await asyncio.sleep(seconds)
            return value

        return step

    loop = asyncio.get_running_loop()
    start = loop.time()
    block = Parallel(
        "checks",
        [
            FunctionStep("lint", await after(1, "lint ok"), timeout=5),
            FunctionStep("tests", await after(3, "tests ok"), timeout=5),
            FunctionStep("skip", double, condition=lambda v: False),
        ],
    )
    result = await block.run(1)
    assert isinstance(result, ParallelResult)
    assert dict(result) == {"lint": "lint ok", "tests": "tests ok"}
    assert result.complete
    assert result.skipped == ["skip"]
    assert loop.time() - start == pytest.approx(3)  # side by side, not 4


@pytest.mark.looptime
async def test_parallel_partial_result_carries_the_errors() -> None:
    async def hang(value: Any) -> Any:
        await asyncio.sleep(3600)

    block = Parallel(
        "fan",
        [double, FunctionStep("hang", hang, timeout=1), boom],
        allow_partial=True,
    )
    result = await block.run(4)
    assert dict(result) == {"double": 8}
    assert not result.complete
    assert set(result.errors) == {"hang", "boom"}
    assert isinstance(result.errors["hang"], StepTimeout)
    assert result.errors["boom"].path == ["fan", "boom"]


async def test_parallel_without_partial_raises_with_what_finished() -> None:
    block = Parallel("fan", [double, boom])
    with pytest.raises(ParallelStepsFailed) as caught:
        await block.run(2)
    assert dict(caught.value.result) == {"double": 4}
    assert list(caught.value.result.errors) == ["boom"]
    assert "1 failed: boom (StepFailed)" in str(caught.value)


async def test_parallel_failure_keeps_its_type_through_a_sequence() -> None:
    chain = Sequential("outer", [Parallel("fan", [double, boom])])
    with pytest.raises(ParallelStepsFailed):
        await chain.run(2)


async def test_conditional_takes_the_first_true_branch() -> None:
    route = Conditional(
        "route",
        [
            (lambda v: v["kind"] == "bug", FunctionStep("fix", lambda v: "fixing")),
            (lambda v: v["kind"] == "feature", FunctionStep("build", lambda v: "building")),
        ],
        otherwise=FunctionStep("triage", lambda v: "triaging"),
    )
    assert await route.run({"kind": "bug"}) == "fixing"
    assert await route.run({"kind": "feature"}) == "building"
    assert await route.run({"kind": "question"}) == "triaging"
    no_default = Conditional("maybe", [(lambda v: False, double)])
    assert await no_default.run(7) == 7


async def test_conditional_failure_names_the_branch_step() -> None:
    route = Conditional("route", [(lambda v: True, boom)])
    with pytest.raises(StepFailed) as caught:
        await route.run(1)
    assert caught.value.path == ["route", "boom"]


class Ledger:
    """Records do and undo, as the side effects of a saga."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def step(self, name: str, *, fail: bool = False, undo_fails: bool = False) -> FunctionStep:
        async def do(value: Any) -> str:
            if fail:
                self.log.append(f"fail {name}")
                raise RuntimeError(f"{name} failed")
            self.log.append(f"do {name}")
            return f"{name}-id"

        async def undo(result: Any) -> None:
            if undo_fails:
                self.log.append(f"undo-fail {name}")
                raise OSError(f"cannot undo {name}")
            self.log.append(f"undo {name} {result}")

        return FunctionStep(name, do, compensate=undo)


async def test_saga_success_compensates_nothing() -> None:
    ledger = Ledger()
    saga = Saga("provision", [ledger.step("a"), ledger.step("b")])
    assert await saga.run() == "b-id"
    assert ledger.log == ["do a", "do b"]


async def test_saga_compensates_completed_steps_in_reverse() -> None:
    ledger = Ledger()
    saga = Saga(
        "provision",
        [ledger.step("a"), ledger.step("b"), ledger.step("c", fail=True), ledger.step("d")],
    )
    with pytest.raises(SagaFailed) as caught:
        await saga.run()
    assert ledger.log == ["do a", "do b", "fail c", "undo b b-id", "undo a a-id"]
    assert caught.value.failed_step == "c"
    assert caught.value.compensated == ["b", "a"]
    assert caught.value.compensation_errors == {}
    assert isinstance(caught.value.__cause__, StepFailed)


async def test_saga_compensation_failures_are_recorded_and_the_rest_still_run() -> None:
    ledger = Ledger()
    saga = Saga(
        "provision",
        [ledger.step("a"), ledger.step("b", undo_fails=True), ledger.step("c", fail=True)],
    )
    with pytest.raises(SagaFailed) as caught:
        await saga.run()
    assert ledger.log == ["do a", "do b", "fail c", "undo-fail b", "undo a a-id"]
    assert caught.value.compensated == ["a"]
    assert isinstance(caught.value.compensation_errors["b"], OSError)
    assert "compensation FAILED for b (OSError: cannot undo b)" in str(caught.value)


async def test_saga_skipped_steps_and_steps_without_compensation_are_not_undone() -> None:
    ledger = Ledger()
    saga = Saga(
        "s",
        [
            ledger.step("a"),
            FunctionStep("plain", add_one, transform=lambda v: 1),
            FunctionStep("skipped", double, condition=lambda v: False, compensate=boom),
            ledger.step("z", fail=True),
        ],
    )
    with pytest.raises(SagaFailed) as caught:
        await saga.run()
    assert caught.value.compensated == ["a"]
    assert ledger.log == ["do a", "fail z", "undo a a-id"]


async def test_saga_with_store_records_every_transition(tmp_path: Any) -> None:
    ledger = Ledger()
    with SagaStore(tmp_path / "sagas.db") as store:
        saga = Saga("s", [ledger.step("a"), ledger.step("b", fail=True)], store=store)
        with pytest.raises(SagaFailed) as caught:
            await saga.execute({"tenant": "acme"}, run_id="run-1")
        run = store.get("run-1")
        assert run is not None
        assert run.status == "compensated"
        assert run.input == {"tenant": "acme"}
        assert [(s.step_id, s.status) for s in run.steps] == [
            ("a", "compensated"),
            ("b", "failed"),
        ]
        assert run.steps[0].result == "a-id"
        assert run.steps[1].error == str(caught.value.error).join(["StepFailed: ", ""])
        ok = Saga("t", [ledger.step("x")], store=store)
        await ok.execute(run_id="run-2")
        assert store.get("run-2").status == "completed"  # type: ignore[union-attr]
        assert await saga.recover() == []  # nothing unfinished


async def test_saga_store_marks_failed_compensations(tmp_path: Any) -> None:
    ledger = Ledger()
    with SagaStore(tmp_path / "sagas.db") as store:
        saga = Saga(
            "s", [ledger.step("a", undo_fails=True), ledger.step("b", fail=True)], store=store
        )
        with pytest.raises(SagaFailed):
            await saga.execute(run_id="r")
        run = store.get("r")
        assert run is not None
        assert run.status == "compensation-failed"
        assert run.steps[0].status == "compensation-failed"
        assert run.steps[0].error == "OSError: cannot undo a"


async def test_plugin_step_sends_command_and_parameters() -> None:
    platform = get_message_bus("lobbi-platform-manager")
    received: list[Any] = []

    @platform.subscribe("plugin/lobbi-platform-manager/request")
    async def handle(message: Message) -> None:
        assert message.correlation_id is not None
        received.append(message.payload)
        params = message.payload["parameters"]
        if message.payload["command"] == "fail":
            await platform.respond(message.correlation_id, {"status": "error", "error": "nope"})
        else:
            await platform.respond(
                message.correlation_id, {"status": "success", "result": {"tenant": params}}
            )

    bus = get_message_bus("jira-orchestrator")
    step = PluginStep(
        "create", "lobbi-platform-manager", "create_tenant", bus=bus, parameters={"tier": "gold"}
    )
    assert await step.run({"id": "acme"}) == {"tenant": {"tier": "gold", "input": {"id": "acme"}}}
    assert await step.run(None) == {"tenant": {"tier": "gold"}}
    assert received[0] == {
        "command": "create_tenant",
        "parameters": {"tier": "gold", "input": {"id": "acme"}},
    }
    failing = PluginStep("f", "lobbi-platform-manager", "fail", bus=bus)
    with pytest.raises(StepFailed) as caught:
        await failing.run(1)
    assert isinstance(caught.value.error, PluginStepError)
    assert caught.value.error.remote_error == "nope"
    assert str(caught.value.error) == "plugin 'lobbi-platform-manager' failed command 'fail': nope"


async def test_plugin_step_without_responder_fails_at_once() -> None:
    step = PluginStep("x", "nobody", "run", bus=get_message_bus("jira-orchestrator"))
    with pytest.raises(StepFailed) as caught:
        await step.run(None)
    assert type(caught.value.error).__name__ == "NoResponders"


@pytest.mark.looptime
async def test_plugin_step_timeout_is_a_step_timeout() -> None:
    get_message_bus("slow").subscribe("plugin/slow/request", lambda message: None)
    step = PluginStep("x", "slow", "run", bus=get_message_bus("jira-orchestrator"), timeout=2)
    with pytest.raises(StepTimeout):
        await step.run(None)


async def test_plugin_steps_in_a_saga_with_plugin_compensation() -> None:
    infra = get_message_bus("infra")
    commands: list[str] = []

    @infra.subscribe("plugin/infra/request")
    async def handle(message: Message) -> None:
        assert message.correlation_id is not None
        command = message.payload["command"]
        commands.append(f"{command} {message.payload['parameters'].get('input')}")
        status = "error" if command == "deploy" else "success"
        await infra.respond(message.correlation_id, {"status": status, "result": "vpc-1"})

    bus = get_message_bus("jira-orchestrator")
    saga = Saga(
        "release",
        [
            PluginStep(
                "network",
                "infra",
                "create_vpc",
                bus=bus,
                compensate=PluginStep("undo-network", "infra", "delete_vpc", bus=bus),
            ),
            PluginStep("deploy", "infra", "deploy", bus=bus),
        ],
    )
    with pytest.raises(SagaFailed):
        await saga.run()
    assert commands == ["create_vpc None", "deploy vpc-1", "delete_vpc vpc-1"]


def test_bad_definitions_are_refused() -> None:
    with pytest.raises(WorkflowError, match="duplicate step id 'double'"):
        Sequential("c", [double, Sequential("inner", [double])])
    with pytest.raises(WorkflowError, match="needs at least one step"):
        Parallel("p", [])
    with pytest.raises(WorkflowError, match="non-empty string"):
        FunctionStep("", double)
    with pytest.raises(WorkflowError, match="timeout must be a positive number"):
        FunctionStep("s", double, timeout=0)
    with pytest.raises(WorkflowError, match="wrap it as FunctionStep"):
        Sequential("c", [lambda v: v])
    with pytest.raises(TypeError, match="must be a Step or a callable"):
        Sequential("c", [42])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="condition must be callable"):
        FunctionStep("s", double, condition="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="steps must be a list"):
        Saga("s", "abc")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="branches\\[0\\] must be"):
        Conditional("c", [double])  # type: ignore[list-item]
    with pytest.raises(WorkflowError, match="at least one branch"):
        Conditional("c", [])
    with pytest.raises(TypeError, match="bus must be a MessageBus"):
        PluginStep("p", "x", "y", bus=None)  # type: ignore[arg-type]
    with pytest.raises(WorkflowError, match="plugin must be a plugin id"):
        PluginStep("p", "a/b", "y", bus=get_message_bus("o"))
    with pytest.raises(TypeError, match="store must be a SagaStore"):
        Saga("s", [double], store="x")  # type: ignore[arg-type]
