"""The TypeScript example plugin (examples/plugins/release-notes), on a real nats-server
with one user per plugin, as ``up`` runs it (the orchestrator's side creates the streams and
the plugin's durable consumer, the plugin binds to it): routed work, RPC and health, a
durable request that survives its process, malformed requests; and, on an open server, a
durable queue it creates and shares with a Python replica."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from jira_orchestrator import InvalidParams, InvalidTopic, MethodNotFound
from jira_orchestrator._core.topics import normalize_pattern, normalize_topic, pattern_matches
from jira_orchestrator.cli._launch import Launch, NotStartable, plan_launch
from jira_orchestrator.cli.up import bus_environment
from jira_orchestrator.messagebus import (
    Message,
    RPCClient,
    close_message_bus,
    get_message_bus,
    reset_message_bus,
)
from jira_orchestrator.orchestrator.dispatcher import Orchestrator
from jira_orchestrator.orchestrator.natsconfig import nats_authorization
from jira_orchestrator.plugins import discover_plugins, load_plugin
from jira_orchestrator.transports._nats_subjects import DELIVER_PREFIX, consumer_name
from jira_orchestrator.transports.nats_server import NatsServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plugins"
ROOT = EXAMPLES / "release-notes"
ID = "release-notes"
READY = 40.0  # generous: a bound on a failure, never a wait for time to pass

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None,
    reason="node is not installed: the TypeScript example plugin cannot run here "
    "(CI installs nodejs and npm)",
)


def launch() -> Launch:
    try:
        planned = plan_launch(load_plugin(ROOT), python=sys.executable, path=os.environ.get("PATH"))
    except NotStartable as error:
        pytest.fail(f"{error} (make test builds it when npm is installed)")
    assert planned is not None
    return planned


class NodePlugin:
    """The plugin's node process, its output collected, `ready` set when it says so."""

    def __init__(self, url: str, output: Path) -> None:
        planned = launch()
        env = {
            "PATH": os.environ.get("PATH", ""),
            "JIRA_ORCHESTRATOR_OUTPUT": str(output),
            **bus_environment(url),
        }
        self.process = subprocess.Popen(
            planned.argv,
            cwd=planned.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if f"{ID} ready" in line:
                self.ready.set()

    @property
    def said(self) -> str:
        return "".join(self.lines)

    async def wait_ready(self) -> None:
        ready = await asyncio.to_thread(self.ready.wait, READY)
        assert ready, f"the node plugin did not get ready:\n{self.said}"

    def end(self) -> None:
        """SIGTERM (it drains and says so), SIGKILL if it is still there after 30 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait(timeout=30)
        self.reader.join(timeout=10)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[NatsServer, dict[str, str]]]:
    """A nats-server with one user per example plugin (their manifests' permissions), and
    each user's URL."""
    text, users = nats_authorization(discover_plugins(EXAMPLES))
    with NatsServer(tmp_path / "nats", extra_config=text) as server:
        yield server, {user.name: server.url_for(user.name, user.password) for user in users}


def bound(url: str, **options: str) -> str:
    """A plugin's URL as ``up`` gives it: it binds to the consumer made for it."""
    return url + "?" + "&".join(f"{k}={v}" for k, v in {"jetstream": "bind", **options}.items())


async def orchestrator_side(bus: Any, url: str, *, ack_wait: float = 30.0) -> None:
    """What the orchestrator's side does before any plugin starts: connect (its transport
    creates the streams) and create the durable consumer of release-notes, with the
    configuration docs/protocol.md gives for it (a plugin's user may not create it)."""
    await bus.transport.flush()
    name = consumer_name("JO_REQUESTS", f"plugin/{ID}/request", ID)
    config = ConsumerConfig(
        name=name,
        durable_name=name,
        deliver_subject=DELIVER_PREFIX + name,
        deliver_group=ID,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=5,
        max_ack_pending=1000,
        filter_subject=f"_jo.durable.plugin.{ID}.request",
    )
    client = await nats.connect(url, allow_reconnect=False)
    try:
        await client.jsm().add_consumer("JO_REQUESTS", config)
    finally:
        await client.close()


@contextlib.contextmanager
def node_plugin(url: str, output: Path) -> Iterator[NodePlugin]:
    plugin = NodePlugin(url, output)
    try:
        yield plugin
    finally:
        plugin.end()


@pytest.fixture
async def fresh_buses() -> AsyncIterator[None]:
    reset_message_bus()
    try:
        yield
    finally:
        await close_message_bus()


ISSUE = {
    "key": "REL-7",
    "fields": {
        "summary": "Users cannot sign in with SSO after the upgrade",
        "issuetype": {"name": "Bug"},
        "description": "Add a changelog entry for the login fix.",
        "labels": ["changelog"],
    },
}


async def test_the_orchestrator_routes_an_issue_to_the_typescript_plugin_and_gets_its_result(
    secured: tuple[NatsServer, dict[str, str]], tmp_path: Path, fresh_buses: None
) -> None:
    _, urls = secured
    orchestrator = Orchestrator(
        EXAMPLES, bus_url=urls["jira-orchestrator"], tasks=tmp_path / "t.db"
    )
    try:
        # As in `up`: the orchestrator connects first (its bus creates the JetStream
        # streams), then the plugins start, then it checks their health.
        await orchestrator_side(orchestrator.bus, urls["jira-orchestrator"])
        with node_plugin(bound(urls[ID]), tmp_path / "output") as plugin:
            await plugin.wait_ready()
            await orchestrator.start()  # its health check asks the node plugin, over RPC
            assert orchestrator.health[ID].status == "healthy"
            assert orchestrator.health["fastapi-backend"].status == "stopped"  # not running
            result = await orchestrator.dispatch(ISSUE)
    finally:
        await orchestrator.stop()
        orchestrator.close()
    assert result.outcome == "completed", result.to_dict()
    assert result.primary == ID
    assert result.plugin == ID
    assert result.result["section"] == "Fixed"
    assert result.result["entry"] == "- Users cannot sign in with SSO after the upgrade (REL-7)"
    changelog = (tmp_path / "output" / ID / "CHANGELOG.md").read_text()
    assert "## [Unreleased]\n\n### Fixed\n\n- Users cannot sign in with SSO" in changelog
    assert f"{ID} stopped" in plugin.said  # SIGKILL is the fixture's last resort only


async def test_rpc_health_discovery_commands_and_errors_of_the_typescript_plugin(
    secured: tuple[NatsServer, dict[str, str]], tmp_path: Path, fresh_buses: None
) -> None:
    _, urls = secured
    bus = get_message_bus("jira-orchestrator", urls["jira-orchestrator"])
    await orchestrator_side(bus, urls["jira-orchestrator"])
    with node_plugin(bound(urls[ID]), tmp_path / "output") as plugin:
        await plugin.wait_ready()
        client = RPCClient(f"plugin://{ID}/rpc", bus=bus, timeout=10)
        health = await client.call("health_check")
        assert health["status"] == "healthy"
        methods = {method["name"]: method for method in await client.discover()}
        assert set(methods) == {"health_check", "get_status", "execute_command", "rpc.discover"}
        assert methods["execute_command"]["params"]["required"] == ["command"]

        added = await client.call(
            "execute_command",
            {"command": "add_entry", "parameters": {"text": "Dark mode", "section": "Added"}},
        )
        assert added["entry"] == "- Dark mode"
        released = await client.call(
            "execute_command",
            {"command": "release", "parameters": {"version": "1.4.0", "date": "2026-01-02"}},
        )
        assert released["notes"] == "### Added\n\n- Dark mode"
        written = await asyncio.to_thread(Path(released["filePath"]).read_text)
        assert "## [1.4.0] - 2026-01-02" in written
        with pytest.raises(InvalidParams, match="already released"):
            await client.call(
                "execute_command", {"command": "release", "parameters": {"version": "1.4.0"}}
            )
        with pytest.raises(InvalidParams, match=r"params\.verbose: unexpected"):
            await client.call("get_status", {"verbose": True})
        with pytest.raises(MethodNotFound):
            await client.call("no_such_method")
        status = await client.call("get_status")
        assert status["requestsProcessed"] == 2
        assert status["commands"] == ["add_entry", "handle_issue", "notes", "release"]

        # Commands on plugin/<id>/request answer the seed's {status, result} convention;
        # a bad request is the caller's error, which the orchestrator neither retries nor
        # holds against the plugin.
        reply = await bus.request(
            topic=f"plugin/{ID}/request",
            payload={"command": "add_entry", "parameters": {"text": "x", "section": "Misc"}},
            timeout=10,
        )
        assert reply["status"] == "error"
        assert reply["callerError"] is True
        assert "parameters.section: one of Added" in reply["error"]
        unknown = await bus.request(
            topic=f"plugin/{ID}/request", payload={"command": "nope"}, timeout=10
        )
        assert unknown["errorType"] == "MethodNotFound"


async def test_a_durable_request_survives_the_death_of_the_node_process_holding_it(
    secured: tuple[NatsServer, dict[str, str]], tmp_path: Path, fresh_buses: None
) -> None:
    _, urls = secured
    name = consumer_name("JO_REQUESTS", f"plugin/{ID}/request", ID)
    watcher = await nats.connect(urls["jira-orchestrator"], allow_reconnect=False)
    try:
        delivered = asyncio.Event()

        async def seen(msg: nats.aio.msg.Msg) -> None:
            delivered.set()

        # Every delivery of the shared consumer, seen beside the queue group that takes it.
        await watcher.subscribe(DELIVER_PREFIX + name, cb=seen)
        await watcher.flush()
        caller = get_message_bus("jira-orchestrator", urls["jira-orchestrator"])
        # the shared consumer hands an unacknowledged request on after 2 s
        await orchestrator_side(caller, urls["jira-orchestrator"], ack_wait=2)
        first = NodePlugin(bound(urls[ID], ack_wait="2"), tmp_path / "output")
        try:
            await first.wait_ready()
            first.process.send_signal(signal.SIGSTOP)  # alive, subscribed, and deaf
            asking = asyncio.ensure_future(
                caller.request(
                    topic=f"plugin/{ID}/request",
                    payload={
                        "command": "handle_issue",
                        "parameters": {"key": "REL-9", "summary": "Remove the legacy export"},
                    },
                    timeout=120,
                )
            )
            async with asyncio.timeout(READY):
                await delivered.wait()  # stored, and handed to the frozen process
            assert not asking.done()
            first.process.kill()
        finally:
            first.end()
        with node_plugin(bound(urls[ID], ack_wait="2"), tmp_path / "output") as second:
            await second.wait_ready()
            async with asyncio.timeout(READY):
                reply = await asking
    finally:
        await watcher.close()
    assert reply["status"] == "success", reply
    assert reply["result"]["section"] == "Removed"
    book = json.loads((tmp_path / "output" / ID / "changelog.json").read_text())
    assert [entry["key"] for entry in book["unreleased"]] == ["REL-9"]


async def test_a_python_replica_and_the_node_plugin_share_one_durable_queue(
    tmp_path: Path, fresh_buses: None
) -> None:
    """On a server of one's own where anybody may create consumers, the node process
    creates the consumer every replica shares (same name and configuration in both
    languages) and a Python replica joins it: each request is handled once, by one."""
    with NatsServer(tmp_path / "nats") as server:
        await shared_queue(server.url, tmp_path)


async def shared_queue(url: str, tmp_path: Path) -> None:
    caller = get_message_bus("jira-orchestrator", url)
    await caller.transport.flush()  # the streams, no consumer yet
    with node_plugin(url, tmp_path / "output") as plugin:
        await plugin.wait_ready()  # it created the consumer; the Python replica joins it
        replica = get_message_bus(ID, url)
        handled_here: list[str] = []

        async def python_replica(message: Message) -> None:
            handled_here.append(message.payload["parameters"]["key"])
            await replica.respond(message.correlation_id, {"status": "success", "result": "py"})

        replica.subscribe(f"plugin/{ID}/request", python_replica, queue=ID)
        await replica.transport.flush()
        keys = [f"REL-{n}" for n in range(40)]
        replies = await asyncio.gather(
            *(
                caller.request(
                    topic=f"plugin/{ID}/request",
                    payload={
                        "command": "handle_issue",
                        "parameters": {"key": key, "summary": f"Change {key}"},
                    },
                    timeout=60,
                )
                for key in keys
            )
        )
    by_node = [reply for reply in replies if reply["result"] != "py"]
    assert len(by_node) + len(handled_here) == len(keys)  # each answered once, by one
    assert by_node, "the node replica took no request"
    assert handled_here, "the Python replica took no request"
    book = json.loads((tmp_path / "output" / ID / "changelog.json").read_text())
    assert sorted(entry["key"] for entry in book["unreleased"]) == sorted(
        set(keys) - set(handled_here)
    )
    client = await nats.connect(url, allow_reconnect=False)
    try:
        consumers = [info.name for info in await client.jsm().consumers_info("JO_REQUESTS")]
    finally:
        await client.close()
    mine = [name for name in consumers if name.startswith(f"{ID}_")]
    assert mine == [consumer_name("JO_REQUESTS", f"plugin/{ID}/request", ID)]  # one, shared


async def test_told_to_bind_the_node_plugin_never_creates_the_consumer_and_says_so(
    secured: tuple[NatsServer, dict[str, str]], tmp_path: Path, fresh_buses: None
) -> None:
    """With ``?jetstream=bind`` the orchestrator's side owns the consumers; a plugin that
    finds none (for 5 s) stops, saying why, instead of serving without its durable queue."""
    _, urls = secured
    caller = get_message_bus("jira-orchestrator", urls["jira-orchestrator"])
    await caller.transport.flush()  # the streams, but no consumer for release-notes
    with node_plugin(bound(urls[ID]), tmp_path / "output") as plugin:
        code = await asyncio.to_thread(plugin.process.wait, READY)
    assert code == 1, plugin.said
    name = consumer_name("JO_REQUESTS", f"plugin/{ID}/request", ID)
    assert (
        f"error: {ID} could not start: the durable consumer {name} of JO_REQUESTS does not "
        "exist, and with ?jetstream=bind this plugin may not create it"
    ) in plugin.said


async def test_a_malformed_request_is_answered_at_once_and_dead_lettered(
    secured: tuple[NatsServer, dict[str, str]], tmp_path: Path, fresh_buses: None
) -> None:
    _, urls = secured
    watcher = get_message_bus("jira-orchestrator", urls["jira-orchestrator"])
    letters: list[Message] = []
    arrived = asyncio.Event()

    async def letter(message: Message) -> None:
        letters.append(message)
        if len(letters) == 3:
            arrived.set()

    watcher.subscribe(f"system/dead-letter/{ID}", letter)  # the sender is in the topic
    await orchestrator_side(watcher, urls["jira-orchestrator"])
    raw = await nats.connect(urls["jira-orchestrator"], allow_reconnect=False)
    try:
        with node_plugin(bound(urls[ID]), tmp_path / "output") as plugin:
            await plugin.wait_ready()
            subject = f"plugin.{ID}.request"
            sent = [
                {"topic": f"plugin/{ID}/request", "correlationId": "c-1", "priority": 42},
                {"topic": "plugin/fastapi-backend/request", "correlationId": "c-2"},
            ]
            answers = [
                json.loads((await raw.request(subject, json.dumps(body).encode(), 10)).data)
                for body in sent
            ]
            answers.append(json.loads((await raw.request(subject, b"\xff{not json", 10)).data))
            async with asyncio.timeout(READY):
                await arrived.wait()
    finally:
        await raw.close()
    assert [a["correlationId"] for a in answers] == ["c-1", "c-2", None]
    for reply in answers:
        assert reply["messageType"] == "response"
        assert reply["headers"]["status"] == "error"
        assert reply["payload"]["error"]["type"] == "InvalidMessage"
    first = answers[0]["payload"]["error"]["message"]
    assert "priority: expected an integer 1..10, got 42" in first
    assert answers[1]["payload"]["error"]["message"] == (
        f"topic: the envelope says plugin/fastapi-backend/request but it came on {subject}"
    )
    assert "not UTF-8 JSON" in answers[2]["payload"]["error"]["message"]
    for dead in letters:
        assert dead.source == ID
        assert dead.payload["reason"] == "invalid-message"
        assert dead.payload["message"] is None
        assert dead.payload["subscription"] == subject
        assert dead.payload["rawTruncated"] is False
    assert "\ufffd{not json" in {dead.payload["raw"] for dead in letters}  # invalid UTF-8 replaced


TOPICS = ["plugin/x/request", "plugin.x.request", "a//b", "a b", "", "x" * 513, "a/*", "é", "a:b@c"]
PATTERNS = [
    ("plugin/*/request", "plugin/x/request"),
    ("plugin/**", "plugin"),
    ("plugin/**", "plugin/a/b"),
    ("**", "a"),
    ("a/*", "a/b/c"),
    ("plugin.x.request", "plugin/x/request"),
    ("plugin/*", "state/x"),
]
QUEUES = [
    ("JO_REQUESTS", "plugin/release-notes/request", "release-notes"),
    ("JO_REQUESTS", "plugin/a.b/request", "a.b:c d"),
    ("X_REQUESTS", "plugin/*/request", "q" * 60),
]


def test_the_typescript_protocol_module_agrees_with_the_sdk() -> None:
    """Consumer names (one queue across languages), topic syntax and pattern matching, and
    the defaults of a minimal envelope: the TypeScript module and the SDK agree."""
    script = (
        f"import * as p from {json.dumps((ROOT / 'dist' / 'protocol.js').as_uri())};"
        "const [topics, patterns, queues] = JSON.parse(process.argv[1]);"
        "const topic = (t) => { try { return p.canonicalTopic(t); } catch { return null; } };"
        "console.log(JSON.stringify({"
        " topics: topics.map(topic),"
        " matches: patterns.map(([pattern, t]) => p.matches(pattern, t)),"
        " names: queues.map(([s, pattern, q]) => p.consumerName(s, pattern, q)),"
        ' decoded: p.decode(new TextEncoder().encode(\'{"topic": "plugin.x.request"}\')),'
        "}));"
    )
    launch()  # built, or a clear failure
    node = shutil.which("node")
    assert node is not None
    run = subprocess.run(
        [node, "--input-type=module", "-e", script, json.dumps([TOPICS, PATTERNS, QUEUES])],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = json.loads(run.stdout)

    def canonical(topic: str) -> str | None:
        try:
            return normalize_topic(topic)
        except InvalidTopic:
            return None

    assert found["topics"] == [canonical(topic) for topic in TOPICS]
    assert found["matches"] == [
        pattern_matches(normalize_pattern(p), normalize_topic(t)) for p, t in PATTERNS
    ]
    assert found["names"] == [consumer_name(*queue) for queue in QUEUES]
    decoded, expected = found["decoded"], Message.decode(b'{"topic": "plugin.x.request"}')
    assert decoded["topic"] == expected.topic == "plugin/x/request"
    for field in ("correlationId", "source", "destination", "messageType", "priority", "headers"):
        assert decoded[field] == expected.to_dict()[field], field
    assert decoded["payload"] is expected.payload is None
    assert decoded["metadata"] == expected.to_dict()["metadata"]


def test_the_plugin_s_own_unit_tests_pass() -> None:
    """Its changelog logic, tested in TypeScript with node's test runner (`npm test`)."""
    built = launch().cwd
    assert built is not None
    node = shutil.which("node")
    assert node is not None
    tests = sorted(str(path) for path in (built / "dist").glob("*.test.js"))
    assert tests, "no compiled test file in dist/"
    run = subprocess.run(
        [node, "--test", *tests], cwd=built, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "# fail 0" in run.stdout


@pytest.mark.parametrize(
    "url",
    [
        "nats://release-notes:p%40ss%3Aw0rd@127.0.0.1:4333?jetstream=bind&ack_wait=5",
        "nats://s3cr3t@h:4222",
        "nats://a:4222,nats://b?inbox_prefix=_INBOX.mine&max_deliver=3&durable=",
    ],
)
def test_the_node_plugin_connects_as_the_environment_up_gives_it_says(url: str) -> None:
    """From the split variables `up` sets, or from the URL alone: the same servers,
    credentials, inbox prefix (the SDK's rule) and options."""
    script = (
        f"import {{ settings }} from {json.dumps((ROOT / 'dist' / 'protocol.js').as_uri())};"
        "const env = JSON.parse(process.argv[1]);"
        "console.log(JSON.stringify([settings(env, 'release-notes'),"
        " settings({JIRA_ORCHESTRATOR_BUS_URL: env.JIRA_ORCHESTRATOR_BUS_URL}, 'release-notes')]));"
    )
    launch()
    node = shutil.which("node")
    assert node is not None
    env = bus_environment(url)
    run = subprocess.run(
        [node, "--input-type=module", "-e", script, json.dumps(env)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    split, whole = json.loads(run.stdout)
    for found in (split, whole):
        found.setdefault("inboxPrefix", "_INBOX")  # nats.js's own default
    assert split == whole
    assert split["servers"] == env["JIRA_ORCHESTRATOR_NATS_SERVERS"].split(",")
    assert split.get("user") == env.get("JIRA_ORCHESTRATOR_NATS_USER")
    assert split.get("pass") == env.get("JIRA_ORCHESTRATOR_NATS_PASSWORD")
    assert split.get("token") == env.get("JIRA_ORCHESTRATOR_NATS_TOKEN")
    assert split["inboxPrefix"] == env["JIRA_ORCHESTRATOR_NATS_INBOX_PREFIX"]
    options = parse_qs(urlsplit(url).query)
    assert split["bind"] == (options.get("jetstream") == ["bind"])
    assert split["ackWaitMs"] == float(options.get("ack_wait", ["30"])[0]) * 1000
    assert split["maxDeliver"] == int(options.get("max_deliver", ["5"])[0])
    assert split["durable"] is ("durable" not in options and "durable=" not in url)
