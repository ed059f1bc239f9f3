"""The JQL poller, for sites that cannot send webhooks (``serve --poll``).

Every ``poll.intervalSeconds`` it searches (``POST /rest/api/3/search/jql``, all pages)
for the configured projects' issues updated since the last search, reaching
``poll.overlapSeconds`` further back (Jira indexes changes a little late, and clocks
differ), and puts what it finds in the same `WebhookInbox` as the webhook receiver, in
the same shape: an issue created in the window becomes a ``jira:issue_created`` event
(delivery ``poll:<issue id>:created``), each change in its changelog a
``jira:issue_updated`` event (``poll:<issue id>:<history id>``) by the history's author.
The inbox de-duplicates on those ids, so the overlap never processes anything twice. The
cursor (the newest ``updated`` seen) is kept in a small JSON file beside the inbox and
written whole, so a restarted poller goes on where it stopped; a first run looks back
``overlapSeconds`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jira_orchestrator._core.clock import WallClock, wall
from jira_orchestrator.integrations.jira.client import JiraClient
from jira_orchestrator.integrations.jira.config import JiraConfig
from jira_orchestrator.integrations.jira.errors import JiraError
from jira_orchestrator.integrations.jira.events import parse_event, parse_jira_time
from jira_orchestrator.integrations.jira.inbox import Stored, WebhookInbox

__all__ = ["JqlPoller"]

log = logging.getLogger(__name__)

_FIELDS = ("summary", "created", "updated", "project", "labels", "components", "status")


class JqlPoller:
    """Finds changed issues with JQL and stores them as events in ``inbox``."""

    def __init__(
        self,
        config: JiraConfig,
        client: JiraClient,
        inbox: WebhookInbox,
        cursor_file: str | os.PathLike[str],
        *,
        clock: WallClock = wall,
        on_stored: Callable[[Stored], object] | None = None,
    ) -> None:
        self.config = config
        self.client = client
        self.inbox = inbox
        self.cursor_file = Path(cursor_file)
        self.clock = clock
        self.on_stored = on_stored
        self.stats = {"searches": 0, "issues": 0, "events": 0, "failures": 0}

    @property
    def cursor(self) -> float | None:
        """The newest ``updated`` time seen (epoch seconds), or None before the first poll."""
        try:
            value = json.loads(self.cursor_file.read_text(encoding="utf-8"))["cursor"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return float(value) if isinstance(value, int | float) else None

    def _save(self, cursor: float) -> None:
        descriptor, temporary = tempfile.mkstemp(dir=self.cursor_file.parent, suffix=".partial")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                json.dump({"cursor": cursor}, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.cursor_file)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def jql(self, since: float) -> str:
        """The search for issues updated since ``since`` (relative minutes: no time zone)."""
        poll = self.config.jira.poll
        minutes = max(1, math.ceil((self.clock() - since + poll.overlap_seconds) / 60))
        projects = ", ".join(self.config.jira.projects)
        extra = f" AND ({poll.jql})" if poll.jql else ""
        return f'project in ({projects}) AND updated >= "-{minutes}m"{extra} ORDER BY updated ASC'

    async def poll_once(self) -> int:
        """One search; returns how many new events were stored."""
        now = self.clock()
        cursor = self.cursor
        since = now if cursor is None else cursor
        window_start = since - self.config.jira.poll.overlap_seconds
        newest = cursor or 0.0
        added = 0
        self.stats["searches"] += 1
        async for issue in self.client.search(self.jql(since), fields=_FIELDS, expand="changelog"):
            self.stats["issues"] += 1
            fields = issue.get("fields") or {}
            updated = _time(fields.get("updated"))
            if updated is not None:
                newest = max(newest, updated)
            for delivery, body in self._events(issue, window_start):
                stored = self.inbox.add(delivery, parse_event(body), body)
                if stored.new:
                    added += 1
                    if self.on_stored is not None:
                        self.on_stored(stored)
        self._save(max(newest, since))
        self.stats["events"] += added
        return added

    def _events(self, issue: dict[str, Any], window_start: float) -> list[tuple[str, bytes]]:
        fields = issue.get("fields") or {}
        issue_id = str(issue.get("id"))
        events: list[tuple[str, bytes]] = []
        created = _time(fields.get("created"))
        if created is not None and created >= window_start:
            body = {"webhookEvent": "jira:issue_created", "timestamp": created * 1000}
            events.append((f"poll:{issue_id}:created", _dump({**body, "issue": issue})))
        histories = (issue.get("changelog") or {}).get("histories") or []
        for history in histories:
            when = _time(history.get("created"))
            if when is None or when < window_start or not history.get("items"):
                continue
            author = (history.get("author") or {}).get("accountId")
            body = {
                "webhookEvent": "jira:issue_updated",
                "timestamp": when * 1000,
                "user": {"accountId": author} if author else None,
                "issue": {**issue, "fields": {**fields, "updated": history.get("created")}},
                "changelog": {"id": history.get("id"), "items": history.get("items")},
            }
            events.append((f"poll:{issue_id}:{history.get('id')}", _dump(body)))
        return events

    async def run(self) -> None:
        """Poll every ``poll.intervalSeconds`` until cancelled; failures are logged, counted
        and retried at the next interval (the cursor only moves after a whole search)."""
        while True:
            try:
                await self.poll_once()
            except (JiraError, OSError) as error:
                self.stats["failures"] += 1
                log.warning("JQL poll failed (retried in %ss): %s", self.interval, error)
            await asyncio.sleep(self.interval)

    @property
    def interval(self) -> float:
        return self.config.jira.poll.interval_seconds


def _time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_jira_time(value)
    except ValueError:
        return None


def _dump(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
