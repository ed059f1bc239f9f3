"""Chains of steps: sequential, parallel, conditional, and sagas with compensations.

A step is an async (or plain) callable of one value, the previous step's result, wrapped
in a `Step` that adds what every kind shares: an ``id`` unique in its chain, a
``condition`` (the step is skipped and the value passes through unchanged when it is
false), a ``transform`` of the value before the step sees it, a ``timeout`` in seconds of
the event loop's clock, and a ``compensate`` callable that undoes the step in a saga.
`PluginStep` sends ``{command, parameters}`` to ``plugin/<id>/request`` over a bus handle.

Failures name their place: a step that raises becomes `StepFailed` whose ``path`` lists
the step ids from the outermost chain down, and ``__cause__`` is the original error.

Sagas persist their progress in a `SagaStore` when given one. On restart, `Saga.recover`
**compensates** every run the crash interrupted (rather than resuming it); see its
docstring for why.
"""

from __future__ import annotations

import abc
import asyncio
import inspect
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from jira_orchestrator._core.errors import RequestTimeout
from jira_orchestrator._core.ids import new_id
from jira_orchestrator._core.protocol import CommandRequest, plugin_request
from jira_orchestrator._core.text import escape_control
from jira_orchestrator.messagebus import MessageBus
from jira_orchestrator.orchestrator.errors import (
    ParallelStepsFailed,
    PluginFailed,
    SagaFailed,
    SagaStoreError,
    StepFailed,
    StepTimeout,
    WorkflowError,
    command_result,
)
from jira_orchestrator.orchestrator.rights import Plugins, manifests_of, routing_refusal
from jira_orchestrator.orchestrator.sagastore import SagaRunStatus, SagaStore

__all__ = [
    "Compensation",
    "Condition",
    "Conditional",
    "FunctionStep",
    "Parallel",
    "ParallelResult",
    "PluginStep",
    "Saga",
    "SagaRecovery",
    "Sequential",
    "Step",
    "StepFunction",
    "StepLike",
    "Transform",
    "as_step",
]

log = logging.getLogger("jira_orchestrator.orchestrator.chains")

StepFunction = Callable[[Any], Any]
"""``fn(value) -> result``, sync or async."""
Condition = Callable[[Any], Any]
"""``when(value) -> bool``, sync or async."""
Transform = Callable[[Any], Any]
"""``transform(value) -> new value``, sync or async."""
Compensation = Callable[[Any], Any]
"""``undo(result)``, sync or async: receives the result of the step it undoes."""

# Failures of a whole block keep their own type as they pass up through other blocks.
_BLOCK_FAILURES = (ParallelStepsFailed, SagaFailed)


async def _call(function: Callable[[Any], Any], value: Any) -> Any:
    result = function(value)
    if inspect.isawaitable(result):
        result = await result
    return result


def _check_callable(name: str, value: Any, owner: str) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"step {owner!r}: {name} must be callable, not {type(value).__name__}")


class Step(abc.ABC):
    """The base of every step kind. Run it with ``await step.run(value)``.

    ``timeout`` (seconds) bounds the step itself, not its condition or transform; past it
    the step is cancelled and `StepTimeout` raised.
    """

    kind: ClassVar[str] = "step"

    def __init__(
        self,
        id: str,
        *,
        condition: Condition | None = None,
        transform: Transform | None = None,
        timeout: float | None = None,
        compensate: Compensation | None = None,
    ) -> None:
        if not isinstance(id, str) or not id.strip():
            raise WorkflowError([f"a step id must be a non-empty string, not {id!r}"])
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
        ):
            raise WorkflowError([f"step {id!r}: timeout must be a positive number of seconds"])
        _check_callable("condition", condition, id)
        _check_callable("transform", transform, id)
        _check_callable("compensate", compensate, id)
        self.id = id
        self.condition = condition
        self.transform = transform
        self.timeout = None if timeout is None else float(timeout)
        self.compensate = compensate

    def children(self) -> tuple[Step, ...]:
        """The steps directly inside this one."""
        return ()

    def walk(self) -> Iterator[Step]:
        """This step and every step inside it, depth first."""
        yield self
        for child in self.children():
            yield from child.walk()

    async def run(self, value: Any = None) -> Any:
        """Run the step on ``value`` and return its result (``value`` itself when skipped)."""
        return (await self.attempt(value))[1]

    async def __call__(self, value: Any = None) -> Any:
        return await self.run(value)

    async def attempt(self, value: Any) -> tuple[bool, Any]:
        """``(ran, result)``: like `run`, and whether the step ran or was skipped."""
        scope = asyncio.timeout(self.timeout)
        try:
            if self.condition is not None and not await _call(self.condition, value):
                return False, value
            if self.transform is not None:
                value = await _call(self.transform, value)
            async with scope:
                result = await self._execute(value)
        except StepFailed as exc:
            if exc.path[0] != self.id:
                exc.path.insert(0, self.id)
            raise
        except _BLOCK_FAILURES:
            raise
        except TimeoutError as exc:
            if self.timeout is not None and scope.expired():
                raise StepTimeout(self.id, self.timeout) from exc
            raise StepFailed(self.id, exc) from exc
        except Exception as exc:
            raise StepFailed(self.id, exc) from exc
        return True, result

    @abc.abstractmethod
    async def _execute(self, value: Any) -> Any:
        """Run this step on ``value`` (each kind of step says how)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r})"


StepLike = Step | StepFunction
"""A `Step`, or a callable that becomes a `FunctionStep` named after it."""


def as_step(item: StepLike) -> Step:
    """``item`` if it is a `Step`, else a `FunctionStep` whose id is the callable's name."""
    if isinstance(item, Step):
        return item
    if callable(item):
        name = getattr(item, "__name__", None)
        if not isinstance(name, str) or name == "<lambda>":
            raise WorkflowError(
                [f"{item!r} has no usable name: wrap it as FunctionStep('some-id', fn)"]
            )
        return FunctionStep(name, item)
    raise TypeError(f"a step must be a Step or a callable, not {type(item).__name__}")


class FunctionStep(Step):
    """A step that awaits ``function(value)``."""

    kind = "call"

    def __init__(
        self,
        id: str,
        function: StepFunction,
        *,
        condition: Condition | None = None,
        transform: Transform | None = None,
        timeout: float | None = None,
        compensate: Compensation | None = None,
    ) -> None:
        super().__init__(
            id, condition=condition, transform=transform, timeout=timeout, compensate=compensate
        )
        _check_callable("function", function, id)
        if function is None:
            raise TypeError(f"step {id!r}: function must be callable, not None")
        self.function = function

    async def _execute(self, value: Any) -> Any:
        return await _call(self.function, value)


class PluginStep(Step):
    """A step that asks a plugin to run a command, over ``bus``.

    It sends ``{command, parameters}`` to ``plugin/<plugin>/request``, where ``parameters``
    is the step's own ``parameters`` plus ``input``, the value the step was given (unless
    it is None). An answer ``{status: "error", error}``, or one that is not a command
    reply, fails the step with `PluginFailed` (also named `PluginStepError`); ``{status:
    "success", result}`` gives ``result``. Without a ``timeout``, the bus's request
    timeout applies.

    With ``plugins`` (their manifests), a step run on a plugin's bus handle is held to that
    plugin's rights, as NATS holds it: it fails with `PluginFailed` (counted in
    ``refused``, one log line) without sending anything when the plugin's ``canRouteTo``
    does not name the target or the target's ``acceptsRoutingFrom`` does not admit it. A
    handle that is no plugin's (the orchestrator's, an operator's script) is not held.
    """

    kind = "plugin"

    def __init__(
        self,
        id: str,
        plugin: str,
        command: str,
        *,
        bus: MessageBus,
        parameters: Mapping[str, Any] | None = None,
        condition: Condition | None = None,
        transform: Transform | None = None,
        timeout: float | None = None,
        compensate: Compensation | None = None,
        plugins: Plugins | None = None,
    ) -> None:
        super().__init__(
            id, condition=condition, transform=transform, timeout=timeout, compensate=compensate
        )
        if not isinstance(plugin, str) or not plugin or "/" in plugin or "." in plugin:
            raise WorkflowError([f"step {id!r}: plugin must be a plugin id, not {plugin!r}"])
        if not isinstance(command, str) or not command:
            raise WorkflowError([f"step {id!r}: command must be a non-empty string"])
        if not isinstance(bus, MessageBus):
            raise TypeError(f"step {id!r}: bus must be a MessageBus, not {type(bus).__name__}")
        if parameters is not None and not isinstance(parameters, Mapping):
            raise WorkflowError([f"step {id!r}: parameters must be an object"])
        self.plugin = plugin
        self.command = command
        self.bus = bus
        self.parameters = dict(parameters or {})
        self.manifests = None if plugins is None else manifests_of(plugins)
        self.refused = 0

    async def _execute(self, value: Any) -> Any:
        sender = self.bus.plugin_id
        if self.manifests is not None and sender in self.manifests:
            refusal = routing_refusal(self.manifests, sender, self.plugin)
            if refusal is not None:
                self.refused += 1
                log.warning("step %r refused: %s", self.id, escape_control(refusal))
                raise PluginFailed(self.plugin, f"refused: {refusal}", command=self.command)
        parameters = dict(self.parameters)
        if value is not None:
            parameters["input"] = value
        try:
            response = await self.bus.request(
                destination=self.plugin,
                topic=plugin_request(self.plugin),
                payload=CommandRequest(command=self.command, parameters=parameters).model_dump(),
                timeout=self.timeout,
            )
        except RequestTimeout as exc:
            if self.timeout is None:
                raise
            # The bus and the step share the deadline; either may notice it first.
            raise StepTimeout(self.id, self.timeout) from exc
        return command_result(self.plugin, response, self.command)


def _children(owner: str, items: Sequence[StepLike], *, allow_empty: bool = False) -> list[Step]:
    if isinstance(items, str | bytes) or not isinstance(items, Sequence):
        raise TypeError(f"step {owner!r}: steps must be a list of steps")
    steps = [as_step(item) for item in items]
    if not steps and not allow_empty:
        raise WorkflowError([f"step {owner!r}: needs at least one step"])
    return steps


def _check_unique(root: Step) -> None:
    seen: set[str] = set()
    duplicates: list[str] = []
    for step in root.walk():
        if step.id in seen and step.id not in duplicates:
            duplicates.append(step.id)
        seen.add(step.id)
    if duplicates:
        raise WorkflowError([f"chain {root.id!r}: duplicate step id {dup!r}" for dup in duplicates])


class Sequential(Step):
    """Runs its steps one after the other, each on the previous one's result."""

    kind = "sequential"

    def __init__(
        self,
        id: str,
        steps: Sequence[StepLike],
        *,
        condition: Condition | None = None,
        transform: Transform | None = None,
        timeout: float | None = None,
        compensate: Compensation | None = None,
    ) -> None:
        super().__init__(
            id, condition=condition, transform=transform, timeout=timeout, compensate=compensate
        )
        self.steps = _children(id, steps)
        _check_unique(self)

    def children(self) -> tuple[Step, ...]:
        return tuple(self.steps)

    async def _execute(self, value: Any) -> Any:
        for step in self.steps:
            _, value = await step.attempt(value)
        return value


class ParallelResult(dict[str, Any]):
    """The results of a `Parallel` block by step id, with ``errors`` by step id too.

    ``skipped`` lists the steps whose condition was false; ``complete`` is True when no
    step failed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.errors: dict[str, Exception] = {}
        self.skipped: list[str] = []

    @property
    def complete(self) -> bool:
        """No step failed."""
        return not self.errors


class Parallel(Step):
    """Runs its steps side by side, each on the same value; returns a `ParallelResult`.

    Each step's own ``timeout`` bounds it alone. When a step fails, the others still
    finish; then `ParallelStepsFailed` (carrying the partial result) is raised, unless
    ``allow_partial`` is True, in which case the partial result is returned with its
    ``errors``.
    """

    kind = "parallel"

    def __init__(
        self,
        id: str,
        steps: Sequence[StepLike],
        *,
        allow_partial: bool = False,
        condition: Condition | None = None,
        transform: Transform | None = None,
        timeout: float | None = None,
        compensate: Compensation | None = None,
    ) -> None:
        super().__init__(
            id, condition=condition, transform=transform, timeout=timeout, compensate=compensate
        )
        self.steps = _children(id, steps)
        self.allow_partial = bool(allow_partial)
        _check_unique(self)

    def children(self) -> tuple[Step, ...]:
        return tuple(self.steps)

    async def _execute(self, value: Any) -> ParallelResult:
        outcomes = await asyncio.gather(
            *(step.attempt(value) for step in self.steps), return_exceptions=True
        )
        result = ParallelResult()
        for step, outcome in zip(self.steps, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, Exception):
                    raise outcome
                if isinstance(outcome, StepFailed):
                    outcome.path.insert(0, self.id)
                result.errors[step.id] = outcome
            elif outcome[0]:
                result[step.id] = outcome[1]
            else:
                result.skipped.append(step.id)
        if result.errors and not self.allow_partial:
            raise ParallelStepsFailed(self.id, result)
        return result


class Conditional(Step):
    """Runs the step of the first branch whose condition holds, else ``otherwise``.

    ``branches`` is a list of ``(condition, step)``; with no branch taken and no
    ``otherwise``, the value passes through unchanged.
    """

    kind = "conditional"

    def __init__(
        self,
        id: str,
        branches: Sequence[tuple[Condition, StepLike]],
        *,
        otherwise: StepLike | None = None,
        condition: Condition | None = None,
        transform: Transform | None = None,
        timeout: float | None = None,
        compensate: Compensation | None = None,
    ) -> None:
        super().__init__(
            id, condition=condition, transform=transform, timeout=timeout, compensate=compensate
        )
        if isinstance(branches, str | bytes) or not isinstance(branches, Sequence):
            raise TypeError(f"step {id!r}: branches must be a list of (condition, step)")
        self.branches: list[tuple[Condition, Step]] = []
        for index, branch in enumerate(branches):
            if not isinstance(branch, tuple) or len(branch) != 2 or not callable(branch[0]):
                raise TypeError(f"step {id!r}: branches[{index}] must be (condition, step)")
            self.branches.append((branch[0], as_step(branch[1])))
        self.otherwise = None if otherwise is None else as_step(otherwise)
        if not self.branches and self.otherwise is None:
            raise WorkflowError([f"step {id!r}: needs at least one branch or otherwise"])
        _check_unique(self)

    def children(self) -> tuple[Step, ...]:
        steps = [step for _, step in self.branches]
        return (*steps, self.otherwise) if self.otherwise is not None else tuple(steps)

    async def _execute(self, value: Any) -> Any:
        for when, step in self.branches:
            if await _call(when, value):
                return await step.run(value)
        if self.otherwise is not None:
            return await self.otherwise.run(value)
        return value


@dataclass
class SagaRecovery:
    """What `Saga.recover` did with one interrupted run.

    ``compensated`` lists the step ids undone, newest first; ``compensation_errors`` maps
    step ids to the error their compensation raised; ``interrupted`` is the step that was
    running at the crash (its effect is unknown, so it is not compensated).
    """

    run_id: str
    status: SagaRunStatus
    compensated: list[str] = field(default_factory=list)
    compensation_errors: dict[str, Exception] = field(default_factory=dict)
    interrupted: str | None = None


class Saga(Step):
    """Runs its steps in order; when one fails, compensates the completed ones in reverse.

    Each step's ``compensate`` receives that step's result. Every compensation is tried
    even when one fails; failures are recorded (in the store and in `SagaFailed`), never
    swallowed. A step without ``compensate`` has nothing to undo. With a ``store``, every
    transition is on disk before the saga goes on, and `recover` finishes runs a crash
    interrupted.
    """

    kind = "saga"

    def __init__(
        self,
        id: str,
        steps: Sequence[StepLike],
        *,
        store: SagaStore | None = None,
        condition: Condition | None = None,
        transform: Transform | None = None,
        timeout: float | None = None,
        compensate: Compensation | None = None,
    ) -> None:
        super().__init__(
            id, condition=condition, transform=transform, timeout=timeout, compensate=compensate
        )
        if store is not None and not isinstance(store, SagaStore):
            raise TypeError(f"saga {id!r}: store must be a SagaStore, not {type(store).__name__}")
        self.steps = _children(id, steps)
        self.store = store
        _check_unique(self)

    def children(self) -> tuple[Step, ...]:
        return tuple(self.steps)

    async def _save(self, method: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        if self.store is not None:
            await asyncio.to_thread(method, *args, **kwargs)

    async def _execute(self, value: Any) -> Any:
        return await self.execute(value)

    async def execute(self, value: Any = None, *, run_id: str | None = None) -> Any:
        """Run the saga (ignoring its own condition and transform) as run ``run_id``.

        Raises `SagaFailed` after compensating when a step fails. When cancelled, the run
        stays ``running`` in the store, for `recover`.
        """
        run_id = new_id() if run_id is None else run_id
        store = self.store
        if store is not None:
            await self._save(store.start_run, run_id, self.id, value)
        done: list[tuple[int, Step, Any]] = []
        for position, step in enumerate(self.steps):
            if store is not None:
                await self._save(store.step_started, run_id, position, step.id)
            try:
                ran, result = await step.attempt(value)
            except Exception as exc:
                if store is not None:
                    await self._save(store.set_step, run_id, position, "failed", error=exc)
                    await self._save(store.set_run, run_id, "compensating", f"{step.id}: {exc}")
                compensated, errors = await self._compensate(run_id, done)
                if store is not None:
                    status: SagaRunStatus = "compensation-failed" if errors else "compensated"
                    await self._save(store.set_run, run_id, status)
                raise SagaFailed(self.id, run_id, step.id, exc, compensated, errors) from exc
            if store is not None:
                if ran:
                    await self._save(store.set_step, run_id, position, "completed", result=result)
                else:
                    await self._save(store.set_step, run_id, position, "skipped")
            if ran:
                done.append((position, step, result))
            value = result
        if store is not None:
            await self._save(store.set_run, run_id, "completed")
        return value

    async def _compensate(
        self, run_id: str, done: Sequence[tuple[int, Step, Any]]
    ) -> tuple[list[str], dict[str, Exception]]:
        compensated: list[str] = []
        errors: dict[str, Exception] = {}
        store = self.store
        for position, step, result in reversed(done):
            if step.compensate is None:
                continue
            if store is not None:
                await self._save(store.set_step, run_id, position, "compensating")
            try:
                await _call(step.compensate, result)
            except Exception as exc:
                log.error(
                    "saga %r run %s: compensation of %r failed: %s: %s",
                    self.id, run_id, step.id, type(exc).__name__, escape_control(exc),
                )  # fmt: skip
                errors[step.id] = exc
                if store is not None:
                    await self._save(
                        store.set_step, run_id, position, "compensation-failed", error=exc
                    )
                continue
            compensated.append(step.id)
            if store is not None:
                await self._save(store.set_step, run_id, position, "compensated")
        return compensated, errors

    async def recover(self) -> list[SagaRecovery]:
        """Compensate every run of this saga that a crash left unfinished; oldest first.

        The choice is compensate, not resume. A run interrupted by a crash has lost its
        caller: whoever started it got no answer and may have retried or given up, so
        finishing the work later could do it twice or do what nobody waits for any more.
        Resuming would also need every step's input to survive the crash and every step to
        be idempotent, since the one running at the crash may or may not have taken effect.
        Compensating needs only the completed steps' results, which are on disk, and brings
        the system back to where it was before the run, which the caller can retry safely.

        Completed steps are compensated newest first, exactly once each: a step is marked
        ``compensating`` on disk before its compensation runs and ``compensated`` after, and
        a step marked ``compensated`` is never compensated again. Only a crash *during* a
        compensation runs that one compensation again, so compensations should be
        idempotent. The step running at the crash is marked ``interrupted`` and not
        compensated: its result, which the compensation needs, was never recorded.
        Steps whose compensation failed are left ``compensation-failed`` for an operator.
        """
        store = self.store
        if store is None:
            raise SagaStoreError(f"saga {self.id!r} has no store to recover from")
        by_position = dict(enumerate(self.steps))
        outcomes: list[SagaRecovery] = []
        runs = await asyncio.to_thread(store.runs, self.id, unfinished=True)
        for run in runs:
            await self._save(store.set_run, run.run_id, "compensating", "interrupted by a restart")
            outcome = SagaRecovery(run.run_id, "compensating")
            done: list[tuple[int, Step, Any]] = []
            for record in run.steps:
                if record.status == "started":
                    outcome.interrupted = record.step_id
                    await self._save(store.set_step, run.run_id, record.position, "interrupted")
                elif record.status in ("completed", "compensating"):
                    step = by_position.get(record.position)
                    if step is None or step.id != record.step_id:
                        error = SagaStoreError(
                            f"step {record.step_id!r} (position {record.position}) is not in "
                            f"saga {self.id!r} any more; cannot compensate it"
                        )
                        outcome.compensation_errors[record.step_id] = error
                        await self._save(
                            store.set_step,
                            run.run_id,
                            record.position,
                            "compensation-failed",
                            error=error,
                        )
                    else:
                        done.append((record.position, step, record.result))
            compensated, errors = await self._compensate(run.run_id, done)
            outcome.compensated = compensated
            outcome.compensation_errors.update(errors)
            outcome.status = "compensation-failed" if outcome.compensation_errors else "compensated"
            await self._save(store.set_run, run.run_id, outcome.status)
            outcomes.append(outcome)
        return outcomes
