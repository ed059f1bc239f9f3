"""The dashboard's JSON API and its pages over HTTP, with bad and hostile input: paging
parameters, filters, ids out of range, XSS in dead letters, CSRF, tokens, hosts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from jira_orchestrator.cli import _app
from jira_orchestrator.messagebus import close_message_bus, get_message_bus, reset_message_bus
from jira_orchestrator.orchestrator import DeadLetterStore, SagaStore, TaskStore
from jira_orchestrator.plugins import parse_manifest
from jira_orchestrator.routing import Router
from jira_orchestrator.routing.store import DecisionStore
from jira_orchestrator.web import HTTPServer
from jira_orchestrator.web.dashboard import (
    TOKEN_ENV,
    Dashboard,
    DashboardSecurityError,
    check_bind,
    redact_url,
)
from tests.web._dashboard import EXAMPLES

TOKEN = "a-long-enough-dashboard-token"
XSS = "<script>alert('x')</script><img src=x onerror=alert(1)>"


@dataclass
class Board:
    dashboard: Dashboard
    server: HTTPServer
    client: httpx.AsyncClient
    letters: DeadLetterStore
    tasks: TaskStore
    decisions: DecisionStore
    sagas: SagaStore

    async def csrf(self) -> str:
        answer = await self.client.get("/api/session")
        assert answer.status_code == 200
        token: str = answer.json()["csrf"]
        return token


A_PLUGIN = [
    parse_manifest(
        {
            "name": "a",
            "version": "1.0.0",
            "description": "calls nobody",
            "routing": {"canRouteTo": ["nobody"]},
        }
    )
]
"""The plugin "a", whose rights replays of its letters are checked against."""


def letter(reason: str = "handler-error", topic: str = "plugin/a/request", **extra: Any) -> Any:
    return {
        "reason": reason,
        "error": {"type": "RuntimeError", "message": extra.pop("message", "boom")},
        "subscriber": "a",
        "subscription": topic,
        "message": {"messageId": extra.pop("message_id", "m"), "topic": topic, **extra},
    }


async def board_for(tmp_path: Path, **options: Any) -> AsyncIterator[Board]:
    reset_message_bus()
    letters = DeadLetterStore(tmp_path / "dead-letters.db")
    tasks = TaskStore(tmp_path / "tasks.db")
    decisions = DecisionStore(tmp_path / "decisions.db")
    sagas = SagaStore(tmp_path / "sagas.db")
    router = Router.from_directory(EXAMPLES, store=decisions)
    bus_url = options.pop("bus_url", None)
    dashboard = Dashboard(
        get_message_bus("jira-orchestrator-dashboard", bus_url),
        dead_letters=letters,
        tasks=tasks,
        decisions=decisions,
        sagas=sagas,
        router=router,
        jira_url="https://example.atlassian.net",
        **options,
    )
    server = HTTPServer(dashboard.routes(), port=0, shutdown_timeout=2)
    try:
        await dashboard.start()
        await server.start()
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            yield Board(dashboard, server, client, letters, tasks, decisions, sagas)
    finally:
        await dashboard.stop()
        await server.stop()
        router.close()
        for store in (letters, tasks, decisions, sagas):
            store.close()
        await close_message_bus()


@pytest.fixture
async def board(tmp_path: Path) -> AsyncIterator[Board]:
    async for found in board_for(tmp_path):
        yield found


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[Board]:
    async for found in board_for(tmp_path, token=TOKEN):
        yield found


# -- paging and filters ---------------------------------------------------------------------


async def test_dead_letters_page_newest_first_without_gaps_or_repeats(board: Board) -> None:
    for n in range(120):
        board.letters.add(letter(message_id=f"m{n}"))
    seen: list[int] = []
    url: str | None = "/api/dead-letters?limit=50"
    pages = 0
    while url is not None:
        body = (await board.client.get(url)).json()
        assert body["total"] == 120
        seen += [item["id"] for item in body["items"]]
        url = None if body["next"] is None else f"/api/dead-letters?limit=50&below={body['next']}"
        pages += 1
    assert pages == 3
    assert seen == sorted(seen, reverse=True)
    assert len(set(seen)) == 120


async def test_dead_letters_filter_by_reason_and_topic_or_topic_prefix(board: Board) -> None:
    board.letters.add(letter("handler-error", "plugin/a/request"))
    board.letters.add(letter("expired", "plugin/a/request"))
    board.letters.add(letter("expired", "plugin/b/request"))
    board.letters.add(letter("expired", "plugin/ab/request"))

    async def ids(query: str) -> int:
        answer = await board.client.get("/api/dead-letters" + query)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["total"] == len(body["items"])
        return int(body["total"])

    assert await ids("?reason=expired") == 3
    assert await ids("?topic=plugin/a/request") == 2
    assert await ids("?reason=expired&topic=plugin/a/*") == 1
    assert await ids("?topic=plugin/a*") == 3
    assert await ids("?reason=nothing-like-it") == 0
    assert await ids("?reason=") == 4  # an empty filter is no filter


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        ("limit=1e3", "limit"),
        ("limit=%EF%BC%95", "limit"),  # a full-width digit
        ("below=0", "below"),
        ("below=x", "below"),
        ("below=99999999999999999999999", "below"),
        ("reason=" + "r" * 200, "reason"),
        ("topic=a%00b", "topic"),
    ],
)
async def test_bad_paging_and_filters_are_refused_naming_the_parameter(
    board: Board, query: str, named: str
) -> None:
    answer = await board.client.get(f"/api/dead-letters?{query}")
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] == "bad-request"
    assert body["detail"].startswith(f"{named}:")
    page = await board.client.get(f"/dead-letters?{query}")
    assert page.status_code == 400
    assert f"{named}:" in page.text
    assert (await board.client.get("/api/dead-letters")).status_code == 200  # still serving
    assert board.dashboard.bad_requests == 2  # counted


@pytest.mark.parametrize(
    "path",
    [
        "/api/dead-letters/0",
        "/api/dead-letters/-1",
        "/api/dead-letters/abc",
        "/api/dead-letters/99999999999999999999999999",
        "/api/dead-letters/9223372036854775807",
        "/api/tasks/nope",
        "/api/tasks/" + "x" * 300,
        "/api/decisions/nope",
        "/api/decisions/" + "x" * 300,
        "/api/sagas/nope",
        "/dead-letters/0",
        "/tasks/nope",
        "/decisions/nope",
        "/sagas/nope",
    ],
)
async def test_ids_out_of_range_are_not_found(board: Board, path: str) -> None:
    answer = await board.client.get(path)
    assert answer.status_code == 404
    if path.startswith("/api/"):
        assert answer.json()["error"] == "not-found"


async def test_tasks_decisions_and_sagas_page_and_filter(board: Board) -> None:
    for n in range(7):
        board.tasks.create(f"t{n}", {"request": {"key": f"OPS-{n + 1}"}}, "handle_issue")
        if n % 2:
            attempts = [
                {"plugin": "a", "outcome": "failed", "error": "x", "durationMs": 1.0},
                {"plugin": "b", "outcome": "completed", "error": None, "durationMs": 2.0},
            ]
            board.tasks.finish(f"t{n}", status="completed", plugin="b", attempts=attempts)
    first = (await board.client.get("/api/tasks?limit=3")).json()
    assert [t["id"] for t in first["items"]] == ["t6", "t5", "t4"]
    second = (await board.client.get(f"/api/tasks?limit=3&below={first['next']}")).json()
    assert [t["id"] for t in second["items"]] == ["t3", "t2", "t1"]
    done = (await board.client.get("/api/tasks?status=completed&plugin=b")).json()
    assert done["total"] == 3
    task = done["items"][0]
    assert task["fallbackUsed"] is True
    assert task["attempts"] == 2
    assert task["issueUrl"] == f"https://example.atlassian.net/browse/{task['issueKey']}"

    router = board.dashboard.router
    assert router is not None
    for text in ("Deploy the chart to EKS", "Add a React modal", "Deploy the helm chart again"):
        router.route(text)
    decisions = (await board.client.get("/api/decisions?limit=2")).json()
    assert decisions["total"] == 3
    assert len(decisions["items"]) == 2
    assert decisions["next"] is not None
    helm = (await board.client.get("/api/decisions?plugin=k8s-helm-deployer")).json()
    assert {d["primaryPlugin"] for d in helm["items"]} == {"k8s-helm-deployer"}

    board.sagas.start_run("r1", "provision", {"tenant": XSS})
    board.sagas.step_started("r1", 0, "create")
    board.sagas.set_step("r1", 0, "compensated")
    board.sagas.set_run("r1", "compensated", "deploy failed")
    runs = (await board.client.get("/api/sagas?status=compensated")).json()
    assert [r["id"] for r in runs["items"]] == ["r1"]
    assert runs["items"][0]["compensated"] == 1
    run = (await board.client.get("/api/sagas/r1")).json()
    assert run["stepList"][0]["status"] == "compensated"
    page = await board.client.get("/sagas/r1")
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;" in page.text


# -- hostile data ---------------------------------------------------------------------------


async def test_hostile_text_in_dead_letters_is_escaped_on_every_page(board: Board) -> None:
    hostile = letter(XSS, "plugin/a/request", message=XSS, message_id=XSS)
    hostile["subscriber"] = XSS
    letter_id, _ = board.letters.add(hostile)
    board.letters.add("not even an object " + XSS)  # malformed: stored raw, with a problem
    for path in ("/dead-letters", f"/dead-letters/{letter_id}", "/dead-letters?reason=" + XSS):
        page = await board.client.get(path)
        assert page.status_code == 200
        assert "<script>alert" not in page.text
        assert "onerror=alert" not in page.text.replace("onerror=alert(1)&gt;", "")
        assert "&lt;script&gt;" in page.text
    detail = (await board.client.get(f"/api/dead-letters/{letter_id}")).json()
    assert detail["errorMessage"] == XSS  # the API returns data as it is, as JSON
    answer = await board.client.get(f"/api/dead-letters/{letter_id}")
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in answer.headers["content-security-policy"]


async def test_secrets_in_the_bus_url_are_never_rendered_or_returned(tmp_path: Path) -> None:
    url = "memory://orchestrator:s3cr3t-pass@localhost/?token=s3cr3t-query"
    async for found in board_for(tmp_path, bus_url=url):
        overview = (await found.client.get("/api/overview")).json()
        assert overview["bus"] == "memory://orchestrator:***@localhost/?token=***"
        page = await found.client.get("/")
        assert "s3cr3t" not in page.text
        assert "s3cr3t" not in (await found.client.get("/api/overview")).text


def test_redact_url() -> None:
    assert redact_url("nats://u:p@h:4222") == "nats://u:***@h:4222"
    assert redact_url("nats://tok3n@h:4222") == "nats://***@h:4222"
    assert redact_url("nats://h:4222") == "nats://h:4222"
    assert redact_url("memory://") == "memory://"
    assert redact_url("nats://h:4222/?user=u&pass=p") == "nats://h:4222/?user=u&pass=***"


# -- changes: CSRF, bodies, actions ---------------------------------------------------------


async def test_a_post_without_or_with_a_wrong_csrf_token_is_refused(board: Board) -> None:
    letter_id, _ = board.letters.add(letter())
    body = {"ids": [letter_id]}
    for headers in ({}, {"X-CSRF-Token": "0" * 64}, {"X-CSRF-Token": ""}):
        answer = await board.client.post("/api/dead-letters/delete", json=body, headers=headers)
        assert answer.status_code == 403
        assert answer.json()["error"] == "csrf"
    form = await board.client.post(
        "/dead-letters/actions", data={"action": "delete", "ids": str(letter_id)}
    )
    assert form.status_code == 403
    # another session's token is not this one's
    other = httpx.AsyncClient(base_url=board.server.url)
    async with other:
        token = (await other.get("/api/session")).json()["csrf"]
    await board.client.get("/api/session")
    answer = await board.client.post(
        "/api/dead-letters/delete", json=body, headers={"X-CSRF-Token": token}
    )
    assert answer.status_code == 403
    assert board.letters.count() == 1
    csrf = await board.csrf()
    cross = await board.client.post(
        "/api/dead-letters/delete",
        json=body,
        headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    assert cross.json()["error"] == "cross-origin"
    done = await board.client.post(
        "/api/dead-letters/delete", json=body, headers={"X-CSRF-Token": csrf}
    )
    assert done.json() == {"deleted": 1}
    assert board.letters.count() == 0


async def test_bulk_delete_by_ids_and_by_filter(board: Board) -> None:
    ids = [board.letters.add(letter("expired", message_id=f"e{n}"))[0] for n in range(5)]
    board.letters.add(letter("handler-error", message_id="h"))
    csrf = await board.csrf()
    headers = {"X-CSRF-Token": csrf}
    answer = await board.client.post(
        "/api/dead-letters/delete", json={"ids": ids[:2]}, headers=headers
    )
    assert answer.json() == {"deleted": 2}
    everything = await board.client.post(
        "/api/dead-letters/delete", json={"all": True, "reason": "expired"}, headers=headers
    )
    assert everything.json() == {"deleted": 3}
    assert board.letters.counts() == {"handler-error": 1}
    form = await board.client.post(
        "/dead-letters/actions",
        data={"action": "delete", "ids": [str(i) for i in ids], "csrf": csrf},
    )
    assert form.status_code == 303  # back to the list, with the outcome
    for bad in ({"ids": []}, {"ids": ["1; DROP TABLE letters"]}, {"ids": list(range(501))}):
        refused = await board.client.post("/api/dead-letters/delete", json=bad, headers=headers)
        assert refused.status_code == 400
        assert refused.json()["detail"].startswith("ids:")
    assert board.letters.count() == 1


async def test_replay_marks_a_letter_only_when_delivery_is_confirmed(board: Board) -> None:
    # replayed as the letters' sender "a", within the rights of its manifest
    board.dashboard.manifests = A_PLUGIN
    nobody, _ = board.letters.add(letter(topic="plugin/nobody/request", source="a"), sender="a")
    received = []
    get_message_bus("a").subscribe("plugin/a/events", received.append)
    ok, _ = board.letters.add(
        letter(topic="plugin/a/events", source="a", messageType="event", payload={"n": 1}),
        sender="a",
    )
    csrf = await board.csrf()
    answer = await board.client.post(
        "/api/dead-letters/replay", json={"ids": [nobody, ok]}, headers={"X-CSRF-Token": csrf}
    )
    body = answer.json()
    assert [r["id"] for r in body["replayed"]] == [ok]
    assert [f["id"] for f in body["failed"]] == [nobody]
    assert "nobody subscribes" in body["failed"][0]["error"]
    await get_message_bus("a").flush()
    assert board.letters.get(ok).replay_count == 1
    assert board.letters.get(nobody).replay_count == 0
    assert [m.payload for m in received] == [{"n": 1}]


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        (b"[1, 2]", {"content-type": "application/json"}, 400),
        (b"{not json", {"content-type": "application/json"}, 400),
        (b"ids=1", {"content-type": "text/plain"}, 415),
        (b"x" * (1024 * 1024 + 1), {"content-type": "application/json"}, 413),
    ],
)
async def test_bad_bodies_are_refused(
    board: Board, content: bytes, headers: dict[str, str], status: int
) -> None:
    csrf = await board.csrf()
    answer = await board.client.post(
        "/api/dead-letters/delete", content=content, headers={**headers, "X-CSRF-Token": csrf}
    )
    assert answer.status_code == status


async def test_correcting_a_decision_through_the_api_teaches_the_router(board: Board) -> None:
    csrf = await board.csrf()
    text = "Write a script to rotate logs"
    first = await board.client.post(
        "/api/route", json={"text": text}, headers={"X-CSRF-Token": csrf}
    )
    decision = first.json()["decision"]
    assert decision["primaryPlugin"] == "frontend-design-system"
    assert "goes to frontend-design-system" in first.json()["explanation"]
    path = f"/api/decisions/{decision['requestId']}/correct"
    unknown = await board.client.post(
        path, json={"plugin": "no-such-plugin"}, headers={"X-CSRF-Token": csrf}
    )
    assert unknown.status_code == 400
    assert unknown.json()["detail"].startswith("plugin:")
    missing = await board.client.post(
        "/api/decisions/nope/correct", json={"plugin": "k8s-helm-deployer"},
        headers={"X-CSRF-Token": csrf},
    )  # fmt: skip
    assert missing.status_code == 404
    fixed = await board.client.post(
        path, json={"plugin": "k8s-helm-deployer"}, headers={"X-CSRF-Token": csrf}
    )
    assert fixed.json()["correctedTo"] == "k8s-helm-deployer"
    again = await board.client.post(
        "/api/route", json={"text": text}, headers={"X-CSRF-Token": csrf}
    )
    assert again.json()["decision"]["primaryPlugin"] == "k8s-helm-deployer"
    stored = (await board.client.get(f"/api/decisions/{decision['requestId']}")).json()
    assert stored["correctedTo"] == "k8s-helm-deployer"


async def test_route_input_is_checked(board: Board) -> None:
    csrf = await board.csrf()
    headers = {"X-CSRF-Token": csrf}
    for body, status, detail in (
        ({}, 400, "text:"),
        ({"text": "   "}, 400, "text:"),
        ({"text": "x" * 100_001}, 400, "text:"),
        ({"text": "ok", "files": [1]}, 400, "files:"),
        ({"issueKey": "not a key"}, 400, "issueKey:"),
        ({"issueKey": "OPS-401"}, 409, "no Jira site"),
    ):
        answer = await board.client.post("/api/route", json=body, headers=headers)
        assert answer.status_code == status, body
        assert detail in answer.json()["detail"]


async def test_route_reads_an_issue_by_key_with_an_issue_fetcher(tmp_path: Path) -> None:
    asked: list[str] = []

    async def fetch(key: str) -> Mapping[str, Any]:
        asked.append(key)
        return {"key": key, "fields": {"summary": "Deploy billing-api with a Helm chart"}}

    async for found in board_for(tmp_path, issue_fetcher=fetch):
        csrf = await found.csrf()
        answer = await found.client.post(
            "/api/route", json={"issueKey": "ops-401"}, headers={"X-CSRF-Token": csrf}
        )
        assert answer.status_code == 200
        assert answer.json()["decision"]["requestId"] == "OPS-401"
        assert answer.json()["decision"]["primaryPlugin"] == "k8s-helm-deployer"
        assert asked == ["OPS-401"]


# -- who may ask ----------------------------------------------------------------------------


async def test_without_a_token_only_loopback_host_names_are_answered(board: Board) -> None:
    rebound = await board.client.get("/api/overview", headers={"Host": "evil.example:8642"})
    assert rebound.status_code == 403
    assert rebound.json()["error"] == "forbidden-host"
    assert board.dashboard.guard.refused == 1
    for host in ("localhost:8642", "127.0.0.1", "[::1]:8642"):
        answer = await board.client.get("/api/overview", headers={"Host": host})
        assert answer.status_code == 200


async def test_with_a_token_every_call_needs_it(guarded: Board) -> None:
    refused = await guarded.client.get("/api/dead-letters")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    wrong = await guarded.client.get(
        "/api/dead-letters", headers={"Authorization": "Bearer not-the-token-at-all"}
    )
    assert wrong.status_code == 401
    page = await guarded.client.get("/dead-letters?reason=expired")
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Fdead-letters%3Freason%3Dexpired"
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert (await guarded.client.get("/api/dead-letters", headers=bearer)).status_code == 200
    # a script with the bearer header needs no CSRF token: no browser sends it by itself
    guarded.letters.add(letter())
    deleted = await guarded.client.post(
        "/api/dead-letters/delete", json={"all": True}, headers=bearer
    )
    assert deleted.json() == {"deleted": 1}
    # any host name is fine with a token (it is what keeps others out)
    answer = await guarded.client.get("/api/overview", headers={**bearer, "Host": "ops.example"})
    assert answer.status_code == 200


async def test_the_login_form_checks_the_token_and_redirects_only_within_the_site(
    guarded: Board,
) -> None:
    wrong = await guarded.client.post("/login", data={"token": "nope", "next": "/tasks"})
    assert wrong.status_code == 401
    assert ".1." not in wrong.headers.get("set-cookie", "")  # not signed in
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        answer = await guarded.client.post("/login", data={"token": TOKEN, "next": target})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert TOKEN not in cookie
    assert (await guarded.client.get("/api/tasks")).status_code == 200  # the cookie works
    guarded.client.cookies.clear()
    anonymous = (await guarded.client.get("/login")).cookies["jo_dashboard"]
    assert ".0." in anonymous
    guarded.client.cookies.clear()
    guarded.client.cookies.set("jo_dashboard", anonymous.replace(".0.", ".1."))  # forged
    assert (await guarded.client.get("/api/tasks")).status_code == 401


def test_the_dashboard_refuses_a_non_loopback_address_without_a_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    result = CliRunner().invoke(
        _app.app, ["dashboard", "--bus", "memory://", "--http", "0.0.0.0:0"]
    )
    assert result.exit_code == 2
    assert "without a token" in result.output
    monkeypatch.setenv(TOKEN_ENV, "short")
    result = CliRunner().invoke(
        _app.app, ["dashboard", "--bus", "memory://", "--http", "127.0.0.1:0"]
    )
    assert result.exit_code == 2
    assert "at least 16 characters" in result.output
    with pytest.raises(DashboardSecurityError):
        check_bind("192.0.2.1", None)
    with pytest.raises(DashboardSecurityError):
        check_bind("::", None)
    check_bind("192.0.2.1", TOKEN)
    check_bind("::1", None)
    check_bind("localhost", None)
    with pytest.raises(DashboardSecurityError):
        Dashboard(token="short")


def test_the_dashboard_command_checks_its_stores(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        _app.app, ["dashboard", "--bus", "memory://", "--tasks", str(tmp_path / "none.db")]
    )
    assert result.exit_code == 2
    assert "--tasks: no database" in result.output
    result = CliRunner().invoke(
        _app.app, ["dashboard", "--bus", "memory://", "--http", "127.0.0.1:99999"]
    )
    assert result.exit_code == 2
    assert "--http" in result.output


async def test_replaying_all_matching_letters_skips_those_already_replayed(board: Board) -> None:
    board.dashboard.manifests = A_PLUGIN
    received = []
    get_message_bus("a").subscribe("plugin/a/events", received.append)
    ids = [
        board.letters.add(
            letter(topic="plugin/a/events", source="a", messageType="event", payload={"n": n}),
            letter_id=f"l{n}",
            sender="a",
        )[0]
        for n in range(2)
    ]
    board.letters.add(letter(topic="plugin/b/events"))  # another topic: not selected
    headers = {"X-CSRF-Token": await board.csrf()}
    body = {"all": True, "topic": "plugin/a/*"}
    first = await board.client.post("/api/dead-letters/replay", json=body, headers=headers)
    assert sorted(r["id"] for r in first.json()["replayed"]) == ids
    again = await board.client.post("/api/dead-letters/replay", json=body, headers=headers)
    assert again.json() == {"replayed": [], "failed": []}
    await get_message_bus("a").flush()
    assert sorted(m.payload["n"] for m in received) == [0, 1]


async def test_the_ready_check_says_when_a_store_is_closed(board: Board) -> None:
    assert board.dashboard.ready()
    board.tasks.close()
    assert not board.dashboard.ready()
    answer = await board.client.get("/api/tasks")
    assert answer.status_code == 503
    assert answer.json()["error"] == "store-unavailable"
