"""The sandbox's webhooks: signed, shaped like Jira's real bodies, retried as Jira retries."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jira_orchestrator.integrations.jira import adf
from jira_orchestrator.integrations.jira.sandbox import JiraSandbox
from tests.integrations.jira.conftest import FakeClock, Jira, serve
from tests.integrations.jira.contract import WEBHOOKS

API = "/rest/api/3"


def bodies(jira: Jira) -> list[dict[str, object]]:
    return [json.loads(request.content) for request in jira.receiver.requests]


def verify(secret: str, request: httpx.Request) -> bool:
    method, _, signature = request.headers["X-Hub-Signature"].partition("=")
    expected = hmac.new(secret.encode(), request.content, hashlib.sha256).hexdigest()
    return method == "sha256" and hmac.compare_digest(signature, expected)


async def test_created_issue_is_a_signed_v2_webhook(jira: Jira) -> None:
    description = adf.doc(adf.paragraph("Needs ", adf.text("JWT", strong=True)))
    key = jira.sandbox.create_issue("SHOP", "Order history", description=description)
    await jira.sandbox.webhooks_idle(timeout=30)
    (request,) = jira.receiver.requests
    assert verify("sandbox-secret", request)
    assert not verify("another-secret", request)
    expected = hmac.new(b"sandbox-secret", request.content, hashlib.sha256).hexdigest()
    assert request.headers["X-Hub-Signature"] == f"sha256={expected}"
    assert "X-Atlassian-Webhook-Retry" not in request.headers
    assert request.headers["X-Atlassian-Webhook-Identifier"]
    body = json.loads(request.content)
    assert body["webhookEvent"] == "jira:issue_created"
    assert body["issue_event_type_name"] == "issue_created"
    assert body["timestamp"] == 1_700_000_000_000
    assert body["issue"]["key"] == key
    assert "/rest/api/2/issue/" in body["issue"]["self"]
    assert body["issue"]["fields"]["description"] == "Needs *JWT*"  # wiki markup, as v2
    assert body["issue"]["fields"]["created"] == "2023-11-14T22:13:20.000+0000"


async def test_every_change_sends_its_event(jira: Jira) -> None:
    key = jira.sandbox.create_issue("SHOP", "Order history", labels=["backend"])
    person = jira.sandbox.add_user("Grace Hopper")
    await jira.client.put(f"{API}/issue/{key}", json={"update": {"labels": [{"add": "api"}]}})
    await jira.client.put(f"{API}/issue/{key}/assignee", json={"accountId": person})
    await jira.client.post(f"{API}/issue/{key}/transitions", json={"transition": {"id": "31"}})
    await jira.client.post(
        f"{API}/issue/{key}/comment", json={"body": adf.doc(adf.paragraph(adf.mention(person)))}
    )
    jira.sandbox.delete_issue(key, as_user=person)
    await jira.sandbox.webhooks_idle(timeout=30)
    sent = bodies(jira)
    assert [(b["webhookEvent"], b.get("issue_event_type_name")) for b in sent] == [
        ("jira:issue_created", "issue_created"),
        ("jira:issue_updated", "issue_updated"),
        ("jira:issue_updated", "issue_assigned"),
        ("jira:issue_updated", "issue_generic"),
        ("comment_created", None),
        ("jira:issue_deleted", None),
    ]
    labels = sent[1]["changelog"]["items"]  # type: ignore[index]
    assert labels == [
        {"field": "labels", "fieldtype": "jira", "fieldId": "labels", "from": None,
         "fromString": "backend", "to": None, "toString": "backend api"}
    ]  # fmt: skip
    status = sent[3]["changelog"]["items"]  # type: ignore[index]
    assert [item["fieldId"] for item in status] == ["resolution", "status"]
    assert sent[4]["comment"]["body"] == f"[~accountid:{person}]"  # type: ignore[index]
    assert sent[5]["user"]["accountId"] == person  # type: ignore[index]
    identifiers = {r.headers["X-Atlassian-Webhook-Identifier"] for r in jira.receiver.requests}
    assert len(identifiers) == 6


@pytest.mark.parametrize("failure", [408, 409, 425, 429, 500, 503, 0])
async def test_retried_on_the_statuses_jira_retries_keeping_the_identifier(
    jira: Jira, failure: int
) -> None:
    jira.receiver.statuses = [failure, failure]  # 0: connection refused
    jira.sandbox.create_issue("SHOP", "Order history")
    await jira.sandbox.webhooks_idle(timeout=30)
    first, second, third = jira.receiver.requests
    identifier = first.headers["X-Atlassian-Webhook-Identifier"]
    assert second.headers["X-Atlassian-Webhook-Identifier"] == identifier
    assert third.headers["X-Atlassian-Webhook-Identifier"] == identifier
    assert "X-Atlassian-Webhook-Retry" not in first.headers
    assert second.headers["X-Atlassian-Webhook-Retry"] == "1"
    assert third.headers["X-Atlassian-Webhook-Retry"] == "2"
    assert first.content == third.content
    assert third.headers["X-Hub-Signature"] == first.headers["X-Hub-Signature"]
    assert jira.sleeps.delays == [1.0, 2.0]  # backoff, waited through the injected sleep
    (delivery,) = jira.sandbox.deliveries
    assert delivery.delivered


@pytest.mark.parametrize("refusal", [400, 401, 404, 302])
async def test_not_retried_on_other_answers(jira: Jira, refusal: int) -> None:
    jira.receiver.statuses = [refusal]
    jira.sandbox.create_issue("SHOP", "Order history")
    await jira.sandbox.webhooks_idle(timeout=30)
    assert len(jira.receiver.requests) == 1
    (delivery,) = jira.sandbox.deliveries
    assert delivery.state == "failed"
    assert jira.sleeps.delays == []


async def test_retries_are_bounded(jira: Jira) -> None:
    jira.receiver.statuses = [500] * 100
    jira.sandbox.create_issue("SHOP", "Order history")
    await jira.sandbox.webhooks_idle(timeout=30)
    assert len(jira.receiver.requests) == 6  # the first attempt and 5 retries
    assert jira.sleeps.delays == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert jira.sandbox.deliveries[0].state == "failed"


async def test_a_retrying_delivery_does_not_hold_back_the_next_one(jira: Jira) -> None:
    jira.receiver.statuses = [503]
    first = jira.sandbox.create_issue("SHOP", "one")
    second = jira.sandbox.create_issue("SHOP", "two")
    await jira.sandbox.webhooks_idle(timeout=30)
    keys = [json.loads(r.content)["issue"]["key"] for r in jira.receiver.requests]
    assert keys == [first, second, first]


async def test_unsigned_without_a_secret(clock: FakeClock) -> None:
    seen: list[httpx.Request] = []
    sandbox = JiraSandbox(
        clock=clock,
        webhook_transport=httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200)),
    )
    sandbox.register_webhook("http://receiver.test/hook", secret=None)
    try:
        sandbox.create_issue("SHOP", "x")
        await sandbox.webhooks_idle(timeout=30)
    finally:
        await sandbox.aclose()
    assert "X-Hub-Signature" not in seen[0].headers


async def test_delivered_over_real_http_and_verifiable(sandbox: Jira) -> None:
    received: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: Request) -> Response:
        received.append((dict(request.headers), await request.body()))
        return Response(status_code=202 if len(received) > 1 else 503)

    receiver_app = Starlette(routes=[Route("/webhooks/jira", hook, methods=["POST"])])
    stand_in = JiraSandbox(clock=sandbox.clock, sleep=sandbox.sleeps, webhook_secret="s3cret")
    async with serve(receiver_app) as receiver_url:
        stand_in.register_webhook(f"{receiver_url}/webhooks/jira", "s3cret")
        try:
            async with (
                serve(stand_in.app) as url,
                httpx.AsyncClient(base_url=url, auth=stand_in.auth) as client,
            ):
                response = await client.post(
                    f"{API}/issue",
                    json={"fields": {"project": {"key": "OPS"}, "summary": "Deploy",
                                     "issuetype": {"name": "Task"}}},
                )  # fmt: skip
                assert response.status_code == 201
                await stand_in.webhooks_idle(timeout=30)
        finally:
            await stand_in.aclose()
    assert len(received) == 2
    (headers, raw), (retry_headers, retry_raw) = received
    assert raw == retry_raw
    assert (
        headers["x-hub-signature"]
        == "sha256=" + hmac.new(b"s3cret", raw, hashlib.sha256).hexdigest()
    )
    assert retry_headers["x-atlassian-webhook-retry"] == "1"
    assert (
        retry_headers["x-atlassian-webhook-identifier"] == headers["x-atlassian-webhook-identifier"]
    )


REAL = {
    event: json.loads(Path(WEBHOOKS, name).read_bytes())
    for event, name in {
        "jira:issue_created": "issue_created.zulip-2026.json",
        "jira:issue_updated": "issue_updated.labels.mattermost-2019.json",
        "jira:issue_deleted": "issue_deleted.mattermost-2019.json",
        "comment_created": "comment_created.mattermost-2019.json",
    }.items()
}


async def test_bodies_have_the_top_level_keys_of_real_jira_bodies(jira: Jira) -> None:
    key = jira.sandbox.create_issue("SHOP", "Order history", description="Needs JWT")
    jira.sandbox.edit_issue(key, update={"labels": [{"add": "api"}]})
    jira.sandbox.add_comment(key, "Looks like backend work")
    jira.sandbox.delete_issue(key)
    await jira.sandbox.webhooks_idle(timeout=30)
    ours = {body["webhookEvent"]: body for body in bodies(jira)}
    assert set(ours) == set(REAL)
    for event, real in REAL.items():
        extras = {"eventType"}  # recent real bodies may carry it; receivers ignore it
        assert set(ours[event]) == set(real) - extras, event
        assert set(ours[event]["issue"]) >= {"id", "self", "key", "fields"}  # type: ignore[arg-type]
        if "changelog" in real:
            item_keys = set(real["changelog"]["items"][0]) - {"tmpFromAccountId", "tmpToAccountId"}
            assert set(ours[event]["changelog"]["items"][0]) == item_keys  # type: ignore[index]
        if "comment" in real:
            assert set(ours[event]["comment"]) == set(real["comment"])  # type: ignore[arg-type]
            assert isinstance(ours[event]["comment"]["body"], str)  # type: ignore[index]
    created = ours["jira:issue_created"]["issue"]["fields"]  # type: ignore[index]
    assert created["description"] == "Needs JWT"
