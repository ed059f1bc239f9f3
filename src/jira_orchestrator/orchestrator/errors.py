"""Errors of the orchestrator package, below ``JiraOrchestratorError``.

JiraOrchestratorError
├── DeadLetterError                       the dead-letter store
│   ├── DeadLetterStoreCorrupt            not SQLite, damaged, or not a dead-letter store
│   ├── DeadLetterNotFound (LookupError)  no letter with that id
│   ├── ReplayError (ValueError)          the letter's original message cannot be replayed
│   └── ReplayNotDelivered                nobody confirmed receiving the replay; still pending
├── WorkflowError (ValueError)            a workflow file or definition, every problem at once
├── ChainError                            a chain failed while running
│   ├── StepFailed                        one step raised; names its path in the chain
│   │   └── StepTimeout (TimeoutError)    a step ran past its timeout
│   ├── PluginFailed                      a plugin's command failed (alias PluginStepError)
│   ├── ParallelStepsFailed               a parallel block that must not be partial was
│   └── SagaFailed                        a saga step failed; compensations have run
└── SagaStoreError                        the saga progress database
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from jira_orchestrator._core.errors import InvalidMessage, InvalidParams, JiraOrchestratorError
from jira_orchestrator._core.protocol import CommandReply

if TYPE_CHECKING:
    from jira_orchestrator.orchestrator.chains import ParallelResult

__all__ = [
    "ChainError",
    "DeadLetterError",
    "DeadLetterNotFound",
    "DeadLetterStoreCorrupt",
    "ParallelStepsFailed",
    "PluginFailed",
    "PluginStepError",
    "ReplayError",
    "ReplayNotDelivered",
    "SagaFailed",
    "SagaStoreError",
    "StepFailed",
    "StepTimeout",
    "WorkflowError",
]


class DeadLetterError(JiraOrchestratorError):
    """The dead-letter store could not be read or written."""


class DeadLetterStoreCorrupt(DeadLetterError):
    """The file is not SQLite, is damaged, or holds something other than dead letters."""


class DeadLetterNotFound(DeadLetterError, LookupError):
    """No dead letter has that id."""

    def __init__(self, letter_id: int) -> None:
        self.letter_id = letter_id
        super().__init__(f"no dead letter with id {letter_id}")


class ReplayError(DeadLetterError, ValueError):
    """A letter whose original message is missing or malformed; the letter is kept."""

    def __init__(self, letter_id: int, reason: str) -> None:
        self.letter_id = letter_id
        self.reason = reason
        super().__init__(f"dead letter {letter_id} cannot be replayed: {reason}")


class ReplayNotDelivered(DeadLetterError):
    """Nobody confirmed receiving a replayed letter, so it was not marked replayed."""

    def __init__(self, letter_id: int, reason: str) -> None:
        self.letter_id = letter_id
        self.reason = reason
        super().__init__(f"dead letter {letter_id} not replayed: {reason}; it stays pending")


class WorkflowError(JiraOrchestratorError, ValueError):
    """A bad workflow; each problem reads ``file: path: reason``."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems) if self.problems else "invalid workflow")


class ChainError(JiraOrchestratorError):
    """A chain failed while running."""


class StepFailed(ChainError):
    """A step raised; ``path`` is the step ids from the outermost chain, ``__cause__`` the error."""

    def __init__(self, step_id: str, error: BaseException) -> None:
        self.path = [step_id]
        self.error = error
        super().__init__(step_id)

    @property
    def step_id(self) -> str:
        """The id of the step that failed (the innermost one)."""
        return self.path[-1]

    def __str__(self) -> str:
        return f"step {'/'.join(self.path)} failed: {type(self.error).__name__}: {self.error}"


class StepTimeout(StepFailed, TimeoutError):
    """A step did not finish within its ``timeout`` seconds and was cancelled."""

    def __init__(self, step_id: str, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(step_id, TimeoutError(f"no result within {timeout:g}s"))


class PluginFailed(ChainError):
    """A plugin's command failed: it answered ``{status: "error"}``, answered something that
    is not a command reply, or was lost while handling it.

    ``error_type`` is the plugin's ``errorType``, ``remote_error`` its ``error`` (or the
    reply that was not one), ``command`` the command when known. The one exception for this
    failure, raised by the orchestrator's dispatch and by a chain's `PluginStep` alike.
    """

    def __init__(
        self,
        plugin: str,
        message: str,
        error_type: str | None = None,
        *,
        command: str | None = None,
        remote_error: Any = None,
    ) -> None:
        self.plugin = plugin
        self.command = command
        self.error_type = error_type
        self.remote_error = message if remote_error is None else remote_error
        if command is None:
            super().__init__(f"{plugin}: {message}")
        else:
            super().__init__(f"plugin {plugin!r} failed command {command!r}: {message}")


PluginStepError = PluginFailed
"""The name chains used for `PluginFailed`."""


def command_result(plugin: str, payload: Any, command: str | None = None) -> Any:
    """The ``result`` of plugin ``plugin``'s reply to a command; raise `PluginFailed` for
    an error or a payload that is not a reply, `InvalidParams` for the caller's own error
    (``callerError``: not to be retried, not the plugin's fault)."""
    try:
        reply = CommandReply.parse(payload)
    except InvalidMessage as error:
        raise PluginFailed(plugin, str(error), command=command, remote_error=payload) from None
    if reply.ok:
        return reply.result
    message = reply.error or "failed"
    if reply.caller_error:
        raise InvalidParams(f"{plugin}: {message}")
    raise PluginFailed(plugin, message, reply.error_type, command=command)


class ParallelStepsFailed(ChainError):
    """Some branches of a parallel block failed and it does not allow a partial result.

    ``result`` holds what did finish and the errors, by step id.
    """

    def __init__(self, step_id: str, result: ParallelResult) -> None:
        self.step_id = step_id
        self.result = result
        failed = ", ".join(f"{key} ({type(err).__name__})" for key, err in result.errors.items())
        super().__init__(f"parallel block {step_id!r}: {len(result.errors)} failed: {failed}")


class SagaFailed(ChainError):
    """A saga step failed and the completed steps were compensated, newest first.

    ``compensated`` lists the step ids undone in order; ``compensation_errors`` maps the
    step ids whose compensation raised to that error (they are recorded, not swallowed).
    """

    def __init__(
        self,
        saga_id: str,
        run_id: str,
        failed_step: str | None,
        error: BaseException | None,
        compensated: Sequence[str],
        compensation_errors: Mapping[str, BaseException],
    ) -> None:
        self.saga_id = saga_id
        self.run_id = run_id
        self.failed_step = failed_step
        self.error = error
        self.compensated = list(compensated)
        self.compensation_errors = dict(compensation_errors)
        cause = error.error if isinstance(error, StepFailed) else error
        what = (
            f"step {failed_step!r} failed: {type(cause).__name__}: {cause}"
            if failed_step is not None
            else "interrupted"
        )
        tail = f"; compensated {', '.join(self.compensated) or 'nothing'}"
        if self.compensation_errors:
            bad = ", ".join(
                f"{key} ({type(err).__name__}: {err})"
                for key, err in self.compensation_errors.items()
            )
            tail += f"; compensation FAILED for {bad}"
        super().__init__(f"saga {saga_id!r} run {run_id}: {what}{tail}")


class SagaStoreError(JiraOrchestratorError):
    """The saga progress database is unusable (damaged, not ours, I/O)."""
