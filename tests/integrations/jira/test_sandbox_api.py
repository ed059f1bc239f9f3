"""The sandbox's REST v3 operations, each exchange checked against Jira's contract."""

from __future__ import annotations

import pytest

from jira_orchestrator.integrations.jira import adf
from tests.integrations.jira.conftest import Jira

API = "/rest/api/3"


async def create(jira: Jira, summary: str = "Expose the order history", **fields: object) -> str:
    body = {
        "fields": {
            "project": {"key": "SHOP"},
            "summary": summary,
            "issuetype": {"name": "Story"},
            **fields,
        }
    }
    response = await jira.client.post(f"{API}/issue", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


async def test_myself_answers_the_configured_account(jira: Jira) -> None:
    response = await jira.client.get(f"{API}/myself")
    assert response.status_code == 200
    assert response.json()["emailAddress"] == "sandbox@example.com"
    assert response.json()["accountId"] == jira.sandbox.account_id


async def test_myself_over_real_http(sandbox: Jira) -> None:
    response = await sandbox.client.get(f"{API}/myself")
    assert response.status_code == 200
    assert response.json()["self"].startswith(sandbox.base_url + "/rest/api/3/user")


async def test_create_then_get_has_jira_shapes(jira: Jira) -> None:
    description = adf.doc(adf.paragraph("Return the last ", adf.text("50", strong=True), " orders"))
    key = await create(jira, description=description, labels=["backend"])
    assert key == "SHOP-1"
    response = await jira.client.get(f"{API}/issue/{key}")
    assert response.status_code == 200
    issue = response.json()
    assert isinstance(issue["id"], str)
    assert issue["self"] == f"{jira.base_url}/rest/api/3/issue/{issue['id']}"
    fields = issue["fields"]
    assert fields["description"] == description
    assert fields["created"] == "2023-11-14T22:13:20.000+0000"
    assert fields["status"]["name"] == "To Do"
    assert fields["labels"] == ["backend"]
    assert fields["issuetype"]["name"] == "Story"
    by_id = await jira.client.get(f"{API}/issue/{issue['id']}")
    assert by_id.json()["key"] == key


async def test_create_without_summary_or_project_names_each_field(jira: Jira) -> None:
    response = await jira.client.post(
        f"{API}/issue", json={"fields": {"issuetype": {"name": "Nope"}}}
    )
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"project", "summary", "issuetype"}


async def test_get_selects_fields_and_expands_the_changelog(jira: Jira) -> None:
    key = await create(jira)
    await jira.client.put(f"{API}/issue/{key}", json={"fields": {"summary": "Renamed"}})
    response = await jira.client.get(
        f"{API}/issue/{key}", params={"fields": "summary,labels", "expand": "changelog"}
    )
    body = response.json()
    assert set(body["fields"]) == {"summary", "labels"}
    (history,) = body["changelog"]["histories"]
    assert history["items"] == [
        {
            "field": "summary",
            "fieldtype": "jira",
            "fieldId": "summary",
            "from": None,
            "fromString": "Expose the order history",
            "to": None,
            "toString": "Renamed",
        }
    ]


async def test_edit_applies_update_operations_on_labels_and_components(jira: Jira) -> None:
    key = await create(jira, labels=["backend", "api"], components=[{"name": "orders"}])
    response = await jira.client.put(
        f"{API}/issue/{key}",
        json={
            "update": {
                "labels": [{"add": "routed:backend"}, {"remove": "api"}],
                "components": [{"add": {"name": "billing"}}, {"remove": {"name": "orders"}}],
            }
        },
    )
    assert response.status_code == 204
    assert response.content == b""
    fields = jira.sandbox.issue(key)["fields"]
    assert fields["labels"] == ["backend", "routed:backend"]
    assert [c["name"] for c in fields["components"]] == ["billing"]
    items = jira.sandbox.issue(key)["changelog"]["histories"][-1]["items"]
    assert {(i["fieldId"], i["fromString"], i["toString"]) for i in items} == {
        ("labels", "backend api", "backend routed:backend"),
        ("components", "orders", None),
        ("components", None, "billing"),
    }
    await jira.client.put(f"{API}/issue/{key}", json={"update": {"labels": [{"set": ["x"]}]}})
    assert jira.sandbox.issue(key)["fields"]["labels"] == ["x"]


async def test_edit_with_return_issue_answers_the_issue(jira: Jira) -> None:
    key = await create(jira)
    response = await jira.client.put(
        f"{API}/issue/{key}", params={"returnIssue": "true"}, json={"fields": {"labels": ["a"]}}
    )
    assert response.status_code == 200
    assert response.json()["fields"]["labels"] == ["a"]


async def test_edit_refuses_unknown_fields_bad_labels_and_non_adf_descriptions(jira: Jira) -> None:
    key = await create(jira)
    response = await jira.client.put(
        f"{API}/issue/{key}",
        json={"fields": {"flavour": "x", "labels": ["has space"]}},
    )
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"flavour", "labels"}
    with jira.contract.allow_invalid_requests():
        response = await jira.client.put(
            f"{API}/issue/{key}", json={"fields": {"description": "**markdown**"}}
        )
    assert response.status_code == 400
    assert "Atlassian Document" in response.json()["errors"]["description"]
    assert jira.sandbox.issue(key)["fields"]["labels"] == []  # nothing applied


async def test_comments_take_adf_and_refuse_anything_else(jira: Jira) -> None:
    key = await create(jira)
    body = adf.doc(adf.paragraph("Routed to ", adf.text("backend", code=True)))
    response = await jira.client.post(f"{API}/issue/{key}/comment", json={"body": body})
    assert response.status_code == 201
    assert response.json()["body"] == body
    assert response.json()["author"]["accountId"] == jira.sandbox.account_id
    listed = (await jira.client.get(f"{API}/issue/{key}/comment")).json()
    assert listed["total"] == 1
    assert listed["comments"][0]["id"] == response.json()["id"]
    bad_bodies = [
        "plain text",
        {"type": "doc", "content": []},
        adf.doc({"type": "paragraph", "content": [{"type": "text", "text": ""}]}),
    ]
    for bad in bad_bodies:
        with jira.contract.allow_invalid_requests():
            refused = await jira.client.post(f"{API}/issue/{key}/comment", json={"body": bad})
        assert refused.status_code == 400, bad
        assert refused.json()["errorMessages"] == []
        assert "comment" in refused.json()["errors"]
    assert (await jira.client.get(f"{API}/issue/{key}/comment")).json()["total"] == 1


async def test_assign_and_unassign(jira: Jira) -> None:
    key = await create(jira)
    person = jira.sandbox.add_user("Ada Lovelace")
    response = await jira.client.put(f"{API}/issue/{key}/assignee", json={"accountId": person})
    assert response.status_code == 204
    assert jira.sandbox.issue(key)["fields"]["assignee"]["displayName"] == "Ada Lovelace"
    response = await jira.client.put(f"{API}/issue/{key}/assignee", json={"accountId": None})
    assert response.status_code == 204
    issue = jira.sandbox.issue(key)
    assert issue["fields"]["assignee"] is None
    last = issue["changelog"]["histories"][-1]["items"][0]
    assert (last["fieldId"], last["from"], last["to"]) == ("assignee", person, None)


async def test_transitions_follow_the_workflow(jira: Jira) -> None:
    key = await create(jira)
    listed = (await jira.client.get(f"{API}/issue/{key}/transitions")).json()["transitions"]
    assert [(t["id"], t["to"]["name"]) for t in listed] == [("21", "In Progress"), ("31", "Done")]
    response = await jira.client.post(
        f"{API}/issue/{key}/transitions", json={"transition": {"id": "31"}}
    )
    assert response.status_code == 204
    fields = jira.sandbox.issue(key)["fields"]
    assert fields["status"]["name"] == "Done"
    assert fields["status"]["statusCategory"]["key"] == "done"
    assert fields["resolution"]["name"] == "Done"
    refused = await jira.client.post(
        f"{API}/issue/{key}/transitions", json={"transition": {"id": "31"}}
    )
    assert refused.status_code == 400
    assert "not valid" in refused.json()["errorMessages"][0]


async def test_changelog_pages(jira: Jira) -> None:
    key = await create(jira)
    for index in range(5):
        jira.clock.advance(60)
        await jira.client.put(f"{API}/issue/{key}", json={"fields": {"summary": f"v{index}"}})
    first = (await jira.client.get(f"{API}/issue/{key}/changelog", params={"maxResults": 2})).json()
    assert (first["total"], first["isLast"], len(first["values"])) == (5, False, 2)
    assert "startAt=2" in first["nextPage"]
    last = (
        await jira.client.get(
            f"{API}/issue/{key}/changelog", params={"startAt": 4, "maxResults": 2}
        )
    ).json()
    assert last["isLast"] is True
    assert "nextPage" not in last
    assert last["values"][0]["items"][0]["toString"] == "v4"


async def test_search_pages_through_every_issue_with_next_page_token(jira: Jira) -> None:
    keys = []
    for index in range(5):
        jira.clock.advance(1)
        keys.append(await create(jira, summary=f"issue {index}"))
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        body: dict[str, object] = {
            "jql": "project = SHOP ORDER BY created ASC",
            "maxResults": 2,
            "fields": ["summary"],
        }
        if token is not None:
            body["nextPageToken"] = token
        page = (await jira.client.post(f"{API}/search/jql", json=body)).json()
        pages += 1
        seen.extend(issue["key"] for issue in page["issues"])
        token = page.get("nextPageToken")
        if page["isLast"]:
            assert token is None
            break
    assert seen == keys
    assert pages == 3


async def test_search_jql_subset(jira: Jira) -> None:
    old = await create(jira, summary="old")
    jira.clock.advance(3600)
    new = await create(jira, summary="new", labels=["ui"])
    ops = await jira.client.post(
        f"{API}/issue",
        json={"fields": {"project": {"key": "OPS"}, "summary": "x", "issuetype": {"name": "Task"}}},
    )
    ops_key = ops.json()["key"]

    async def keys(jql: str) -> list[str]:
        response = await jira.client.post(f"{API}/search/jql", json={"jql": jql, "fields": ["key"]})
        assert response.status_code == 200, response.text
        return [issue["key"] for issue in response.json()["issues"]]

    assert await keys('updated >= "2023-11-14 23:00" ORDER BY key') == [ops_key, new]
    assert await keys("project = SHOP AND updated >= -30m") == [new]
    assert await keys(f"key in ({old}, {ops_key}) ORDER BY key") == [ops_key, old]
    assert await keys("project in (SHOP) ORDER BY updated DESC") == [new, old]
    assert await keys("labels = ui OR project = OPS ORDER BY key") == [ops_key, new]
    assert await keys('project = SHOP AND status = "To Do" AND summary ~ "old"') == [old]
    ids_only = await jira.client.get(f"{API}/search/jql", params={"jql": "project = OPS"})
    assert ids_only.json()["issues"] == [{"id": ops.json()["id"]}]


@pytest.mark.parametrize(
    ("jql", "message"),
    [
        ("ORDER BY updated", "Unbounded"),
        ("flavour = x", "Field 'flavour' does not exist"),
        ('updated >= "yesterday"', "Date value 'yesterday'"),
        ("project = ", "expecting a value"),
    ],
)
async def test_search_refuses_jql_it_cannot_run(jira: Jira, jql: str, message: str) -> None:
    response = await jira.client.post(f"{API}/search/jql", json={"jql": jql})
    assert response.status_code == 400
    assert message in response.json()["errorMessages"][0]


async def test_search_refuses_a_forged_page_token(jira: Jira) -> None:
    response = await jira.client.post(
        f"{API}/search/jql", json={"jql": "project = SHOP", "nextPageToken": "forged"}
    )
    assert response.status_code == 400


async def test_the_removed_search_endpoint_is_gone(jira: Jira) -> None:
    response = await jira.client.get(f"{API}/search", params={"jql": "project = SHOP"})
    assert response.status_code == 410
    assert "/rest/api/3/search/jql" in response.json()["errorMessages"][0]


async def test_unknown_issue_is_404_with_jira_messages(jira: Jira) -> None:
    for method, path in [
        ("GET", f"{API}/issue/NOPE-1"),
        ("GET", f"{API}/issue/NOPE-1/comment"),
        ("GET", f"{API}/issue/NOPE-1/transitions"),
        ("GET", f"{API}/issue/NOPE-1/changelog"),
    ]:
        response = await jira.client.request(method, path)
        assert response.status_code == 404, path
        assert response.json()["errorMessages"] == [
            "Issue does not exist or you do not have permission to see it."
        ]


async def test_auth_is_required_and_checked(jira: Jira) -> None:
    with jira.contract.allow_invalid_requests():  # no credentials at all breaks the contract
        anonymous = await jira.client.get(f"{API}/myself", auth=None)
    assert anonymous.status_code == 401
    wrong = await jira.client.get(f"{API}/myself", auth=("sandbox@example.com", "wrong"))
    assert wrong.status_code == 401
    assert wrong.json()["errorMessages"]
    # A bearer token is Jira's OAuth 2.0 scheme, which openapi-core cannot check.
    with jira.contract.allow_invalid_requests():
        bearer = await jira.client.get(
            f"{API}/myself", auth=None, headers={"Authorization": "Bearer sandbox-token"}
        )
    assert bearer.status_code == 200


async def test_429_fault_carries_retry_after_and_rate_limit_headers(jira: Jira) -> None:
    jira.sandbox.faults.add(429, times=2, retry_after=7, reason="jira-per-issue-on-write")
    for _ in range(2):
        response = await jira.client.get(f"{API}/myself")
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "7"
        assert response.headers["RateLimit-Reason"] == "jira-per-issue-on-write"
        assert response.headers["X-RateLimit-Remaining"] == "0"
        assert response.headers["X-RateLimit-Reset"] == "2023-11-14T22:13Z"
    assert (await jira.client.get(f"{API}/myself")).status_code == 200


@pytest.mark.parametrize("status", [401, 409, 503])
async def test_faults_answer_only_matching_requests(jira: Jira, status: int) -> None:
    key = await create(jira)
    jira.sandbox.faults.add(status, method="POST", path=f"{API}/issue/*/comment")
    assert (await jira.client.get(f"{API}/issue/{key}")).status_code == 200
    body = {"body": adf.doc("hello")}
    response = await jira.client.post(f"{API}/issue/{key}/comment", json=body)
    assert response.status_code == status
    assert jira.sandbox.comments(key) == []  # a faulted request changes nothing
    assert (await jira.client.post(f"{API}/issue/{key}/comment", json=body)).status_code == 201


async def test_faults_are_armed_over_http(sandbox: Jira) -> None:
    armed = await sandbox.client.post(
        "/_sandbox/faults", json={"status": 503, "times": 1, "retryAfter": 2}
    )
    assert armed.status_code == 201
    listed = (await sandbox.client.get("/_sandbox/faults")).json()["faults"]
    assert listed[0]["status"] == 503
    response = await sandbox.client.get(f"{API}/myself")
    assert (response.status_code, response.headers["Retry-After"]) == (503, "2")
    assert (await sandbox.client.get(f"{API}/myself")).status_code == 200
    bad = await sandbox.client.post("/_sandbox/faults", json={"status": 418})
    assert bad.status_code == 400
    assert "418" in bad.json()["errorMessages"][0]
    await sandbox.client.post("/_sandbox/faults", json={"status": 401, "times": 5})
    assert (await sandbox.client.delete("/_sandbox/faults")).status_code == 204
    assert (await sandbox.client.get(f"{API}/myself")).status_code == 200


async def test_every_operation_over_real_http(sandbox: Jira) -> None:
    client = sandbox.client
    key = (
        await client.post(
            f"{API}/issue",
            json={
                "fields": {
                    "project": {"key": "UI"},
                    "summary": "Add a DateRangePicker",
                    "issuetype": {"name": "Story"},
                    "description": adf.doc("Finance wants to filter reports."),
                }
            },
        )
    ).json()["key"]
    assert (await client.get(f"{API}/issue/{key}", params={"expand": "changelog"})).is_success
    assert (
        await client.put(f"{API}/issue/{key}", json={"update": {"labels": [{"add": "ui"}]}})
    ).status_code == 204
    assert (
        await client.post(f"{API}/issue/{key}/comment", json={"body": adf.doc("Routed.")})
    ).status_code == 201
    assert (await client.get(f"{API}/issue/{key}/comment")).json()["total"] == 1
    assert (
        await client.put(f"{API}/issue/{key}/assignee", json={"accountId": "-1"})
    ).status_code == 204
    assert (await client.get(f"{API}/issue/{key}/transitions")).is_success
    assert (
        await client.post(f"{API}/issue/{key}/transitions", json={"transition": {"id": "21"}})
    ).status_code == 204
    assert (await client.get(f"{API}/issue/{key}/changelog")).json()["total"] == 2
    found = await client.post(
        f"{API}/search/jql", json={"jql": "project = UI", "fields": ["*all"], "expand": "changelog"}
    )
    assert found.json()["issues"][0]["fields"]["status"]["name"] == "In Progress"
    assert (await client.delete(f"{API}/issue/{key}")).status_code == 204
    assert (await client.get(f"{API}/issue/{key}")).status_code == 404
    assert {exchange.operation for exchange in sandbox.contract.exchanges} == {
        "createIssue",
        "getIssue",
        "editIssue",
        "addComment",
        "getComments",
        "assignIssue",
        "getTransitions",
        "doTransition",
        "getChangeLogs",
        "searchAndReconsileIssuesUsingJqlPost",
        "deleteIssue",
    }
