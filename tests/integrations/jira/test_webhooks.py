"""The Jira webhook receiver over real HTTP: uvicorn on a free loopback port, httpx client.

The eight real bodies in ../shared/jira-ref/webhooks/ are replayed as raw bytes with
signatures computed here, as Jira computes them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import threading
import tracemalloc
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jira_orchestrator.integrations.jira import (
    Secret,
    WebhookConfigError,
    WebhookInbox,
    WebhookReceiver,
    secret_from_env,
    sign,
    verify_signature,
)
from jira_orchestrator.web import HTTPServer

BODIES = Path(__file__).resolve().parents[3].parent / "shared" / "jira-ref" / "webhooks"
SECRET = "it-is-a-secret-to-everybody"
PROJECTS = {"TES", "SB", "KAN", "IDT", "TEST", "OPS"}
needs_bodies = pytest.mark.skipif(not BODIES.is_dir(), reason=f"{BODIES} is not there")


def jira_signature(body: bytes, secret: str = SECRET) -> str:
    # Computed independently of the code under test, as Jira does.
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headers(body: bytes, delivery: str | None = "d-1", **extra: str) -> dict[str, str]:
    sent = {"Content-Type": "application/json", "X-Hub-Signature": jira_signature(body)}
    if delivery is not None:
        sent["X-Atlassian-Webhook-Identifier"] = delivery
        sent["X-Atlassian-Webhook-Flow"] = "Primary"
    sent.update(extra)
    return sent


def issue_body(key: str = "OPS-1", updated: str = "2026-01-01T10:00:00.000+0000") -> bytes:
    return json.dumps(
        {
            "timestamp": 1767261600000,
            "webhookEvent": "jira:issue_updated",
            "issue": {
                "id": "1" + key.split("-")[1],
                "key": key,
                "fields": {"updated": updated, "project": {"key": key.split("-")[0]}},
            },
        }
    ).encode()


@dataclass
class Running:
    url: str
    inbox: WebhookInbox
    receiver: WebhookReceiver
    client: httpx.AsyncClient

    async def post(self, body: bytes | Any, sent: Mapping[str, str | bytes]) -> httpx.Response:
        return await self.client.post("/webhooks/jira", content=body, headers=sent)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    inbox = WebhookInbox(tmp_path / "inbox.db")
    receiver = WebhookReceiver(inbox, secret=Secret(SECRET), projects=PROJECTS)
    server = HTTPServer(receiver.routes(), port=0, ready_checks={"inbox": receiver.ready})
    try:
        async with server, httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            yield Running(server.url, inbox, receiver, client)
            await receiver.aclose()
    finally:
        inbox.close()


@needs_bodies
async def test_the_eight_real_bodies_are_accepted_and_stored_byte_for_byte(
    running: Running,
) -> None:
    files = sorted(BODIES.glob("*.json"))
    assert len(files) == 8
    for n, path in enumerate(files):
        raw = path.read_bytes()
        answer = await running.post(raw, headers(raw, f"delivery-{n}"))
        assert answer.status_code == 202, (path.name, answer.text)
        assert answer.json()["status"] == "accepted"
        stored = running.inbox.get(answer.json()["seq"])
        assert (stored.body, stored.delivery_id, stored.state) == (raw, f"delivery-{n}", "pending")
    assert running.receiver.stats["accepted"] == 8
    assert running.inbox.counts() == {"pending": 8}


@needs_bodies
async def test_bad_signatures_get_401_without_detail_and_nothing_is_stored(
    running: Running,
) -> None:
    raw = (BODIES / "issue_created.zulip-2026.json").read_bytes()
    reserialised = json.dumps(json.loads(raw)).encode()
    one_byte_changed = raw.replace(b"KAN-3", b"KAN-4", 1)
    cases = {
        "missing": {"Content-Type": "application/json"},
        "wrong": {"X-Hub-Signature": "sha256=" + "0" * 64},
        "another body's": {"X-Hub-Signature": jira_signature(b"{}")},
        "another secret's": {"X-Hub-Signature": jira_signature(raw, "guess")},
        "another method": {
            "X-Hub-Signature": "sha1=" + hmac.new(SECRET.encode(), raw, "sha1").hexdigest()
        },
        "garbage": {"X-Hub-Signature": "sha256=\u00e9\u00e9".encode("latin-1")},
    }
    for name, sent in cases.items():
        answer = await running.post(raw, sent)
        assert (answer.status_code, answer.json()) == (401, {"error": "unauthorized"}), name
    for body in (reserialised, one_byte_changed):  # signed as the original bytes
        answer = await running.post(body, headers(raw))
        assert answer.status_code == 401
    assert running.inbox.counts() == {}
    assert running.receiver.stats["rejected"] == {"unauthorized": len(cases) + 2}


@needs_bodies
async def test_a_replayed_identifier_is_answered_2xx_and_stored_once(running: Running) -> None:
    raw = (BODIES / "issue_updated.labels.mattermost-2019.json").read_bytes()
    first = await running.post(raw, headers(raw, "same-id"))
    again = await running.post(raw, headers(raw, "same-id", **{"X-Atlassian-Webhook-Retry": "1"}))
    assert first.status_code == 202
    assert (again.status_code, again.json()) == (
        200,
        {"status": "duplicate", "seq": first.json()["seq"]},
    )
    assert running.inbox.counts() == {"pending": 1}
    assert running.receiver.stats["duplicates"] == 1


async def test_without_an_identifier_the_same_body_is_recognised(running: Running) -> None:
    raw = issue_body()
    first = await running.post(raw, headers(raw, delivery=None))
    second = await running.post(raw, headers(raw, delivery=None))
    assert (first.status_code, second.status_code) == (202, 200)
    assert running.inbox.counts() == {"pending": 1}


@needs_bodies
@pytest.mark.parametrize(
    ("cut", "detail"),
    [
        (lambda raw: raw[: len(raw) // 2], "truncated"),
        (lambda raw: b"<html>not json</html>", "not JSON"),
        (lambda raw: b"", "not JSON"),
        (lambda raw: b'{"hello": "world"}', "webhookEvent"),
        (lambda raw: b'{"webhookEvent": "board_created", "board": {}}', "no 'issue'"),
    ],
)
async def test_bodies_that_are_not_jira_events_get_400_with_the_reason(
    running: Running, cut: Any, detail: str
) -> None:
    body = cut((BODIES / "issue_created.zulip-2026.json").read_bytes())
    answer = await running.post(body, headers(body))
    assert answer.status_code == 400
    assert detail in answer.json()["detail"]
    assert running.inbox.counts() == {}
    assert sum(running.receiver.stats["rejected"].values()) == 1


async def test_a_declared_10_mb_body_is_refused_with_413(running: Running) -> None:
    body = b"x" * (10 * 1024 * 1024)
    answer = await running.post(body, headers(body))
    assert (answer.status_code, answer.json()["error"]) == (413, "too-large")
    assert running.receiver.stats["rejected"] == {"too-large": 1}


async def test_a_streamed_10_mb_body_is_cut_off_at_the_limit_without_filling_memory(
    running: Running,
) -> None:
    chunk = b"x" * 65536

    async def stream() -> AsyncIterator[bytes]:
        for _ in range(160):  # 10 MiB, chunked: no Content-Length to refuse it early
            yield chunk

    tracemalloc.start()
    try:
        answer = await running.post(stream(), {"X-Hub-Signature": "sha256=00"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.status_code == 413
    # the limit is 1 MiB; reading the whole body would have taken 10 MiB at least
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes"
    answer = await running.post(issue_body(), headers(issue_body()))
    assert answer.status_code == 202  # and the server keeps serving


async def test_an_unconfigured_project_is_accepted_but_ignored_and_counted(
    running: Running,
) -> None:
    raw = issue_body("ELSEWHERE-5")
    answer = await running.post(raw, headers(raw))
    assert answer.status_code == 202
    assert answer.json() == {"status": "ignored", "reason": "project 'ELSEWHERE' is not configured"}
    assert running.inbox.counts() == {}
    assert running.receiver.stats["ignored"] == 1


async def test_an_event_older_than_the_last_processed_is_stored_as_superseded(
    running: Running,
) -> None:
    newer = issue_body(updated="2026-01-01T10:00:05.000-0800")
    older = issue_body(updated="2026-01-01T10:00:01.000-0800")
    assert (await running.post(newer, headers(newer, "new"))).status_code == 202
    [claimed] = running.inbox.claim()
    running.inbox.complete(claimed.seq)
    late = await running.post(older, headers(older, "old"))
    assert (late.status_code, late.json()["state"]) == (202, "superseded")
    assert running.inbox.claim() == []
    assert running.receiver.stats["superseded"] == 1


async def test_a_store_failure_answers_503_so_jira_retries_and_says_which_issue(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    running.inbox.close()
    raw = issue_body("OPS-77")
    answer = await running.post(raw, headers(raw))
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "30"
    assert "OPS-77" in caplog.text
    assert (await running.client.get("/readyz")).json()["checks"] == {"inbox": False}


async def test_no_log_line_carries_the_secret_or_a_signature(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    raw = issue_body()
    for sent in (headers(raw), {"X-Hub-Signature": jira_signature(b"x")}, headers(b"nope")):
        await running.post(raw, sent)
    await running.post(b"nope", headers(b"nope"))
    assert caplog.records
    assert SECRET not in caplog.text
    assert jira_signature(raw)[7:] not in caplog.text
    assert SECRET not in repr(running.receiver.__dict__)


async def test_readyz_and_healthz_on_the_same_server(running: Running) -> None:
    assert (await running.client.get("/healthz")).status_code == 200
    ready = await running.client.get("/readyz")
    assert (ready.status_code, ready.json()["checks"]) == (200, {"inbox": True})


async def test_without_a_secret_unsigned_bodies_are_accepted_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with WebhookInbox(tmp_path / "inbox.db") as inbox:
        receiver = WebhookReceiver(inbox, secret=None)
        assert "WITHOUT a signature check" in caplog.text
        async with (
            HTTPServer(receiver.routes(), port=0) as server,
            httpx.AsyncClient(base_url=server.url) as client,
        ):
            answer = await client.post("/webhooks/jira", content=issue_body("ANY-1"))
            assert answer.status_code == 202
        assert inbox.counts() == {"pending": 1}


def test_the_secret_comes_from_the_named_variable_and_never_shows() -> None:
    with pytest.raises(WebhookConfigError, match=r"JIRA_WEBHOOK_SECRET .* not set"):
        secret_from_env("JIRA_WEBHOOK_SECRET", {})
    secret = secret_from_env("JIRA_WEBHOOK_SECRET", {"JIRA_WEBHOOK_SECRET": SECRET})
    assert SECRET not in repr(secret)
    assert SECRET not in str(secret)
    assert sign(b"body", secret) == jira_signature(b"body")
    assert verify_signature(b"body", jira_signature(b"body"), secret)
    assert verify_signature(b"body", jira_signature(b"body").upper().replace("SHA", "sha"), secret)
    assert not verify_signature(b"body", None, secret)
    with pytest.raises(TypeError, match="Secret"):
        WebhookReceiver(None, secret=SECRET)  # type: ignore[arg-type]


class ThreadedServer:
    """The receiver on a server in a thread of its own, for synchronous hypothesis tests."""

    def __init__(self, receiver: WebhookReceiver) -> None:
        self.receiver = receiver
        self.url = ""
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with HTTPServer(self.receiver.routes(), port=0) as server:
            self.url = server.url
            self._started.set()
            await self._stop.wait()

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        assert self._started.wait(30), "the server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, httpx.Client]]:
    folder = tmp_path_factory.mktemp("hostile")
    signed_inbox = WebhookInbox(folder / "signed.db")
    open_inbox = WebhookInbox(folder / "open.db")
    signed = WebhookReceiver(signed_inbox, secret=Secret(SECRET), max_body_bytes=4096)
    unsigned = WebhookReceiver(open_inbox, secret=None, projects={"OPS"}, max_body_bytes=4096)
    try:
        with (
            ThreadedServer(signed) as a,
            ThreadedServer(unsigned) as b,
            httpx.Client(base_url=a.url) as ca,
            httpx.Client(base_url=b.url) as cb,
        ):
            yield {"signed": ca, "unsigned": cb}
    finally:
        signed_inbox.close()
        open_inbox.close()


header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=80,
).map(lambda text: text.strip(" \t"))  # clients refuse to send edge whitespace
edge_values = st.sampled_from(
    [10**400, -(10**400), 1e308, "0001-01-01T00:00:00+0100", "9999-12-31T23:59:59-2359", "+0000"]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | edge_values,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)
times = edge_values | st.sampled_from(["2026-01-01T10:00:00.000+0000"]) | json_values
fields = st.fixed_dictionaries(
    {},
    optional={
        "updated": times,
        "project": st.fixed_dictionaries({"key": json_values}) | json_values,
        "labels": json_values,
        "components": st.lists(json_values, max_size=3) | json_values,
        "assignee": json_values,
        "status": json_values,
        "summary": json_values,
    },
)
# A well-formed event whose every other value may be odd: the parser's branches see them.
odd_events = st.fixed_dictionaries(
    {
        "webhookEvent": st.sampled_from(
            ["jira:issue_created", "jira:issue_updated", "comment_created", "other"]
        ),
        "issue": st.fixed_dictionaries(
            {"id": st.sampled_from(["10001", 5]), "key": st.sampled_from(["OPS-1", "X-2", "-"])},
            optional={"fields": fields | json_values},
        ),
    },
    optional={
        "timestamp": st.integers(min_value=-(10**400), max_value=10**400) | times,
        "changelog": st.fixed_dictionaries({"items": st.lists(json_values, max_size=3)}),
        "comment": st.fixed_dictionaries(
            {}, optional={"body": json_values, "updated": times, "author": json_values}
        )
        | json_values,
        "user": json_values,
    },
)
# Anything JSON, mostly not an event at all.
any_json = json_values | st.fixed_dictionaries(
    {}, optional={"webhookEvent": json_values, "issue": json_values | fields}
)
ANSWERS = {200, 202, 400, 401, 413}


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(
    body=st.binary(max_size=5000),
    signature=st.none() | header_text,
    delivery=st.none() | header_text,
    content_type=st.none() | header_text,
)
def test_random_bytes_and_headers_never_get_a_500(
    hostile: dict[str, httpx.Client],
    body: bytes,
    signature: str | None,
    delivery: str | None,
    content_type: str | None,
) -> None:
    sent = {
        name: value.encode("latin-1")
        for name, value in {
            "X-Hub-Signature": signature,
            "X-Atlassian-Webhook-Identifier": delivery,
            "Content-Type": content_type,
        }.items()
        if value is not None
    }
    for client in hostile.values():
        answer = client.post("/webhooks/jira", content=body, headers=sent)
        assert answer.status_code in ANSWERS, answer.text


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(data=odd_events, delivery=st.text(min_size=1, max_size=40, alphabet="abcdef0123456789-"))
def test_signed_events_with_odd_values_never_get_a_500(
    hostile: dict[str, httpx.Client], data: Any, delivery: str
) -> None:
    _post_both(hostile, data, delivery)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(data=any_json, delivery=st.text(min_size=1, max_size=40, alphabet="abcdef0123456789-"))
def test_signed_json_of_any_shape_never_gets_a_500(
    hostile: dict[str, httpx.Client], data: Any, delivery: str
) -> None:
    _post_both(hostile, data, delivery)


def _post_both(hostile: dict[str, httpx.Client], data: Any, delivery: str) -> None:
    body = json.dumps(data).encode()
    signed = hostile["signed"].post("/webhooks/jira", content=body, headers=headers(body, delivery))
    unsigned = hostile["unsigned"].post(
        "/webhooks/jira", content=body, headers={"X-Atlassian-Webhook-Identifier": delivery}
    )
    for answer in (signed, unsigned):
        assert answer.status_code in ANSWERS, answer.text
        assert answer.status_code != 401 or answer is unsigned
