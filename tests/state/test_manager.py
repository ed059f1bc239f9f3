"""DistributedStateManager: the seed's local API, durability, watch, and the replication hook."""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jira_orchestrator.state as state_pkg
import jira_orchestrator.state.manager as manager_module
from jira_orchestrator._core.hlc import ClockDriftError, Timestamp
from jira_orchestrator.state import (
    DistributedStateManager,
    InvalidDelta,
    InvalidStateKey,
    InvalidStateValue,
    ORSet,
    StateChange,
    StateClockDrift,
    StateClosed,
    StateCorrupt,
    StateDelta,
    StateError,
    StateLocked,
    StateTypeMismatch,
)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


Factory = Callable[..., DistributedStateManager]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Factory]:
    opened: list[DistributedStateManager] = []

    def factory(name: str = "state.db", **kwargs: Any) -> DistributedStateManager:
        kwargs.setdefault("clock", Clock())
        manager = DistributedStateManager("your-plugin", path=tmp_path / name, **kwargs)
        opened.append(manager)
        return manager

    yield factory
    for manager in opened:
        manager.close()


def test_all_exports_exist() -> None:
    for name in state_pkg.__all__:
        assert getattr(state_pkg, name) is not None


def test_the_seed_local_state_example(make: Factory) -> None:
    sm = make()
    sm.set_register("current_config", {"apiUrl": "https://api.example.com", "timeout": 30000})
    assert sm.get_register("current_config") == {
        "apiUrl": "https://api.example.com",
        "timeout": 30000,
    }
    assert sm.increment_counter("requests_processed") == 1
    assert sm.increment_counter("requests_processed", 5) == 6
    assert sm.decrement_counter("requests_processed", 2) == 4
    assert sm.get_counter("requests_processed") == 4
    sm.add_to_set("active_tasks", "task_123")
    sm.add_to_set("active_tasks", "task_456")
    sm.remove_from_set("active_tasks", "task_123")
    assert sm.get_set("active_tasks") == ["task_456"]


def test_missing_keys_read_as_empty(make: Factory) -> None:
    sm = make()
    assert sm.get_register("nope") is None
    assert sm.get_register("nope", {"d": 1}) == {"d": 1}
    assert sm.get_counter("nope") == 0
    assert sm.get_set("nope") == []


def test_default_path_is_claude_plugin_state_db(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with DistributedStateManager("your-plugin") as sm:
        sm.increment_counter("n")
        assert sm.path == tmp_path / ".claude-plugin" / "state.db"
    assert (tmp_path / ".claude-plugin" / "state.db").exists()


def test_restart_restores_exactly(make: Factory) -> None:
    sm = make()
    sm.set_register("r", {"nested": [1, 2.5, None, True, "é"]})
    sm.increment_counter("c", 7)
    sm.decrement_counter("c", 3)
    for element in ["a", {"path": "/a", "method": "GET"}, [1]]:
        sm.add_to_set("s", element)
    sm.remove_from_set("s", "a")
    before, replica = sm.snapshot(), sm.replica_id
    sm.close()
    again = make()
    assert again.snapshot() == before
    assert again.replica_id == replica
    assert again.get_register("r") == {"nested": [1, 2.5, None, True, "é"]}
    assert again.get_counter("c") == 4
    assert again.get_set("s") == [[1], {"method": "GET", "path": "/a"}]


def test_a_register_set_after_restart_wins_even_if_the_wall_clock_went_back(make: Factory) -> None:
    clock = Clock(2_000_000.0)
    sm = make(clock=clock)
    sm.set_register("r", "before")
    sm.close()
    clock.now -= 3600
    again = make(clock=clock)
    again.set_register("r", "after")
    assert again.get_register("r") == "after"
    peer = make("peer.db", clock=Clock(2_000_000.0))  # a peer whose clock did not move
    peer.apply_remote(again.snapshot())
    assert peer.get_register("r") == "after"


def test_set_elements_have_canonical_identity(make: Factory) -> None:
    sm = make()
    sm.add_to_set("endpoints", {"path": "/api/users", "method": "GET"})
    sm.add_to_set("endpoints", {"method": "GET", "path": "/api/users"})
    assert sm.get_set("endpoints") == [{"method": "GET", "path": "/api/users"}]
    sm.remove_from_set("endpoints", {"method": "GET", "path": "/api/users"})
    assert sm.get_set("endpoints") == []


def test_one_kind_per_key(make: Factory) -> None:
    sm = make()
    sm.increment_counter("k")
    with pytest.raises(StateTypeMismatch, match="key 'k' holds a counter, not a register"):
        sm.set_register("k", 1)
    with pytest.raises(StateTypeMismatch, match="not a set"):
        sm.add_to_set("k", 1)
    with pytest.raises(StateTypeMismatch):
        sm.get_register("k")
    with pytest.raises(StateTypeMismatch):
        sm.get_set("k")
    sm.set_register("r", 1)
    with pytest.raises(StateTypeMismatch):
        sm.get_counter("r")
    with pytest.raises(StateTypeMismatch):
        sm.remove_from_set("r", 1)
    assert sm.get_counter("k") == 1


BAD_KEYS = [
    (None, "must be a str"),
    (5, "must be a str"),
    ("", "must not be empty"),
    ("x" * 257, "over the limit of 256"),
    ("a\x00", "NUL"),
]


@pytest.mark.parametrize(("key", "match"), BAD_KEYS)
def test_every_entry_point_rejects_bad_keys(make: Factory, key: Any, match: str) -> None:
    sm = make()
    calls: list[Callable[[], object]] = [
        lambda: sm.set_register(key, 1),
        lambda: sm.get_register(key),
        lambda: sm.increment_counter(key),
        lambda: sm.decrement_counter(key),
        lambda: sm.get_counter(key),
        lambda: sm.add_to_set(key, 1),
        lambda: sm.remove_from_set(key, 1),
        lambda: sm.get_set(key),
    ]
    for call in calls:
        with pytest.raises(InvalidStateKey, match=match):
            call()
    assert sm.snapshot() == {}


@pytest.mark.parametrize(
    "value", [(1, 2), {1: "a"}, float("nan"), {"s": {1}}, object(), b"x", "\ud800"]
)
def test_values_that_are_not_json_write_nothing(make: Factory, value: Any) -> None:
    seen: list[StateDelta] = []
    sm = make(on_delta=seen.append)
    with pytest.raises(InvalidStateValue):
        sm.set_register("r", value)
    with pytest.raises(InvalidStateValue):
        sm.add_to_set("s", value)
    with pytest.raises(InvalidStateValue):
        sm.remove_from_set("s", value)
    assert sm.snapshot() == {}
    assert seen == []


@pytest.mark.parametrize("n", [1.5, "2", None, True])
def test_counters_take_ints_only(make: Factory, n: Any) -> None:
    sm = make()
    with pytest.raises(InvalidStateValue, match="must be an int"):
        sm.increment_counter("c", n)
    with pytest.raises(InvalidStateValue, match="must be an int"):
        sm.decrement_counter("c", n)
    assert sm.snapshot() == {}


def test_value_size_limit(make: Factory) -> None:
    sm = make(max_value_bytes=100)
    sm.set_register("r", "x" * 98)
    with pytest.raises(InvalidStateValue, match="over the limit of 100"):
        sm.set_register("r", "x" * 99)
    with pytest.raises(InvalidStateValue, match="element is 102 bytes"):
        sm.add_to_set("s", "x" * 100)
    assert sm.get_register("r") == "x" * 98


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"plugin_id": ""}, "plugin_id"),
        ({"plugin_id": "a/b"}, "plugin_id"),
        ({"plugin_id": "has space"}, "plugin_id"),
        ({"plugin_id": None}, "plugin_id"),
        ({"plugin_id": "p", "max_key_bytes": 0}, "max_key_bytes"),
        ({"plugin_id": "p", "max_value_bytes": True}, "max_value_bytes"),
        ({"plugin_id": "p", "max_drift": 0}, "max_drift"),
        ({"plugin_id": "p", "lock_timeout": -1}, "timeout"),
    ],
)
def test_bad_constructor_arguments(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    plugin_id = kwargs.pop("plugin_id")
    with pytest.raises(ValueError, match=match):
        DistributedStateManager(plugin_id, path=tmp_path / "s.db", **kwargs)
    assert not (tmp_path / "s.db").exists() or match == "max_drift"


def test_a_bad_clock_argument_closes_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_drift"):
        DistributedStateManager("p", path=tmp_path / "s.db", max_drift=-1)
    DistributedStateManager("p", path=tmp_path / "s.db").close()  # not left locked


def test_two_managers_cannot_share_a_file(make: Factory) -> None:
    make()
    with pytest.raises(StateLocked):
        make(lock_timeout=0.01)


def test_a_row_that_is_not_a_crdt_is_corrupt(tmp_path: Path) -> None:
    from jira_orchestrator.state.store import StateStore

    store = StateStore(tmp_path / "s.db", plugin_id="p")
    store.put({"k": {"type": "pncounter", "p": {"r": -5}, "n": {}}})
    store.close()
    with pytest.raises(StateCorrupt, match=r"key 'k': pncounter\.p\.r"):
        DistributedStateManager("p", path=tmp_path / "s.db")
    StateStore(tmp_path / "s.db", plugin_id="p", timeout=0.01).close()  # not left locked


@pytest.mark.parametrize("keep", [0.001, 0.5, 0.999])
def test_a_truncated_file_is_corrupt(tmp_path: Path, keep: float) -> None:
    path = tmp_path / "s.db"
    with DistributedStateManager("p", path=path) as sm:
        for i in range(100):
            sm.set_register(f"k{i}", "x" * 300)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(StateCorrupt, match=str(path)):
        DistributedStateManager("p", path=path)


def test_a_failed_write_leaves_memory_and_disk_as_they_were(tmp_path: Path) -> None:
    from tests.state.test_store import _fail_writes_of

    path = tmp_path / "s.db"
    DistributedStateManager("p", path=path).close()
    _fail_writes_of(path, "boom")
    seen: list[StateDelta] = []
    with DistributedStateManager("p", path=path, on_delta=seen.append) as sm:
        with pytest.raises(StateError, match="injected failure"):
            sm.increment_counter("boom")
        remote = {
            "fine": {"type": "pncounter", "p": {"x": 1}, "n": {}},
            "boom": {"type": "pncounter", "p": {"x": 1}, "n": {}},
        }
        with pytest.raises(StateError, match="injected failure"):
            sm.apply_remote(remote)
        assert sm.snapshot() == {}
        assert seen == []
        sm.increment_counter("fine")
    with DistributedStateManager("p", path=path) as again:
        assert again.get_counter("fine") == 1
        assert again.get_counter("boom") == 0


def test_closed_manager_refuses_everything(make: Factory) -> None:
    sm = make()
    sm.close()
    sm.close()
    calls: list[Callable[[], object]] = [
        lambda: sm.set_register("k", 1),
        lambda: sm.get_register("k"),
        lambda: sm.increment_counter("k"),
        lambda: sm.get_counter("k"),
        lambda: sm.add_to_set("k", 1),
        lambda: sm.get_set("k"),
        sm.snapshot,
        lambda: sm.apply_remote({}),
    ]
    for call in calls:
        with pytest.raises(StateClosed, match="closed"):
            call()


# the replication hook


def test_each_local_mutation_hands_its_delta_to_on_delta(make: Factory) -> None:
    seen: list[StateDelta] = []
    sm = make(on_delta=seen.append)
    sm.increment_counter("c", 2)
    sm.add_to_set("s", "x")
    sm.set_register("r", "v")
    assert seen[0] == {"c": {"type": "pncounter", "p": {sm.replica_id: 2}, "n": {}}}
    assert list(seen[1]) == ["s"]
    assert seen[1]["s"]["type"] == "orset"
    assert seen[2]["r"]["value"] == "v"
    assert seen[2]["r"]["ts"].endswith(":" + sm.replica_id)
    sm.remove_from_set("s", "absent")
    sm.remove_from_set("never-used", "absent")
    sm.increment_counter("c", 0)
    assert len(seen) == 3  # no-ops write and send nothing
    assert "never-used" not in sm.snapshot()


def test_a_failing_hook_is_logged_and_the_mutation_stands(
    make: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(delta: StateDelta) -> None:
        raise ConnectionError("bus down")

    sm = make(on_delta=broken)
    with caplog.at_level(logging.ERROR):
        assert sm.increment_counter("c") == 1
    assert "on_delta hook failed" in caplog.text
    sm.close()
    assert make().get_counter("c") == 1


def test_deltas_and_snapshots_converge_replicas(make: Factory) -> None:
    a_out: list[StateDelta] = []
    a, b = make("a.db", on_delta=a_out.append), make("b.db")
    b_out: list[StateDelta] = []
    b.on_delta = b_out.append
    a.add_to_set("tasks", "t1")
    b.apply_remote(a_out[-1])
    b.remove_from_set("tasks", "t1")  # b saw t1: this remove wins over it ...
    a.add_to_set("tasks", "t1")  # ... but not over a's concurrent re-add
    a.increment_counter("n", 3)
    b.decrement_counter("n")
    for delta in a_out:
        b.apply_remote(delta)
    for delta in b_out:
        a.apply_remote(delta)
    assert a.snapshot() == b.snapshot()
    assert a.get_set("tasks") == ["t1"]
    assert a.get_counter("n") == b.get_counter("n") == 2
    c = make("c.db")
    assert c.apply_remote(a.snapshot()) == ["n", "tasks"]
    assert c.apply_remote(a.snapshot()) == []  # idempotent
    assert c.snapshot() == a.snapshot()


def test_apply_remote_does_not_echo_and_persists(make: Factory) -> None:
    seen: list[StateDelta] = []
    a, b = make("a.db"), make("b.db", on_delta=seen.append)
    a.set_register("r", [1, 2])
    b.apply_remote(a.snapshot())
    assert seen == []
    b.close()
    assert make("b.db").get_register("r") == [1, 2]


def test_a_skewed_clock_does_not_win_forever(make: Factory) -> None:
    wall = Clock()
    ahead = Clock(wall.now + 30)  # within max_drift: accepted, but the HLC catches up
    a, b = make("a.db", clock=wall), make("b.db", clock=ahead)
    b.set_register("r", "from the fast clock")
    a.apply_remote(b.snapshot())
    a.set_register("r", "written later")
    b.apply_remote(a.snapshot())
    assert a.get_register("r") == b.get_register("r") == "written later"


def test_a_timestamp_beyond_max_drift_is_rejected_whole(make: Factory) -> None:
    clock = Clock()
    sm = make(max_drift=10, clock=clock)
    now_ms = int(clock.now * 1000)
    far = Timestamp(now_ms + 11_000, 0, "skewed")
    delta: dict[str, Any] = {
        "c": {"type": "pncounter", "p": {"x": 5}, "n": {}},
        "r": {"type": "lww", "ts": str(far), "value": "future"},
    }
    with pytest.raises(StateClockDrift, match=r"11\.000s ahead") as info:
        sm.apply_remote(delta)
    assert isinstance(info.value, ClockDriftError)
    assert isinstance(info.value, InvalidDelta)
    assert info.value.remote == far
    assert sm.snapshot() == {}
    sm.set_register("r", "local")
    near = Timestamp(now_ms + 9_000, 0, "skewed")
    sm.apply_remote({"r": {"type": "lww", "ts": str(near), "value": "near"}})
    assert sm.get_register("r") == "near"
    sm.set_register("r", "local again")  # the clock moved past the accepted remote
    assert sm.get_register("r") == "local again"


@pytest.mark.parametrize(
    ("delta", "error", "match"),
    [
        ([], InvalidDelta, "must be a dict of key -> CRDT"),
        ({"k": 5}, InvalidDelta, "must be a dict"),
        ({"k": {"type": "nope"}}, InvalidDelta, "unknown CRDT type"),
        ({"": {"type": "pncounter", "p": {}, "n": {}}}, InvalidDelta, "delta key: .* empty"),
        ({5: {"type": "pncounter", "p": {}, "n": {}}}, InvalidDelta, "must be a str"),
        (
            {"counter": {"type": "orset", "entries": [], "context": {"vv": {}, "dots": []}}},
            StateTypeMismatch,
            "holds a counter",
        ),
    ],
)
def test_apply_remote_rejects_bad_deltas_whole(
    make: Factory, delta: Any, error: type[Exception], match: str
) -> None:
    sm = make()
    sm.increment_counter("counter")
    before = sm.snapshot()
    good = {"fresh": {"type": "pncounter", "p": {"x": 1}, "n": {}}}
    with pytest.raises(error, match=match):
        sm.apply_remote({**good, **delta} if isinstance(delta, dict) else delta)
    assert sm.snapshot() == before


# watch


async def test_watch_sees_local_and_remote_changes(make: Factory) -> None:
    a, b = make("a.db"), make("b.db")
    changes = b.watch("n")
    b.increment_counter("n")
    a.increment_counter("n", 10)
    b.apply_remote(a.snapshot())
    assert await anext(changes) == StateChange("n", 1, remote=False)
    assert await anext(changes) == StateChange("n", 11, remote=True)
    await changes.aclose()
    b.increment_counter("n")
    assert [c async for c in changes] == []


async def test_watch_skips_mutations_that_do_not_change_the_value(make: Factory) -> None:
    sm = make()
    changes = sm.watch("s")
    sm.remove_from_set("s", "ghost")
    sm.add_to_set("s", "x")
    sm.add_to_set("s", "x")
    sm.apply_remote(sm.snapshot())
    sm.close()
    assert [c.value async for c in changes] == [["x"]]


async def test_a_slow_watcher_gets_the_latest_value(make: Factory) -> None:
    sm = make()
    async with sm.watch("c", maxsize=2) as changes:
        for _ in range(10):
            sm.increment_counter("c")
        assert [(await anext(changes)).value, (await anext(changes)).value] == [9, 10]


async def test_close_ends_every_watch_and_other_keys_are_quiet(make: Factory) -> None:
    sm = make()
    first, second = sm.watch("a"), sm.watch("a")
    other = sm.watch("b")
    sm.set_register("a", 1)
    sm.close()
    assert [c.value async for c in first] == [1]
    assert [c.value async for c in second] == [1]
    assert [c async for c in other] == []
    with pytest.raises(StateClosed):
        sm.watch("a")


async def test_mutations_from_another_thread_reach_the_watcher(make: Factory) -> None:
    sm = make()
    changes = sm.watch("c")
    worker = threading.Thread(target=lambda: [sm.increment_counter("c") for _ in range(5)])
    worker.start()
    await asyncio.to_thread(worker.join)
    values = [(await anext(changes)).value for _ in range(5)]
    assert values == [1, 2, 3, 4, 5]


async def test_watch_rejects_bad_arguments(make: Factory) -> None:
    sm = make()
    with pytest.raises(InvalidStateKey):
        sm.watch("")
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="maxsize"):
            sm.watch("k", maxsize=bad)  # type: ignore[arg-type]


def test_watch_needs_a_running_loop(make: Factory) -> None:
    with pytest.raises(RuntimeError, match="inside a running event loop"):
        make().watch("k")


def test_concurrent_threads_lose_no_increment(make: Factory) -> None:
    sm = make()
    threads = [
        threading.Thread(target=lambda: [sm.increment_counter("c") for _ in range(25)])
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sm.get_counter("c") == 100
    sm.close()
    assert make().get_counter("c") == 100


manager_ops = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.sampled_from(["set", "inc", "dec", "add", "remove"]),
        st.sampled_from(["x", "y", {"a": 1, "b": [2]}]),
    ),
    max_size=25,
)


@settings(max_examples=20, deadline=None)
@given(manager_ops, st.randoms(use_true_random=False))
def test_managers_converge_despite_loss_duplicates_and_reordering(
    ops: list[tuple[int, str, Any]], rnd: random.Random
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clock = Clock()
        outboxes: list[list[StateDelta]] = [[], [], []]
        managers = [
            DistributedStateManager(
                "p", path=Path(tmp) / f"{i}.db", clock=clock, on_delta=outboxes[i].append
            )
            for i in range(3)
        ]
        try:
            total, late = 0, []
            for replica, op, arg in ops:
                sm = managers[replica]
                clock.now += 0.001
                if op == "set":
                    sm.set_register("reg", arg)
                elif op in ("inc", "dec"):
                    step = 2 if op == "inc" else -1
                    total += step
                    sm.increment_counter("cnt", step)
                elif op == "add":
                    sm.add_to_set("set", arg)
                else:
                    sm.remove_from_set("set", arg)
                if not outboxes[replica]:  # a no-op (removing an absent element) sends nothing
                    continue
                delta = outboxes[replica].pop()
                for peer in set(range(3)) - {replica}:
                    fate = rnd.choice(["now", "twice", "later", "drop"])
                    if fate in ("now", "twice"):
                        for _ in range(1 + (fate == "twice")):
                            managers[peer].apply_remote(delta)
                    elif fate == "later":
                        late.append((peer, delta))
            rnd.shuffle(late)
            for peer, delta in late:
                managers[peer].apply_remote(delta)
            for _ in range(2):
                for src in managers:
                    for dst in managers:
                        dst.apply_remote(src.snapshot())
            first = managers[0].snapshot()
            assert all(m.snapshot() == first for m in managers)
            assert managers[0].get_counter("cnt") == total
            managers[1].close()
            managers[1] = DistributedStateManager("p", path=Path(tmp) / "1.db", clock=clock)
            assert managers[1].snapshot() == first
        finally:
            for m in managers:
                m.close()


def test_an_empty_state_file_is_damaged_not_new(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with DistributedStateManager("p", path=path) as sm:
        sm.increment_counter("c")
    path.write_bytes(b"")
    with pytest.raises(StateCorrupt, match=str(path)):
        DistributedStateManager("p", path=path)


@pytest.mark.parametrize(
    ("crdt", "match"),
    [
        ({"type": "lww", "ts": "1000:0:peer", "value": "x" * 101}, "value is 103 bytes"),
        (
            {
                "type": "orset",
                "entries": [["x" * 101, [["peer", 1]]]],
                "context": {"vv": {"peer": 1}, "dots": []},
            },
            "element is 103 bytes",
        ),
        ({"type": "pncounter", "p": {"peer": 10**5000}, "n": {}}, "too large"),
        ({"type": "pncounter", "p": {}, "n": {"peer": 10**120}}, "121 digits, over the limit"),
    ],
)
def test_remote_deltas_get_the_limits_local_writes_get(
    make: Factory, crdt: dict[str, Any], match: str
) -> None:
    sm = make(max_value_bytes=100)
    sm.set_register("kept", "as it was")
    before = sm.snapshot()
    fine = {"fine": {"type": "pncounter", "p": {"peer": 1}, "n": {}}}
    with pytest.raises(InvalidDelta, match=rf"'big'.*{match}"):
        sm.apply_remote({**fine, "big": crdt})
    assert sm.snapshot() == before  # all or nothing
    sm.close()
    assert make().snapshot() == before  # and nothing on disk


def test_a_register_holding_an_int_json_cannot_write_is_an_invalid_value(make: Factory) -> None:
    sm = make()
    with pytest.raises(InvalidStateValue, match="value at \\$ is an int too large"):
        sm.set_register("r", 10**5000)
    with pytest.raises(InvalidStateValue, match="element at \\$\\[0\\] is an int too large"):
        sm.add_to_set("s", [10**5000])
    assert sm.snapshot() == {}


# the cost of a set mutation


class SqlWrites:
    """Counts the bytes of the writing statements SQLite runs (bound values included)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bytes = 0
        self.rows_rewritten = 0
        real = sqlite3.connect

        def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            connection = real(*args, **kwargs)
            connection.set_trace_callback(self._seen)
            return connection

        monkeypatch.setattr(sqlite3, "connect", connect)

    def _seen(self, statement: str) -> None:
        if statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
            self.bytes += len(statement.encode("utf-8"))
        if statement.startswith("INSERT INTO state "):
            self.rows_rewritten += 1


def _a_set_of(size: int) -> dict[str, Any]:
    existing = ORSet()
    for i in range(size):
        existing.add(f"existing_task_{i}", "elsewhere")
    return existing.to_dict()


def test_the_work_of_an_add_does_not_grow_with_the_set(
    make: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = SqlWrites(monkeypatch)
    sm = make()
    sm.apply_remote({"small": _a_set_of(100), "large": _a_set_of(20_000)})

    def bytes_per_add(key: str, adds: int = 100) -> float:
        before = writes.bytes
        for i in range(adds):
            sm.add_to_set(key, f"new_task_{i}")
        return (writes.bytes - before) / adds

    small, large = bytes_per_add("small"), bytes_per_add("large")
    assert small < 1_000  # the delta: one element and its tag, not the set
    assert large < 1.5 * small  # the same work at 20,000 elements as at 100
    assert len(sm.get_set("large")) == 20_100


def test_set_rewrites_are_amortised_over_the_adds(
    make: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = SqlWrites(monkeypatch)
    monkeypatch.setattr(manager_module, "_COMPACT_FLOOR_BYTES", 1024)  # fewer adds to see it
    sm = make()
    sm.apply_remote({"s": _a_set_of(200)})
    sm.add_to_set("s", "first")
    before = writes.bytes
    sm.add_to_set("s", "second")
    one_delta = writes.bytes - before
    before, rewrites = writes.bytes, writes.rows_rewritten
    for i in range(500):  # several times the set's size in deltas: rewritten a few times
        sm.add_to_set("s", f"t{i}")
    assert writes.rows_rewritten - rewrites >= 2  # the deltas do not pile up for ever
    assert (writes.bytes - before) / 500 < 4 * one_delta
    expected = sm.get_set("s")
    sm.close()
    reopened = make()
    assert reopened.get_set("s") == expected


def test_a_set_restores_exactly_from_its_row_and_deltas(make: Factory) -> None:
    sm = make()
    for i in range(50):
        sm.add_to_set("s", f"e{i:02}")
    for i in range(0, 50, 3):
        sm.remove_from_set("s", f"e{i:02}")
    sm.add_to_set("s", "e03")  # added again after its remove
    snapshot = sm.snapshot()
    sm.close()
    again = make()
    assert again.snapshot() == snapshot
    kept = sorted({*range(50)} - set(range(0, 50, 3)) | {3})
    assert again.get_set("s") == [f"e{i:02}" for i in kept]
    again.add_to_set("s", "after")  # the replica's tags go on from where they were
    assert again.snapshot()["s"]["context"]["vv"] == {again.replica_id: 52}


async def test_watchers_see_set_changes_made_in_place(make: Factory) -> None:
    sm = make()
    sm.add_to_set("s", "a")
    changes = sm.watch("s")
    sm.add_to_set("s", "b")
    sm.add_to_set("s", "b")  # no change of value: not reported
    sm.remove_from_set("s", "a")
    assert (await anext(changes)).value == ["a", "b"]
    assert (await anext(changes)).value == ["b"]
    await changes.aclose()


def test_a_delta_of_another_kind_than_its_row_is_corrupt(tmp_path: Path) -> None:
    from jira_orchestrator.state.store import StateStore

    store = StateStore(tmp_path / "s.db", plugin_id="p")
    store.put({"k": {"type": "pncounter", "p": {"r": 1}, "n": {}}})
    store.append({"k": {"type": "orset", "entries": [], "context": {"vv": {}, "dots": []}}})
    store.close()
    with pytest.raises(StateCorrupt, match=r"a delta of key 'k'"):
        DistributedStateManager("p", path=tmp_path / "s.db")
