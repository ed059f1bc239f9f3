"""The contract harness itself: it must catch what breaks Jira's contract, and only that."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.integrations.jira.contract import (
    ContractCheckingTransport,
    ContractViolation,
    JiraContract,
    is_jira_date_time,
)

USER = {"accountId": "a1", "displayName": "A", "active": True}


def client_answering(
    contract: JiraContract, status: int, body: object, **headers: str
) -> httpx.AsyncClient:
    content = b"" if body is None else json.dumps(body).encode()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status, content=content, headers={"content-type": "application/json", **headers}
        )

    transport = ContractCheckingTransport(httpx.MockTransport(answer), contract)
    return httpx.AsyncClient(transport=transport, base_url="http://jira.test", auth=("u", "t"))


def comment(**overrides: object) -> dict[str, object]:
    return {
        "id": "10000",
        "self": "http://jira.test/rest/api/3/issue/1/comment/10000",
        "author": USER,
        "body": {"type": "doc", "version": 1, "content": []},
        "created": "2021-01-17T12:34:00.000+0000",
        "updated": "2021-01-17T12:34:00.000+0000",
        **overrides,
    }


@pytest.mark.parametrize(
    "value", ["2021-01-17T12:34:00.000+0000", "2021-01-17T12:34:00Z", "2021-01-17T12:34:00+05:30"]
)
def test_jira_dates_pass(value: str) -> None:
    assert is_jira_date_time(value)


@pytest.mark.parametrize("value", ["yesterday", "2021-01-17", "2021-01-17 12:34", 17])
def test_other_dates_fail(value: object) -> None:
    assert not is_jira_date_time(value)


async def test_a_well_formed_comment_passes(contract: JiraContract) -> None:
    async with client_answering(contract, 201, comment()) as client:
        response = await client.post(
            "/rest/api/3/issue/X-1/comment",
            json={"body": {"type": "doc", "version": 1, "content": []}},
        )
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (comment(id=10000), "id: 10000 is not of type 'string'"),
        (comment(created="yesterday"), "created: 'yesterday' is not a 'date-time'"),
        (comment(body="markdown **text**"), r"response ADF \$\.body"),
    ],
)
async def test_a_response_off_the_contract_is_caught(
    contract: JiraContract, body: object, problem: str
) -> None:
    async with client_answering(contract, 201, body) as client:
        with pytest.raises(ContractViolation, match=problem):
            await client.post(
                "/rest/api/3/issue/X-1/comment",
                json={"body": {"type": "doc", "version": 1, "content": []}},
            )


async def test_a_request_off_the_contract_is_caught(contract: JiraContract) -> None:
    results = {"issues": [], "isLast": True}
    async with client_answering(contract, 200, results) as client:
        with pytest.raises(ContractViolation, match="request"):  # known gap 6: omit the key
            await client.post(
                "/rest/api/3/search/jql", json={"jql": "project = X", "nextPageToken": None}
            )
        with pytest.raises(ContractViolation, match="request ADF"):
            await client.put(
                "/rest/api/3/issue/X-1", json={"fields": {"description": "plain text"}}
            )


async def test_changelog_nulls_are_allowed_but_other_types_are_not(contract: JiraContract) -> None:
    def page(value: object) -> dict[str, object]:
        item = {"field": "labels", "fieldtype": "jira", "fieldId": "labels", "from": value}
        return {"startAt": 0, "maxResults": 1, "total": 1, "isLast": True,
                "values": [{"id": "1", "items": [item]}]}  # fmt: skip

    async with client_answering(contract, 200, page(None)) as client:
        await client.get("/rest/api/3/issue/X-1/changelog")
    async with client_answering(contract, 200, page(12)) as client:
        with pytest.raises(ContractViolation, match="from"):
            await client.get("/rest/api/3/issue/X-1/changelog")


async def test_undeclared_statuses_need_jira_error_bodies(contract: JiraContract) -> None:
    error = {"errorMessages": ["Rate limit exceeded."], "errors": {}}
    async with client_answering(contract, 429, error, **{"Retry-After": "1"}) as client:
        assert (await client.get("/rest/api/3/issue/X-1/changelog")).status_code == 429
    async with client_answering(contract, 503, {"message": "down"}) as client:
        with pytest.raises(ContractViolation, match="error collection"):
            await client.get("/rest/api/3/issue/X-1/changelog")
    async with client_answering(contract, 418, error) as client:
        with pytest.raises(ContractViolation):
            await client.get("/rest/api/3/issue/X-1/changelog")


async def test_204_is_checked_by_status_only(contract: JiraContract) -> None:
    async with client_answering(contract, 204, None) as client:
        response = await client.put("/rest/api/3/issue/X-1/assignee", json={"accountId": None})
    assert response.status_code == 204
    async with client_answering(contract, 204, {"unexpected": True}) as client:
        with pytest.raises(ContractViolation, match="204"):
            await client.put("/rest/api/3/issue/X-1/assignee", json={"accountId": "a1"})


async def test_an_unknown_operation_is_caught(contract: JiraContract) -> None:
    async with client_answering(contract, 200, {}) as client:
        with pytest.raises(ContractViolation, match="no such operation"):
            await client.get("/rest/api/3/made-up")
