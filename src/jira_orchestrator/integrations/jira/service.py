"""The Jira loop: accepted events in, routed and dispatched work, decisions and outcomes out.

`JiraService` takes events from the `WebhookInbox` (filled by the webhook receiver or the
JQL poller), one issue at a time, and:

- ``jira:issue_created``: reads the issue as it is now, routes it, writes the decision
  (or, below ``routing.minConfidence``, the triage label and the candidates), dispatches
  it and writes the outcome;
- ``jira:issue_updated``: records a correction when a person moved the routing label, the
  component or the assignee to another plugin, and routes the issue again when a field
  the router reads changed and the decision would change;
- ``jira:issue_deleted``: nothing is dispatched for the issue any more (older events are
  superseded in the inbox);
- ``comment_created``: a person's command, ``/route <plugin>`` (a correction, and the
  issue dispatched to that plugin) or ``/reroute``.

An event is completed in the inbox only once everything it caused is written, so a crash
at any point replays it; every step is idempotent on the task id derived from the event
(``jira-<KEY>-<seq>``): a finished task is not run again, and each comment carries that
id as its reference.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from jira_orchestrator._core import tracing
from jira_orchestrator._core.errors import CircuitOpenError, JiraOrchestratorError
from jira_orchestrator.integrations.jira.client import JiraClient
from jira_orchestrator.integrations.jira.config import JiraConfig
from jira_orchestrator.integrations.jira.errors import (
    JiraError,
    JiraNotFound,
    JiraRateLimited,
    JiraUnavailable,
)
from jira_orchestrator.integrations.jira.inbox import InboxEvent, WebhookInbox
from jira_orchestrator.integrations.jira.writeback import JiraWriteBack
from jira_orchestrator.orchestrator import Attempt, DispatchResult, Orchestrator
from jira_orchestrator.routing import RoutingDecision, RoutingRequest

__all__ = ["ROUTED_FIELDS", "JiraService", "Processed", "outcome_written"]

log = logging.getLogger(__name__)

ROUTED_FIELDS = ("summary", "description", "labels", "components", "issuetype")
"""The fields the router reads: a change to one of them may change the decision."""

_COMMAND = re.compile(r"^\s*/(route|reroute)\b[ \t]*([\w.:-]*)", re.MULTILINE)


class Processed(dict[str, Any]):
    """What processing one event did (JSON-friendly): ``key``, ``action``, the decision's
    plugin, the outcome and what was written to Jira."""

    def line(self) -> str:
        """One line for an operator: ``OPS-1: routed to k8s, completed by k8s (fallback)``."""
        said = f"{self.get('key')}: {self.get('action')}"
        if self.get("routedTo"):
            said += f" to {self['routedTo']}"
        if self.get("outcome"):
            said += f", {self['outcome']}"
            if self.get("doneBy"):
                said += f" by {self['doneBy']}" + (" (fallback)" if self.get("fallback") else "")
        return said


class JiraService:
    """Processes accepted Jira events; ``start`` runs it in the background."""

    def __init__(
        self,
        config: JiraConfig,
        client: JiraClient,
        orchestrator: Orchestrator,
        inbox: WebhookInbox,
        *,
        writeback: JiraWriteBack | None = None,
        concurrency: int = 4,
        idle_wait: float = 5.0,
        on_processed: Callable[[Processed], object] | None = None,
    ) -> None:
        self.config = config
        self.client = client
        self.orchestrator = orchestrator
        self.inbox = inbox
        self.writeback = writeback or JiraWriteBack(client, config)
        self.concurrency = concurrency
        self.idle_wait = idle_wait
        self.on_processed = on_processed
        self.account_id: str | None = None
        self.stats: Counter[str] = Counter()
        self.processed: list[Processed] = []
        """What each event led to, in order (the demo's table; kept while the process runs)."""
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    def notify(self, *_: object) -> None:
        """Wake the loop: an event was stored (the receiver's ``on_stored``)."""
        self._idle.clear()
        self._wake.set()

    async def start(self) -> None:
        """Learn who we are in Jira (our own changes are not corrections), then run."""
        me = await self.client.myself()
        self.account_id = str(me.get("accountId") or "") or None
        self._runner = asyncio.create_task(self._run(), name="jira-service")

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Until no event is pending (every event stored so far has been processed)."""
        self.notify()
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def _run(self) -> None:
        while True:
            claimed = self.inbox.claim(self.concurrency)
            if not claimed:
                if not self.inbox.counts().get("pending"):
                    self._idle.set()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle_wait)
                continue
            await asyncio.gather(*(self.process(item) for item in claimed))

    async def process(self, item: InboxEvent) -> Processed | None:
        """Handle one claimed event and complete or fail it in the inbox."""
        event = item.event
        try:
            with tracing.span(  # a trace per Jira event: routing, dispatch, write-back
                f"jira {event.webhook_event}",
                kind="consumer",
                root=True,
                attributes={"jira.issue_key": event.issue_key, "jira.delivery": item.delivery_id},
            ):
                done = await self._handle(item)
        except (JiraRateLimited, JiraUnavailable, CircuitOpenError) as error:
            self.stats["retried"] += 1
            self.inbox.fail(item.seq, f"Jira unavailable: {error}", retry=True)
            return None
        except (JiraError, JiraOrchestratorError) as error:
            self.stats["failed"] += 1
            self.inbox.fail(item.seq, str(error), retry=False)
            return None
        except Exception as error:  # a bug must not stop the loop: the event is kept
            log.exception("Jira event %d for %s failed", item.seq, event.issue_key)
            self.stats["failed"] += 1
            self.inbox.fail(item.seq, f"{type(error).__name__}: {error}", retry=False)
            return None
        self.inbox.complete(item.seq)
        self.stats["processed"] += 1
        if done is not None:
            self.processed.append(done)
            if self.on_processed is not None:
                self.on_processed(done)
        return done

    async def _handle(self, item: InboxEvent) -> Processed | None:
        event = item.event
        if event.project_key and event.project_key not in self.config.jira.projects:
            self.stats["ignored"] += 1
            return None
        if event.kind == "issue_created":
            return await self._route(item)
        if event.kind == "issue_updated":
            if self.account_id is not None and event.actor == self.account_id:
                return None  # the echo of our own write-back
            corrected = await self._correction(item)
            if corrected is not None:
                return corrected
            if event.changed(*ROUTED_FIELDS):
                return await self._route(item, only_if_changed=True)
            return None
        if event.kind == "issue_deleted":
            self.stats["deleted"] += 1
            return Processed(key=event.issue_key, action="deleted")
        if event.kind == "comment_created" and event.comment is not None:
            if self.account_id is not None and event.comment.author == self.account_id:
                return None
            match = _COMMAND.search(event.comment.body)
            if match is not None:
                self.stats["commands"] += 1
                plugin = match.group(2) if match.group(1) == "route" else None
                if match.group(1) == "route" and not plugin:
                    return None
                return await self._route(item, plugin=plugin)
        return None

    async def _route(
        self, item: InboxEvent, *, plugin: str | None = None, only_if_changed: bool = False
    ) -> Processed:
        key = item.event.issue_key
        task_id = f"jira-{key}-{item.seq}"
        try:
            issue = await self.client.get_issue(key)
        except JiraNotFound:
            self.stats["deleted"] += 1
            return Processed(key=key, action="gone")
        router = self.orchestrator.router
        previous = self._last_plugin(key)
        decision = await router.aroute(RoutingRequest.from_jira(issue))
        if plugin is not None:
            if plugin not in router.plugins:
                known = ", ".join(sorted(router.plugins))
                raise JiraOrchestratorError(f"{key}: /route {plugin}: no such plugin ({known})")
            router.record_correction(decision.request_id, plugin)
            self.stats["corrections"] += 1
            decision = replace(decision, primary_plugin=plugin, fallback_plugins=())
        elif only_if_changed and decision.primary_plugin == previous:
            return Processed(key=key, action="unchanged", routedTo=previous)
        done = Processed(key=key, action="routed", taskId=task_id)
        # The first claim of the event: no comment can carry this task's reference yet.
        first = item.attempts <= 1
        floor = self.config.routing.min_confidence
        unsure = decision.triaged or (
            decision.primary_plugin is not None and decision.confidence < floor
        )
        candidates = self.orchestrator.candidates(decision)
        if plugin is None and (unsure or not candidates):
            self.stats["triaged"] += 1
            written = await self.writeback.triage(
                key, decision, ref=task_id, first=first, fields=issue.get("fields")
            )
            done.update(action="triaged", jira=[written.to_dict()])
            return done
        self.stats["routed"] += 1
        written_decision = await self.writeback.decision(
            key,
            decision,
            ref=task_id,
            candidates=candidates,
            first=first,
            fields=issue.get("fields"),
        )
        result = await self._dispatch(issue, decision, task_id)
        written_outcome = await self.writeback.outcome(key, result, ref=task_id, first=first)
        done.update(
            routedTo=decision.primary_plugin,
            doneBy=result.plugin,
            outcome=result.outcome,
            fallback=result.fallback_used,
            ms=round(result.duration * 1000, 3),
            jira=[written_decision.to_dict(), written_outcome.to_dict()],
        )
        return done

    async def _dispatch(
        self, issue: Mapping[str, Any], decision: RoutingDecision, task_id: str
    ) -> DispatchResult:
        """Dispatch once per task: a task finished before a crash is not run again."""
        record = self.orchestrator.tasks.get(task_id)
        if record is not None and record.status in ("completed", "failed"):
            return DispatchResult(
                task_id=task_id,
                request_id=decision.request_id,
                issue_key=decision.request_id,
                primary=decision.primary_plugin,
                plugin=record.plugin,
                outcome=record.status,
                result=record.result,
                error=record.error,
                duration=0.0,
                attempts=[
                    Attempt(a["plugin"], a["outcome"], a.get("error"), a["durationMs"] / 1000)
                    for a in record.attempts
                ],
                decision=decision,
            )
        return await self.orchestrator.dispatch(issue, task_id=task_id, decision=decision)

    def _last_plugin(self, key: str) -> str | None:
        for done in reversed(self.processed):
            if done.get("key") == key and done.get("routedTo"):
                return str(done["routedTo"])
        return None

    async def _correction(self, item: InboxEvent) -> Processed | None:
        """A person moved the routing label, component or assignee to another plugin."""
        event = item.event
        settings = self.config.jira.write_back
        plugins = self.orchestrator.router.plugins
        target: str | None = None
        labels = event.change("labels")
        if labels is not None:
            before = set((labels.from_string or "").split())
            after = set((labels.to_string or "").split())
            added = [
                label.removeprefix(settings.label_prefix)
                for label in after - before
                if label.startswith(settings.label_prefix)
            ]
            target = next((p for p in added if p in plugins), None)
        if target is None:
            # Jira writes one changelog item per component added or removed.
            by_component = {settings.components.get(p, p): p for p in plugins}
            added_components = [
                item.to_string
                for item in event.changes
                if item.field_id == "components" and item.to_string
            ]
            target = next((by_component[c] for c in added_components if c in by_component), None)
        assignee = event.change("assignee")
        if target is None and assignee is not None and assignee.to_value:
            by_account = {account: p for p, account in settings.assignees.items()}
            target = by_account.get(assignee.to_value)
        previous = self._last_plugin(event.issue_key)
        if target is None or target == previous:
            return None
        router = self.orchestrator.router
        try:
            router.record_correction(event.issue_key, target)
        except JiraOrchestratorError as error:  # a request this router never saw
            log.info("correction for %s to %s not recorded: %s", event.issue_key, target, error)
            return None
        self.stats["corrections"] += 1
        return Processed(key=event.issue_key, action="corrected", routedTo=target)


def outcome_written(done: Processed) -> tuple[bool, str | None]:
    """Whether the outcome comment was written, and the transition applied (the demo's
    Jira columns)."""
    writes: list[dict[str, Any]] = done.get("jira") or []
    outcome = next((w for w in writes if w.get("kind") in ("outcome", "triage")), None)
    if outcome is None:
        return False, None
    return outcome.get("commentId") is not None, outcome.get("transition")
