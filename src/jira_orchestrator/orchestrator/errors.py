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
│   ├── PluginStepError                   a plugin answered ``{status: "error"}``
│   ├── ParallelStepsFailed               a parallel block that must not be partial was
│   └── SagaFailed                        a saga step failed; compensations have run
└── SagaStoreError                        the saga progress database
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from jira_orchestrator._core.errors import JiraOrchestratorError

if TYPE_CHECKING:
    from jira_orchestrator.orchestrator.chains import ParallelResult

__all__ = [
    "ChainError",
    "DeadLetterError",
    "DeadLetterNotFound",
    "DeadLetterStoreCorrupt",
    "ParallelStepsFailed",
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


class PluginStepError(ChainError):
    """A plugin answered a step's request with ``{status: "error", error}``."""

    def __init__(self, plugin: str, command: str, error: Any) -> None:
        self.plugin = plugin
        self.command = command
        self.remote_error = error
        super().__init__(f"plugin {plugin!r} failed command {command!r}: {error}")


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
