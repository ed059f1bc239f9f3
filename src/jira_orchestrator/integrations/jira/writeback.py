"""Write-back: what a routing decision and its outcome look like on the Jira issue.

After a decision: a comment (ADF) naming the plugin, the confidence, the main evidence and
the fallbacks, plus the configured label (``routed:<plugin>``), component and assignee.
When the router is unsure: the triage label and a comment listing the best candidates.
After the work: a comment with the outcome (who did it, the fallback used, or why it
failed) and the configured transition.

Every write is idempotent, so a redelivered webhook, a retried task or a restarted server
writes nothing twice: each comment carries a reference (``jira-orchestrator ref
<task>/decision``) that `JiraClient.add_comment` looks for first; labels and components
are set with add/remove operations; a transition already applied is not applied again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from jira_orchestrator.integrations.jira.adf import Node, bullet_list, doc, paragraph, text
from jira_orchestrator.integrations.jira.client import JiraClient
from jira_orchestrator.integrations.jira.config import JiraConfig
from jira_orchestrator.integrations.jira.errors import JiraNotFound
from jira_orchestrator.orchestrator import DispatchResult
from jira_orchestrator.routing import RoutingDecision

__all__ = ["JiraWriteBack", "Written", "marker"]

log = logging.getLogger(__name__)

_EVIDENCE = 4
_CANDIDATES = 3

Kind = Literal["decision", "triage", "outcome"]


def marker(ref: str, kind: Kind) -> str:
    """The text a comment of ``kind`` for task ``ref`` carries, so it is found again."""
    return f"jira-orchestrator ref {ref}/{kind}"


@dataclass
class Written:
    """What one write-back did on the issue."""

    key: str
    kind: Kind
    comment_id: str | None = None
    labels_added: list[str] = field(default_factory=list)
    labels_removed: list[str] = field(default_factory=list)
    components_added: list[str] = field(default_factory=list)
    assignee: str | None = None
    transition: str | None = None
    skipped: str | None = None
    """Why nothing was written (the issue no longer exists), when that happened."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "commentId": self.comment_id,
            "labelsAdded": self.labels_added,
            "labelsRemoved": self.labels_removed,
            "componentsAdded": self.components_added,
            "assignee": self.assignee,
            "transition": self.transition,
            "skipped": self.skipped,
        }


def _percent(confidence: float) -> str:
    return f"{round(confidence * 100)}%"


def _footer(ref: str, kind: Kind) -> Node:
    return paragraph(text(marker(ref, kind), em=True))


class JiraWriteBack:
    """Writes decisions and outcomes to Jira as ``config`` says."""

    def __init__(self, client: JiraClient, config: JiraConfig) -> None:
        self.client = client
        self.config = config

    async def decision(
        self,
        key: str,
        decision: RoutingDecision,
        *,
        ref: str,
        candidates: Sequence[str] = (),
        first: bool = False,
        fields: Mapping[str, Any] | None = None,
    ) -> Written:
        """The decision on issue ``key``: comment, label, component, assignee.

        ``candidates`` are the plugins the orchestrator will try, in order; the comment
        names them when the plugin that fits best is down (no primary plugin). ``first``
        says no earlier attempt wrote for ``ref`` (nothing to look for first); ``fields``
        are the issue's current fields when the caller has just read them."""
        plugin = decision.primary_plugin
        written = Written(key, "decision")
        try:
            if plugin is not None:
                await self._mark(key, plugin, written, fields)
            if self.config.jira.write_back.comment:
                body = self.decision_comment(decision, ref, candidates)
                comment = await self.client.add_comment(
                    key, body, marker=marker(ref, "decision"), new=first
                )
                written.comment_id = str(comment.get("id"))
        except JiraNotFound:
            return self._gone(written)
        return written

    async def triage(
        self,
        key: str,
        decision: RoutingDecision,
        *,
        ref: str,
        first: bool = False,
        fields: Mapping[str, Any] | None = None,
    ) -> Written:
        """The router is unsure: the triage label and a comment with the best candidates."""
        written = Written(key, "triage")
        try:
            await self._mark(key, None, written, fields)
            if self.config.jira.write_back.comment:
                comment = await self.client.add_comment(
                    key,
                    self.triage_comment(decision, ref),
                    marker=marker(ref, "triage"),
                    new=first,
                )
                written.comment_id = str(comment.get("id"))
        except JiraNotFound:
            return self._gone(written)
        return written

    async def outcome(
        self, key: str, result: DispatchResult, *, ref: str, first: bool = False
    ) -> Written:
        """The outcome of the work on issue ``key``: comment and transition."""
        written = Written(key, "outcome")
        try:
            if self.config.jira.write_back.comment:
                comment = await self.client.add_comment(
                    key,
                    self.outcome_comment(result, ref),
                    marker=marker(ref, "outcome"),
                    new=first,
                )
                written.comment_id = str(comment.get("id"))
            transitions = self.config.jira.transitions
            wanted = transitions.completed if result.outcome == "completed" else transitions.failed
            if wanted:
                written.transition = await self._transition(key, wanted)
        except JiraNotFound:
            return self._gone(written)
        return written

    def decision_comment(
        self, decision: RoutingDecision, ref: str, candidates: Sequence[str] = ()
    ) -> Node:
        """The ADF comment for a decision."""
        plugin = decision.primary_plugin
        if plugin is None:
            tried = ", ".join(candidates) or "none"
            first = paragraph(
                "The plugins that fit this issue are not available; the orchestrator tries: ",
                text(tried, strong=True),
                ".",
            )
        else:
            first = paragraph(
                "Routed to ",
                text(plugin, strong=True),
                f" (confidence {_percent(decision.confidence)}).",
            )
        blocks: list[Node] = [first]
        score = decision.score_of(plugin) if plugin is not None else None
        evidence = list(score.evidence[:_EVIDENCE]) if score is not None else []
        if evidence:
            blocks.append(paragraph("Why:"))
            blocks.append(bullet_list(*evidence))
        if decision.fallback_plugins:
            blocks.append(paragraph("Fallbacks: " + ", ".join(decision.fallback_plugins) + "."))
        blocks.append(_footer(ref, "decision"))
        return doc(*blocks)

    def triage_comment(self, decision: RoutingDecision, ref: str) -> Node:
        """The ADF comment listing the best candidates when the router is unsure."""
        floor = self.config.routing.min_confidence
        blocks: list[Node] = [
            paragraph(
                "Not routed: the router is not sure enough"
                f" (confidence {_percent(decision.confidence)}, needs {_percent(floor)})."
                " A person should pick the plugin."
            )
        ]
        candidates = [
            [
                paragraph(text(score.plugin, strong=True), f" (score {score.score:.2f})"),
                *([bullet_list(*score.evidence[:2])] if score.evidence else []),
            ]
            for score in (decision.candidates or decision.scores)[:_CANDIDATES]
        ]
        if candidates:
            blocks.append(paragraph("Candidates:"))
            blocks.append(bullet_list(*candidates))
        blocks.append(_footer(ref, "triage"))
        return doc(*blocks)

    def outcome_comment(self, result: DispatchResult, ref: str) -> Node:
        """The ADF comment for the outcome of the work."""
        seconds = f"{result.duration:.1f} s"
        blocks: list[Node]
        if result.outcome == "completed" and result.plugin is not None:
            blocks = [paragraph("Done by ", text(result.plugin, strong=True), f" in {seconds}.")]
            if result.fallback_used and result.primary is not None:
                failed = [a for a in result.attempts if a.plugin == result.primary]
                why = f": {failed[0].error}" if failed and failed[0].error else ""
                blocks.append(paragraph(f"A fallback did it: {result.primary} could not{why}."))
        else:
            blocks = [paragraph(text("Failed", strong=True), f": {result.error or 'unknown'}.")]
        tried = [
            f"{a.plugin}: {a.outcome}" + (f" ({a.error})" if a.error else "")
            for a in result.attempts
        ]
        if tried:
            blocks.append(paragraph("Tried:"))
            blocks.append(bullet_list(*tried))
        blocks.append(_footer(ref, "outcome"))
        return doc(*blocks)

    async def _mark(
        self,
        key: str,
        plugin: str | None,
        written: Written,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        """Label, component and assignee for ``plugin`` (``None``: triage)."""
        settings = self.config.jira.write_back
        prefix = settings.label_prefix
        triage = self.config.routing.triage_label
        current = (
            fields
            if fields is not None
            else (await self.client.get_issue(key, fields=("labels", "components")))["fields"]
        )
        labels: Sequence[str] = current.get("labels") or []
        wanted = triage if plugin is None else (f"{prefix}{plugin}" if settings.label else None)
        stale = [
            label
            for label in labels
            if label != wanted and (label.startswith(prefix) or label == triage)
        ]
        add = [wanted] if wanted and wanted not in labels else []
        await self.client.update_labels(key, add=add, remove=stale)
        written.labels_added, written.labels_removed = add, stale
        if plugin is not None and settings.component:
            name = settings.components.get(plugin, plugin)
            have = {c.get("name") for c in current.get("components") or []}
            others = [
                other
                for other in {settings.components.get(p, p) for p in settings.components}
                if other in have and other != name
            ]
            if name not in have or others:
                await self.client.update_components(
                    key, add=[name] if name not in have else [], remove=others
                )
                written.components_added = [name] if name not in have else []
        if plugin is not None and plugin in settings.assignees:
            written.assignee = settings.assignees[plugin]
            await self.client.assign(key, written.assignee)

    async def _transition(self, key: str, wanted: str) -> str | None:
        """Apply ``wanted`` unless the issue already sits in the status it leads to."""
        issue = await self.client.get_issue(key, fields=("status",))
        status = str(((issue.get("fields") or {}).get("status") or {}).get("name", ""))
        available = await self.client.transitions(key)
        for item in available:
            target = str((item.get("to") or {}).get("name", ""))
            if (
                wanted in (str(item.get("id")),)
                or wanted.casefold() == str(item.get("name", "")).casefold()
            ):
                if target and target.casefold() == status.casefold():
                    return None  # already there: a transition to itself would loop
                return await self.client.transition(key, str(item["id"]))
        if status.casefold() == wanted.casefold():
            return None  # applied before (a retried outcome)
        return await self.client.transition(key, wanted)  # raises, naming what is available

    def _gone(self, written: Written) -> Written:
        log.warning("Jira issue %s no longer exists: nothing written back", written.key)
        written.skipped = "the issue no longer exists"
        return written
