"""Orchestrator replicas: two or more orchestrators sharing the issue intake.

Issues reach the orchestrators as durable requests on ``plugin/jira-orchestrator/request``
(`submit`), ``{"command": "dispatch", "parameters": {"issue": ..., "taskId": ...}}``.
Every replica reads them through one queue group (``queue="jira-orchestrator"``): on NATS
a JetStream consumer shared by the replicas, so each issue goes to one replica, and the
issue a replica held when it died goes to another one after ``ack_wait``.

Nothing is done twice, although delivery is at least once:

- **into the intake**, the request's ``Nats-Msg-Id`` is its ``messageId``: a submitter
  that retries the same message is stored once (JetStream's two-minute window);
- **the task id** is the issue's ``taskId`` (the submitter's, say the Jira issue key and
  event), or else the intake message's ``messageId``, the same on every redelivery. A
  replica that finds the task finished in its task store answers from it without
  dispatching; otherwise it dispatches under that task id;
- **to the plugins**, each request carries the task id in its ``taskId`` header
  (`TASK_HEADER`): a plugin keys the side effects that count (a Jira comment, a file) by
  it, so the same task sent again, by another replica or after a redelivery, finds them
  done and answers as before.

A dispatch that failed only because its plugins were absent (nobody answering: a process
being restarted, a client moving to another node) is tried again, health checked first,
with backoff (0.5 s doubling to 4 s) for up to ``unavailable_for`` seconds (60 by
default): ``up`` restarts what died. A dispatch that no plugin could complete after that,
or that a plugin failed, is dead-lettered (reason ``dispatch-failed``, with the error) and
answered: every issue ends completed, or dead-lettered with its reason.

Run a replica as a process of its own with ``python -m jira_orchestrator.orchestrator.replicas
--plugins DIR --tasks FILE`` (the bus URL from ``$JIRA_ORCHESTRATOR_BUS_URL``); ``up``'s
orchestrator serves the intake too.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from jira_orchestrator._core.errors import JiraOrchestratorError, NoResponders, RequestTimeout
from jira_orchestrator.messagebus import Message, MessageBus, Subscription
from jira_orchestrator.orchestrator.dispatcher import (
    ORCHESTRATOR_ID,
    TASK_HEADER,
    DispatchResult,
    Orchestrator,
)
from jira_orchestrator.orchestrator.tasks import TASKS_ENV

__all__ = [
    "DISPATCH_FAILED",
    "INTAKE_TOPIC",
    "TASK_HEADER",
    "Intake",
    "intake_payload",
    "main",
    "submit",
]

log = logging.getLogger("jira_orchestrator.orchestrator.replicas")

INTAKE_TOPIC = f"plugin/{ORCHESTRATOR_ID}/request"
PLUGINS_ENV = "JIRA_ORCHESTRATOR_PLUGINS"
NO_RESPONDERS = str(NoResponders("")).partition("''")[0]  # "no responders subscribed to "
DISPATCH_FAILED = "dispatch-failed"
"""The dead-letter reason of an issue no plugin could complete."""


def intake_payload(issue: Mapping[str, Any] | str, task_id: str | None = None) -> dict[str, Any]:
    """The request body of one issue for the intake."""
    parameters: dict[str, Any] = {"issue": issue}
    if task_id is not None:
        parameters["taskId"] = task_id
    return {"command": "dispatch", "parameters": parameters}


async def submit(
    bus: MessageBus,
    issue: Mapping[str, Any] | str,
    *,
    task_id: str | None = None,
    timeout: float = 300.0,
    patience: float | None = None,
) -> dict[str, Any]:
    """Hand ``issue`` to whichever replica takes it; return its `DispatchResult` as a
    dict (``outcome``: completed, failed or triaged).

    With a ``task_id``, an answer not heard within ``patience`` seconds (the answer is
    not stored: it can be lost while this process reconnects to another node) is asked
    for again, under the same task id, until ``timeout``: a replica that finished the
    task answers from its store, another one sends it again and the plugin, keyed by
    the task id, answers as before. Raises `RequestTimeout` after ``timeout``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    wait = timeout if patience is None or task_id is None else patience
    while True:
        remaining = deadline - loop.time()
        try:
            reply = await bus.request(
                topic=INTAKE_TOPIC,
                payload=intake_payload(issue, task_id),
                timeout=max(min(wait, remaining), 0.001),
            )
        except RequestTimeout:
            if task_id is None or deadline - loop.time() <= 0:
                raise
            log.warning("no answer for task %s yet; asking again", task_id)
            continue
        break
    if not isinstance(reply, Mapping) or reply.get("status") != "success":
        raise JiraOrchestratorError(f"the intake answered {reply!r:.300}")
    result = reply.get("result")
    if not isinstance(result, dict):
        raise JiraOrchestratorError(f"the intake answered no result: {reply!r:.300}")
    return result


class Intake:
    """Serves the intake for one orchestrator (one replica of several)."""

    def __init__(
        self,
        orchestrator: Orchestrator,
        *,
        unavailable_for: float = 60.0,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.orchestrator = orchestrator
        self.bus = orchestrator.bus
        self.unavailable_for = unavailable_for
        self._sleep = sleep
        self._subscription: Subscription | None = None
        self.dispatched = 0
        self.answered_from_store = 0
        self.refused = 0
        self.retried_unavailable = 0
        """Dispatches tried again because every plugin for them was absent."""

    def start(self) -> None:
        if self._subscription is None:
            self._subscription = self.bus.subscribe(
                INTAKE_TOPIC, self._on_request, queue=ORCHESTRATOR_ID
            )

    def stop(self) -> None:
        if self._subscription is not None:
            self._subscription.unsubscribe()
            self._subscription = None

    async def _answer(self, message: Message, reply: dict[str, Any]) -> None:
        if message.correlation_id is not None:
            await self.bus.respond(message.correlation_id, reply)

    async def _on_request(self, message: Message) -> None:
        payload = message.payload
        parameters = payload.get("parameters") if isinstance(payload, Mapping) else None
        issue = parameters.get("issue") if isinstance(parameters, Mapping) else None
        if (
            not isinstance(payload, Mapping)
            or payload.get("command") != "dispatch"
            or not isinstance(issue, Mapping | str)
        ):
            self.refused += 1
            error = "the intake takes {command: 'dispatch', parameters: {issue: {...}}}"
            await self._answer(message, {"status": "error", "error": error, "callerError": True})
            with _quiet():
                await self.bus.dead_letter(
                    message, reason="invalid-message", error=ValueError(error)
                )
            return
        assert isinstance(parameters, Mapping)
        given = parameters.get("taskId")
        task_id = given if isinstance(given, str) and given else f"intake-{message.message_id}"
        orchestrator = self.orchestrator
        stored = orchestrator.tasks.get(task_id)
        if stored is not None and stored.status in ("completed", "failed", "triaged"):
            # the same task again (a redelivery, a submitter's retry): answer, do not redo
            self.answered_from_store += 1
            await self._answer(message, {"status": "success", "result": _from_store(stored)})
            return
        result = await orchestrator.dispatch(issue, task_id=task_id)
        waited, delay = 0.0, 0.5
        while result.outcome == "failed" and _absent(result) and waited < self.unavailable_for:
            self.retried_unavailable += 1
            await self._sleep(delay)  # the backoff itself: the plugins are being restarted
            waited += delay
            delay = min(delay * 2, 4.0)
            await orchestrator.refresh_health()
            result = await orchestrator.dispatch(issue, task_id=task_id)
        self.dispatched += 1
        if result.outcome == "failed":
            with _quiet():
                await self.bus.dead_letter(
                    message,
                    reason=DISPATCH_FAILED,
                    error=JiraOrchestratorError(result.error or "no plugin could do it"),
                )
        await self._answer(message, {"status": "success", "result": result.to_dict()})


def _absent(result: DispatchResult) -> bool:
    """Whether every plugin tried was absent (nobody answering) or skipped as down."""
    return bool(result.attempts) and all(
        attempt.outcome == "skipped" or (attempt.error or "").startswith(NO_RESPONDERS)
        for attempt in result.attempts
    )


def _from_store(task: Any) -> dict[str, Any]:
    request = task.request.get("request") if isinstance(task.request, Mapping) else None
    key = request.get("key") if isinstance(request, Mapping) else None
    return {
        "taskId": task.id,
        "issueKey": key,
        "plugin": task.plugin,
        "outcome": task.status,
        "result": task.result,
        "error": task.error,
        "attempts": task.attempts,
        "fromStore": True,
    }


class _quiet:
    """Suppress (and log) a failure to send a dead letter: the answer still goes."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: Any, tb: Any) -> bool:
        if isinstance(error, JiraOrchestratorError):
            log.warning("could not dead-letter an intake request: %s", error)
            return True
        return False


async def _serve(plugins: Path, tasks: Path, heartbeat: float) -> None:
    orchestrator = Orchestrator(
        plugins, bus_url=os.environ.get("JIRA_ORCHESTRATOR_BUS_URL"), tasks=tasks,
        heartbeat=heartbeat,
    )  # fmt: skip
    intake = Intake(orchestrator)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await orchestrator.start()
        intake.start()
        await orchestrator.bus.transport.flush()
        log.warning("orchestrator replica %d serving the intake", os.getpid())
        print("replica ready", flush=True)
        await stop.wait()
    finally:
        intake.stop()
        await orchestrator.stop()
        from jira_orchestrator.messagebus import close_message_bus

        await close_message_bus()
        orchestrator.close()


def main(argv: list[str] | None = None) -> None:
    """``python -m jira_orchestrator.orchestrator.replicas --plugins DIR --tasks FILE``;
    the options default to ``$JIRA_ORCHESTRATOR_PLUGINS`` and ``$JIRA_ORCHESTRATOR_TASKS``."""
    parser = argparse.ArgumentParser(description="an orchestrator replica serving the intake")
    plugins, tasks = os.environ.get(PLUGINS_ENV), os.environ.get(TASKS_ENV)
    parser.add_argument("--plugins", type=Path, default=plugins, required=plugins is None)
    parser.add_argument(
        "--tasks", type=Path, default=tasks, required=tasks is None, help="task database"
    )
    parser.add_argument("--heartbeat", type=float, default=5.0, help="seconds between checks")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="[replica] %(levelname)s %(message)s")
    asyncio.run(_serve(options.plugins, options.tasks, options.heartbeat))


if __name__ == "__main__":
    main()
