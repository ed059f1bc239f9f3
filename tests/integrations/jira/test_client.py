"""The REST v3 client against the sandbox, every exchange checked against Jira's contract."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from jira_orchestrator import CircuitOpenError
from jira_orchestrator.integrations.jira.adf import doc, paragraph, text
from jira_orchestrator.integrations.jira.errors import (
    JiraAuthError,
    JiraConflict,
    JiraNotFound,
    JiraRateLimited,
    JiraRequestError,
    JiraUnavailable,
)
from tests.integrations.jira.conftest import ClientFactory, Jira


class LoseAnswers(httpx.AsyncBaseTransport):
    """Forwards every request, then loses the answer of those ``lose`` picks (a timeout
    after Jira did the work): the ambiguous failure a change must survive."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, lose: Callable[[httpx.Request], bool]
    ) -> None:
        self.inner = inner
        self.lose = lose
        self.lost = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if self.lose(request):
            await response.aread()
            self.lost += 1
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


async def test_reads_an_issue_with_its_changelog(jira: Jira, make_client: ClientFactory) -> None:
    key = jira.sandbox.create_issue("OPS", "Deploy billing", labels=["infra"])
    jira.sandbox.edit_issue(key, update={"labels": [{"add": "urgent"}]})
    client = await make_client()
    issue = await client.get_issue(key, changelog=True)
    assert issue["key"] == key
    assert sorted(issue["fields"]["labels"]) == ["infra", "urgent"]
    items = [i for h in issue["changelog"]["histories"] for i in h["items"]]
    assert any(i["fieldId"] == "labels" for i in items)
    assert (await client.myself())["emailAddress"] == jira.sandbox.email


async def test_search_reads_every_page(jira: Jira, make_client: ClientFactory) -> None:
    keys = [jira.sandbox.create_issue("OPS", f"issue {n}") for n in range(7)]
    jira.sandbox.create_issue("SHOP", "another project")
    client = await make_client()
    found = [i["key"] async for i in client.search("project = OPS", page_size=3)]
    assert sorted(found) == sorted(keys)
    assert [i async for i in client.search("project = OPS", page_size=3, limit=4)].__len__() == 4


async def test_labels_components_assignee_and_transitions(
    jira: Jira, make_client: ClientFactory
) -> None:
    key = jira.sandbox.create_issue("OPS", "Deploy billing", labels=["keep", "old"])
    client = await make_client()
    await client.update_labels(key, add=["routed:k8s"], remove=["old"])
    await client.update_components(key, add=["Infrastructure"])
    await client.assign(key, "5b10ac8d82e05b22cc7d4ef5")
    assert await client.transition(key, "in progress") == "21"
    fields = jira.sandbox.issue(key)["fields"]
    assert sorted(fields["labels"]) == ["keep", "routed:k8s"]
    assert [c["name"] for c in fields["components"]] == ["Infrastructure"]
    assert fields["assignee"]["accountId"] == "5b10ac8d82e05b22cc7d4ef5"
    assert fields["status"]["name"] == "In Progress"
    with pytest.raises(JiraRequestError, match=r"available: .*Done"):
        await client.transition(key, "Shipped")


async def test_a_comment_with_a_marker_is_written_once(
    jira: Jira, make_client: ClientFactory
) -> None:
    key = jira.sandbox.create_issue("OPS", "Deploy billing")
    client = await make_client()
    body = doc(paragraph(text("Routed to k8s-helm-deployer. ")), paragraph(text("ref jo-1")))
    first = await client.add_comment(key, body, marker="ref jo-1")
    again = await client.add_comment(key, body, marker="ref jo-1")
    assert again["id"] == first["id"]
    assert len(jira.sandbox.comments(key)) == 1
    with pytest.raises(ValueError, match="marker"):
        await client.add_comment(key, body, marker="ref jo-2")


async def test_a_comment_whose_answer_was_lost_is_not_written_twice(
    jira: Jira, make_client: ClientFactory
) -> None:
    key = jira.sandbox.create_issue("OPS", "Deploy billing")
    lose_once = {"left": 1}

    def lose(request: httpx.Request) -> bool:
        if request.method == "POST" and request.url.path.endswith("/comment"):
            lose_once["left"] -= 1
            return lose_once["left"] >= 0
        return False

    wrapper: list[LoseAnswers] = []

    def wrap(inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        wrapper.append(LoseAnswers(inner, lose))
        return wrapper[0]

    client = await make_client(wrap=wrap)
    body = doc(paragraph(text("Routed. ref jo-7")))
    comment = await client.add_comment(key, body, marker="ref jo-7")
    assert wrapper[0].lost == 1
    assert [c["id"] for c in jira.sandbox.comments(key)] == [comment["id"]]


async def test_a_change_that_may_have_landed_is_not_sent_again_blindly(
    jira: Jira, make_client: ClientFactory
) -> None:
    key = jira.sandbox.create_issue("OPS", "Deploy billing")

    def wrap(inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        return LoseAnswers(inner, lambda r: r.method == "POST")

    client = await make_client(wrap=wrap)
    with pytest.raises(JiraUnavailable, match="may have landed"):
        await client.transition(key, "Done")
    assert jira.sleeps.delays == []  # not retried


async def test_rate_limits_wait_at_least_retry_after(
    jira: Jira, make_client: ClientFactory
) -> None:
    key = jira.sandbox.create_issue("OPS", "Deploy billing")
    jira.sandbox.faults.add(429, times=2, retry_after=3)
    client = await make_client()
    assert (await client.get_issue(key))["key"] == key
    assert jira.sleeps.delays == [3.0, 3.0]
    assert client.calls[429] == 2


async def test_a_retry_after_beyond_the_cap_gives_up_at_once(
    jira: Jira, make_client: ClientFactory
) -> None:
    key = jira.sandbox.create_issue("OPS", "Deploy billing")
    jira.sandbox.faults.add(429, retry_after=600)
    client = await make_client(max_wait=60.0)
    with pytest.raises(JiraRateLimited) as caught:
        await client.get_issue(key)
    assert caught.value.retry_after == 600
    assert jira.sleeps.delays == []


async def test_unavailable_jira_is_retried_and_a_rate_limited_post_is_sent_again(
    jira: Jira, make_client: ClientFactory
) -> None:
    key = jira.sandbox.create_issue("OPS", "Deploy billing")
    jira.sandbox.faults.add(503, times=2, method="GET")
    jira.sandbox.faults.add(429, method="POST", retry_after=1)
    client = await make_client()
    assert (await client.get_issue(key))["key"] == key
    await client.add_comment(key, doc(paragraph(text("hello"))))
    assert len(jira.sandbox.comments(key)) == 1
    assert len(jira.sleeps.delays) == 3


async def test_errors_are_typed_and_never_hold_the_token(
    jira: Jira, make_client: ClientFactory
) -> None:
    client = await make_client(token="wrong-token")
    with jira.contract.allow_invalid_requests(), pytest.raises(JiraAuthError) as caught:
        await client.myself()
    assert caught.value.status == 401
    assert "wrong-token" not in str(caught.value)
    assert "wrong-token" not in repr(client)
    assert jira.sleeps.delays == []
    good = await make_client()
    with pytest.raises(JiraNotFound, match="OPS-404"):
        await good.get_issue("OPS-404")
    key = jira.sandbox.create_issue("OPS", "Deploy billing")
    jira.sandbox.faults.add(409, method="PUT")
    with pytest.raises(JiraConflict):
        await good.update_labels(key, add=["x"])


async def test_a_key_from_outside_cannot_reach_another_resource(
    jira: Jira, make_client: ClientFactory
) -> None:
    client = await make_client()
    with jira.contract.allow_invalid_requests(), pytest.raises(JiraNotFound):
        await client.get_issue("../../myself")  # one path segment, %2F-quoted
    with pytest.raises(ValueError, match="issue key"):
        await client.get_issue("")


async def test_the_breaker_stops_calling_a_failing_jira(
    jira: Jira, make_client: ClientFactory
) -> None:
    key = jira.sandbox.create_issue("OPS", "Deploy billing")
    jira.sandbox.faults.add(503, times=100)
    client = await make_client(max_retries=0)
    for _ in range(5):
        with pytest.raises(JiraUnavailable):
            await client.get_issue(key)
    before = client.calls.get(503, 0)
    with pytest.raises(CircuitOpenError):
        await client.get_issue(key)
    assert client.calls.get(503, 0) == before
