"""JetStream durability: redelivery, dead letters, duplicates, restarts, crashed replicas."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import nats
import pytest

from jira_orchestrator import RemoteError, RequestTimeout, TransportError
from jira_orchestrator.messagebus import Message, MessageType, get_message_bus
from jira_orchestrator.transports.nats import NatsTransport
from tests.nats._server import NatsServer

WAIT = 20.0
ROOT = Path(__file__).resolve().parents[2]


async def until(condition: Any) -> None:
    async with asyncio.timeout(WAIT):
        await polled(condition)


async def polled(condition: Any) -> None:
    """Wait until ``condition()`` holds; bounded by the caller (or pytest's timeout)."""
    while not condition():  # noqa: ASYNC110 - another connection's state, no event to await
        await asyncio.sleep(0.005)


def request(topic: str, payload: Any) -> Message:
    return Message(
        topic=topic,
        message_type=MessageType.REQUEST,
        correlation_id=f"c-{payload}",
        source="caller",
        payload=payload,
    )


def response(to: Message, payload: Any) -> Message:
    return Message(
        topic="plugin/worker/response",
        message_type=MessageType.RESPONSE,
        correlation_id=to.correlation_id,
        payload=payload,
    )


async def test_always_failing_handler_ends_in_the_dead_letter_stream_after_max_deliveries(
    nats_server: NatsServer,
) -> None:
    url = f"{nats_server.url}?retry_delay=0"
    worker, caller, auditor = (
        get_message_bus("always-fails", url),
        get_message_bus("caller", url),
        get_message_bus("auditor", url),
    )
    attempts: list[int] = []

    def explode(message: Message) -> None:
        attempts.append(1)
        raise ValueError("database unreachable")

    letters: list[Message] = []
    worker.subscribe("plugin/always-fails/request", explode, queue="always-fails")
    auditor.subscribe("system/dead-letter/*", letters.append)
    with pytest.raises(RemoteError) as caught:
        await caller.request(topic="plugin/always-fails/request", payload={"x": 1}, timeout=WAIT)
    assert caught.value.error_type == "ValueError"
    assert len(attempts) == 5
    await until(lambda: letters)
    (letter,) = [
        m for m in letters if m.payload["message"]["topic"] == "plugin/always-fails/request"
    ]
    assert letter.payload["reason"] == "handler-error"
    assert letter.payload["error"] == {"type": "ValueError", "message": "database unreachable"}
    assert letter.payload["deliveries"] == 5
    transport = worker.transport
    assert isinstance(transport, NatsTransport)
    assert transport.stats.retried == 4
    assert transport.stats.suppressed_dead_letters == 4
    # and it is in the stream, for whoever reads dead letters later
    raw = await nats.connect(nats_server.url)
    try:
        stored = await raw.jsm().get_last_msg(
            "JO_DEAD_LETTER", "_jo.durable.system.dead-letter.always-fails"
        )
    finally:
        await raw.close()
    assert stored.data is not None
    assert Message.decode(stored.data) == letter


async def test_a_request_never_answered_is_dead_lettered_after_its_last_delivery(
    nats_server: NatsServer,
) -> None:
    url = f"{nats_server.url}?ack_wait=0.5&max_deliver=2"
    worker, caller = get_message_bus("mute", url), get_message_bus("caller", url)
    auditor = get_message_bus("auditor", url)
    deliveries: list[Message] = []
    letters: list[Message] = []
    worker.subscribe("plugin/mute/request", deliveries.append, queue="mute")  # never responds
    auditor.subscribe("system/dead-letter/*", letters.append)
    with pytest.raises(RequestTimeout):
        await caller.request(topic="plugin/mute/request", payload="hello?", timeout=0.3)
    await until(
        lambda: any(m.payload["message"]["topic"] == "plugin/mute/request" for m in letters)
    )
    (letter,) = [m for m in letters if m.payload["message"]["topic"] == "plugin/mute/request"]
    # JetStream redelivers it once the caller stopped waiting (0.3 s < ack_wait): past its
    # deadline, so the bus dead-letters it instead of handling it a second time.
    assert letter.payload["reason"] == "expired"
    assert letter.payload["subscriber"] == "mute"
    assert [m.payload for m in deliveries] == ["hello?"]


async def test_a_duplicate_publish_is_stored_and_handled_once(nats_server: NatsServer) -> None:
    worker, sender = (
        get_message_bus("dedup", nats_server.url),
        get_message_bus("s", nats_server.url),
    )
    got: list[Message] = []
    worker.subscribe("plugin/dedup/request", got.append, queue="dedup")
    once = Message(topic="plugin/dedup/request", payload="once")
    await sender.publish(once)
    await sender.publish(once)  # same messageId: JetStream drops it
    await sender.publish(topic="plugin/dedup/request", payload="sentinel")
    await until(lambda: len(got) >= 2)
    await sender.publish(topic="plugin/dedup/request", payload="sentinel-2")
    await until(lambda: len(got) >= 3)
    assert [m.payload for m in got] == ["once", "sentinel", "sentinel-2"]


async def test_durable_requests_survive_a_server_restart(private_server: NatsServer) -> None:
    # Waits on events only: pytest's timeout is the one bound on this test.
    url = f"{private_server.url}?reconnect_wait=0.05"
    worker = NatsTransport(f"{url}&name=worker")
    caller = NatsTransport(f"{url}&name=caller")
    successor = NatsTransport(f"{url}&name=successor")
    gate, seen = asyncio.Event(), asyncio.Event()
    handled: list[Any] = []

    async def answer(message: Message, reply: Any) -> None:
        seen.set()
        await gate.wait()
        handled.append(message.payload)
        await reply(response(message, message.payload * 10))

    def deliver(message: Message, reply: Any) -> None:
        # like the bus: queue the message, handle it on a task of its own
        asyncio.get_running_loop().create_task(answer(message, reply))

    later: list[Any] = []
    all_five = asyncio.Event()

    def take(message: Message, reply: Any) -> None:
        later.append(message.payload)
        if len(later) == 5:
            all_five.set()

    try:
        worker.subscribe("plugin/worker/request", deliver, queue="worker")
        await worker.flush()
        calls = [
            asyncio.ensure_future(caller.request(request("plugin/worker/request", n), timeout=3600))
            for n in range(10)
        ]
        await polled(lambda: len(worker._attempts) == 10)
        await seen.wait()
        private_server.restart()
        await polled(lambda: worker.stats.reconnects and caller.stats.reconnects)
        gate.set()
        replies = await asyncio.gather(*calls)
        assert [r.payload for r in replies] == [n * 10 for n in range(10)]

        # Stored while no member of the queue is connected, handled by the next one to come.
        await worker.close()
        for n in range(5):
            await caller.publish(Message(topic="plugin/worker/request", payload=100 + n))
        private_server.restart()
        await polled(lambda: caller.stats.reconnects >= 2)
        successor.subscribe("plugin/worker/request", take, queue="worker")
        await all_five.wait()
        assert sorted(later) == [100, 101, 102, 103, 104]
    finally:
        for transport in (worker, successor, caller):
            await transport.close()


async def test_a_message_stored_as_the_last_member_leaves_goes_to_the_next_at_once(
    nats_server: NatsServer,
) -> None:
    # JetStream learns that a push consumer's last member left a moment after it has
    # unsubscribed; a message stored in that moment went to the member that had left, and
    # waited ack_wait (an hour here) before the next member got it. A member that leaves
    # now waits until the server has seen it go, so what comes after is kept for the next.
    url = f"{nats_server.url}?ack_wait=3600&name=member"
    sender = NatsTransport(f"{nats_server.url}?name=sender")
    raw = await nats.connect(nats_server.url)
    got: list[Any] = []
    arrived = asyncio.Event()

    def take(message: Message, reply: Any) -> None:
        got.append(message.payload)
        arrived.set()

    try:
        for n in range(11):
            member = NatsTransport(url)
            member.subscribe("plugin/leaving/request", take, queue="leaving")
            await member.flush()
            if n:  # the message stored after the last member left, for this one
                async with asyncio.timeout(WAIT):
                    await arrived.wait()
                arrived.clear()
            await member.close()
            if n == 10:
                break
            (consumer,) = [
                c
                for c in await raw.jsm().consumers_info("JO_REQUESTS")
                if c.config.deliver_group == "leaving"
            ]
            assert not consumer.push_bound, "close() returned before JetStream saw it leave"
            await sender.publish(Message(topic="plugin/leaving/request", payload=n))
        assert got == list(range(10))
    finally:
        await sender.close()
        await raw.close()


async def test_killing_one_of_two_replicas_mid_run_loses_no_request(
    nats_server: NatsServer,
) -> None:
    plugin = "crash-worker"
    url = f"{nats_server.url}?ack_wait=1&name=replica"
    # The first replica answers 200 requests, then holds the ones it gets and says so: it
    # is killed then, with requests certainly under way (killing it after some number of
    # answers could find it idle on a busy machine).
    replicas = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.nats._replica",
            url,
            plugin,
            *hold,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        for hold in (["200"], [])
    ]
    killer: asyncio.Task[None] | None = None
    try:
        for replica in replicas:
            assert replica.stdout is not None
            async with asyncio.timeout(WAIT):
                assert (await replica.stdout.readline()).strip() == b"ready"

        async def kill_when_holding(replica: asyncio.subprocess.Process) -> None:
            assert replica.stdout is not None
            assert (await replica.stdout.readline()).strip() == b"holding"
            replica.send_signal(signal.SIGKILL)

        killer = asyncio.create_task(kill_when_holding(replicas[0]))
        caller = get_message_bus("caller", f"{nats_server.url}?ack_wait=1")
        auditor = get_message_bus("auditor", f"{nats_server.url}?ack_wait=1")
        letters: list[Message] = []
        auditor.subscribe(
            "system/dead-letter/*",
            lambda m: (
                letters.append(m)
                if m.payload["message"]["topic"] == f"plugin/{plugin}/request"
                else None
            ),
        )
        await auditor.transport.flush()  # type: ignore[attr-defined]
        outcomes: dict[str, int] = {"completed": 0, "timeout": 0, "remote-error": 0}
        pids: set[int] = set()
        redelivered = 0
        limit = asyncio.Semaphore(64)
        total = 2000

        async def one(n: int) -> None:
            nonlocal redelivered
            async with limit:
                try:
                    result = await caller.request(
                        topic=f"plugin/{plugin}/request", payload=n, timeout=WAIT
                    )
                except RequestTimeout:
                    outcomes["timeout"] += 1
                except RemoteError:
                    outcomes["remote-error"] += 1
                else:
                    assert result["n"] == n
                    pids.add(result["pid"])
                    redelivered += result["retry"] > 0
                    outcomes["completed"] += 1

        await asyncio.gather(*(one(n) for n in range(total)))
        async with asyncio.timeout(WAIT):
            await killer
        assert await replicas[0].wait() == -signal.SIGKILL
        assert pids == {replica.pid for replica in replicas}
        # every request completed or was dead-lettered; none lost
        assert outcomes["completed"] + len(letters) == total, (outcomes, len(letters))
        assert outcomes["timeout"] == 0, outcomes
        # and the kill did catch requests in flight: they came back redelivered
        assert redelivered, "the kill caught no request in flight"
    finally:
        if killer is not None:
            killer.cancel()
        for replica in replicas:
            if replica.returncode is None:
                replica.send_signal(signal.SIGKILL)
                await replica.wait()


async def test_durable_messages_waiting_in_a_replica_are_handled_by_priority(
    nats_server: NatsServer,
) -> None:
    worker, sender = (
        get_message_bus("ranked", nats_server.url),
        get_message_bus("s", nats_server.url),
    )
    gate, busy, done = asyncio.Event(), asyncio.Event(), []

    async def handler(message: Message) -> None:
        if message.payload == "first":
            busy.set()
            await gate.wait()
        done.append(message.payload)

    subscription = worker.subscribe("plugin/ranked/request", handler, queue="ranked")
    await sender.publish(topic="plugin/ranked/request", payload="first")
    async with asyncio.timeout(WAIT):
        await busy.wait()
    for payload, priority in [("low", 1), ("urgent", 10), ("normal", 5)]:
        await sender.publish(topic="plugin/ranked/request", payload=payload, priority=priority)
    await until(lambda: subscription.pending == 3)  # JetStream delivered them in stream order
    gate.set()
    await until(lambda: len(done) == 4)
    assert done == ["first", "urgent", "normal", "low"]


async def test_a_handler_slower_than_ack_wait_is_not_run_twice(nats_server: NatsServer) -> None:
    url = f"{nats_server.url}?ack_wait=0.2"
    worker, caller = get_message_bus("slowpoke", url), get_message_bus("caller", url)
    runs: list[Any] = []

    async def slow(message: Message) -> None:
        runs.append(message.payload)
        await asyncio.sleep(1.0)  # the handler's own work, five times ack_wait
        await worker.respond(message.correlation_id or "", "done")

    worker.subscribe("plugin/slowpoke/request", slow, queue="slowpoke")
    assert await caller.request(topic="plugin/slowpoke/request", payload=1, timeout=WAIT) == "done"
    assert runs == [1]


async def test_a_queue_subscription_is_set_up_after_jetstream_was_briefly_unavailable(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Right after a server (re)start JetStream can answer 503 for a moment; a subscription
    # set up then must not be dropped: the plugin would never hear its requests again.
    worker = NatsTransport(f"{nats_server.url}?name=worker")
    caller = NatsTransport(f"{nats_server.url}?name=caller")
    await worker.flush()
    assert worker._jsm is not None
    real = worker._jsm.add_consumer
    refusals = [nats.js.errors.ServiceUnavailableError(), nats.errors.TimeoutError()]

    async def add_consumer(*args: Any, **kwargs: Any) -> Any:
        if refusals:
            raise refusals.pop(0)
        return await real(*args, **kwargs)

    worker._jsm.add_consumer = add_consumer  # type: ignore[method-assign]
    got: list[Any] = []
    worker.subscribe("plugin/worker/request", lambda m, r: got.append(m.payload), queue="worker")
    try:
        await worker.flush()  # raised the 503 before: the subscription was dropped
        await caller.publish(Message(topic="plugin/worker/request", payload=7))
        await until(lambda: got == [7])
        assert worker.stats.setup_retries == 2
        assert "retrying" in caplog.text
    finally:
        await worker.close()
        await caller.close()


async def test_a_subscription_jetstream_keeps_refusing_is_dropped_and_reported(
    nats_server: NatsServer,
) -> None:
    worker = NatsTransport(f"{nats_server.url}?name=worker&connect_timeout=0.3")
    await worker.flush()
    assert worker._jsm is not None

    async def add_consumer(*args: Any, **kwargs: Any) -> Any:
        raise nats.js.errors.ServiceUnavailableError()

    worker._jsm.add_consumer = add_consumer  # type: ignore[method-assign]
    worker.subscribe("plugin/worker/request", lambda m, r: None, queue="worker")
    try:
        with pytest.raises(TransportError, match="plugin/worker/request"):
            await worker.flush()
        assert worker.stats.setup_retries >= 1
        await worker.flush()  # reported once; the transport keeps serving
    finally:
        await worker.close()


async def test_a_last_delivery_reaching_a_leaving_member_is_dead_lettered_not_dropped(
    nats_server: NatsServer,
) -> None:
    # A leaving member hands what still reaches it back to JetStream; after the last
    # delivery JetStream never delivers again, so that one is dead-lettered instead.
    url = f"{nats_server.url}?max_deliver=1&name=leaving"
    member = NatsTransport(url)
    caller = NatsTransport(f"{nats_server.url}?name=caller")
    auditor = get_message_bus("auditor", nats_server.url)
    letters: list[Message] = []
    lettered = asyncio.Event()

    def audit(message: Message) -> None:
        if message.payload["message"]["topic"] == "plugin/last-one/request":
            letters.append(message)
            lettered.set()

    auditor.subscribe("system/dead-letter/*", audit)
    handled: list[Any] = []
    try:
        subscription = member.subscribe(
            "plugin/last-one/request", lambda m, r: handled.append(m), queue="last-one"
        )
        await member.flush()
        await auditor.transport.flush()  # type: ignore[attr-defined]
        subscription.closed = True  # leaving: its wires are not torn down yet
        await caller.publish(Message(topic="plugin/last-one/request", payload="late"))
        async with asyncio.timeout(WAIT):
            await lettered.wait()
        (letter,) = letters
        assert letter.payload["reason"] == "max-deliveries"
        assert letter.payload["message"]["payload"] == "late"
        assert handled == []
    finally:
        await member.close()
        await caller.close()
