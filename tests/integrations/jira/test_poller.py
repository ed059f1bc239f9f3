"""The JQL poller against the sandbox: what changed becomes events, once each."""

from __future__ import annotations

from pathlib import Path

import pytest

from jira_orchestrator.integrations.jira.config import JiraConfig, parse_config
from jira_orchestrator.integrations.jira.inbox import WebhookInbox
from jira_orchestrator.integrations.jira.poller import JqlPoller
from tests.integrations.jira.conftest import ClientFactory, Jira


def _config() -> JiraConfig:
    return parse_config(
        {
            "jira": {
                "site": "http://127.0.0.1:1",
                "projects": ["OPS"],
                "auth": {"email": "sandbox@example.com", "token": "sandbox-token"},
                "poll": {"intervalSeconds": 60, "overlapSeconds": 120},
            }
        }
    )


@pytest.fixture
def inbox(tmp_path: Path) -> WebhookInbox:
    store = WebhookInbox(tmp_path / "inbox.db")
    yield store  # type: ignore[misc]
    store.close()


async def _poller(
    jira: Jira, make_client: ClientFactory, inbox: WebhookInbox, tmp_path: Path
) -> JqlPoller:
    return JqlPoller(
        _config(), await make_client(), inbox, tmp_path / "cursor.json", clock=jira.clock
    )


async def test_new_and_changed_issues_become_events_once(
    jira: Jira, make_client: ClientFactory, inbox: WebhookInbox, tmp_path: Path
) -> None:
    jira.sandbox.add_project("OPS")
    poller = await _poller(jira, make_client, inbox, tmp_path)
    assert await poller.poll_once() == 0  # the first search only sets the cursor
    jira.clock.advance(30)
    key = jira.sandbox.create_issue("OPS", "Deploy billing-api with a Helm chart")
    jira.sandbox.create_issue("SHOP", "another project")
    jira.clock.advance(30)
    assert await poller.poll_once() == 1
    [created] = inbox.claim()
    assert (created.event.kind, created.event.issue_key) == ("issue_created", key)
    inbox.complete(created.seq)
    person = jira.sandbox.add_user("Dana Lead")
    jira.clock.advance(30)
    jira.sandbox.edit_issue(
        key, update={"labels": [{"add": "routed:exec-automator"}]}, as_user=person
    )
    jira.clock.advance(30)
    assert await poller.poll_once() == 1
    [changed] = inbox.claim()
    assert changed.event.kind == "issue_updated"
    assert changed.event.actor == person
    labels = changed.event.change("labels")
    assert labels is not None
    assert labels.to_string == "routed:exec-automator"
    inbox.complete(changed.seq)
    assert await poller.poll_once() == 0  # the overlap finds them again: stored once
    restarted = await _poller(jira, make_client, inbox, tmp_path)
    assert restarted.cursor == poller.cursor
    assert await restarted.poll_once() == 0


async def test_every_page_is_read(
    jira: Jira, make_client: ClientFactory, inbox: WebhookInbox, tmp_path: Path
) -> None:
    jira.sandbox.add_project("OPS")
    poller = await _poller(jira, make_client, inbox, tmp_path)
    await poller.poll_once()
    jira.clock.advance(10)
    for n in range(130):
        jira.sandbox.create_issue("OPS", f"issue {n}")
    jira.clock.advance(10)
    assert await poller.poll_once() == 130
    assert poller.stats["issues"] == 130


def test_the_search_reaches_back_the_overlap_in_relative_minutes(tmp_path: Path) -> None:
    class Clock:
        now = 10_000.0

        def __call__(self) -> float:
            return self.now

    poller = JqlPoller(_config(), None, None, tmp_path / "c.json", clock=Clock())  # type: ignore[arg-type]
    assert poller.jql(10_000.0 - 300) == (
        'project in (OPS) AND updated >= "-7m" ORDER BY updated ASC'
    )
