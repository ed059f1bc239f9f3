"""SQLite store: durability settings, restart, single owner, and every kind of bad file."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from jira_orchestrator._core.errors import StateAccessDenied, StateError
from jira_orchestrator.state.errors import (
    InvalidStateKey,
    InvalidStateValue,
    StateClosed,
    StateCorrupt,
    StateLocked,
)
from jira_orchestrator.state.store import StateStore, validate_key

ROW = {"type": "pncounter", "p": {"r": 1}, "n": {}}


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = StateStore(tmp_path / "deep" / "state.db", plugin_id="p", timeout=0.05)
    yield s
    s.close()


def test_rows_survive_a_reopen_with_the_same_replica_id(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = StateStore(path, plugin_id="p")
    first.put({"a": ROW, "b": {"x": [1, "é", None]}})
    first.put({"a": {"changed": True}})
    replica = first.replica_id
    first.close()
    second = StateStore(str(path), plugin_id="p")
    assert second.load() == {"a": {"changed": True}, "b": {"x": [1, "é", None]}}
    assert second.replica_id == replica
    second.close()
    assert StateStore(tmp_path / "other.db", plugin_id="p").replica_id != replica


def test_the_file_is_in_wal_mode(store: StateStore) -> None:
    store.put({"a": ROW})
    header = store.path.read_bytes()[:20]
    assert header[:16] == b"SQLite format 3\x00"
    assert header[18:20] == b"\x02\x02"  # write/read version 2 means WAL


def test_a_second_opener_gets_state_locked(store: StateStore) -> None:
    with pytest.raises(StateLocked, match="another process running this plugin"):
        StateStore(store.path, plugin_id="p", timeout=0.01)
    store.put({"still": ROW})  # the owner is unaffected
    assert "still" in store.load()


def test_a_database_locked_by_a_foreign_connection(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateStore(path, plugin_id="p").close()
    foreign = sqlite3.connect(path, isolation_level=None)
    foreign.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StateLocked, match=str(path)):
            StateStore(path, plugin_id="p", timeout=0.01)
    finally:
        foreign.execute("ROLLBACK")
        foreign.close()
    StateStore(path, plugin_id="p").close()


def test_garbage_file_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not sqlite" * 500)
    with pytest.raises(StateCorrupt, match="damaged or not SQLite"):
        StateStore(path, plugin_id="p")


def test_damaged_pages_are_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    s = StateStore(path, plugin_id="p")
    s.put({f"key{i}": {"blob": "x" * 500} for i in range(100)})
    s.close()
    data = bytearray(path.read_bytes())
    data[4096:] = b"\xff" * (len(data) - 4096)
    path.write_bytes(bytes(data))
    with pytest.raises(StateCorrupt):  # noqa: PT012 - either open or load may notice
        reopened = StateStore(path, plugin_id="p")
        try:
            reopened.load()
        finally:
            reopened.close()


def test_another_sqlite_database_is_not_ours(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE users (id INTEGER)")
    other.commit()
    other.close()
    with pytest.raises(StateCorrupt, match="not a state database"):
        StateStore(path, plugin_id="p")


def test_unknown_format_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateStore(path, plugin_id="p").close()
    raw = sqlite3.connect(path)
    raw.execute("UPDATE meta SET value = 'v99' WHERE name = 'format'")
    raw.commit()
    raw.close()
    with pytest.raises(StateCorrupt, match="unknown state format 'v99'"):
        StateStore(path, plugin_id="p")


@pytest.mark.parametrize("data", ["not json", "[1, 2]", "null"])
def test_rows_that_are_not_json_objects_are_corrupt(tmp_path: Path, data: str) -> None:
    path = tmp_path / "state.db"
    StateStore(path, plugin_id="p").close()
    raw = sqlite3.connect(path)
    raw.execute("INSERT INTO state VALUES ('bad', ?)", (data,))
    raw.commit()
    raw.close()
    s = StateStore(path, plugin_id="p")
    with pytest.raises(StateCorrupt, match="row 'bad' is not a JSON object"):
        s.load()
    s.close()


def test_another_plugins_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateStore(path, plugin_id="backend").close()
    with pytest.raises(StateAccessDenied, match="holds the state of plugin 'backend', not 'x'"):
        StateStore(path, plugin_id="x")


def test_a_directory_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StateError, match=str(tmp_path)):
        StateStore(tmp_path, plugin_id="p")


def test_unwritable_place_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateError, match="cannot open state database"):
        StateStore(blocker / "state.db", plugin_id="p")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"path": 5, "plugin_id": "p"}, TypeError),
        ({"path": "x.db", "plugin_id": ""}, ValueError),
        ({"path": "x.db", "plugin_id": None}, ValueError),
        ({"path": "x.db", "plugin_id": "p", "timeout": "5"}, ValueError),
        ({"path": "x.db", "plugin_id": "p", "timeout": -1}, ValueError),
        ({"path": "x.db", "plugin_id": "p", "timeout": float("nan")}, ValueError),
        ({"path": "x.db", "plugin_id": "p", "max_key_bytes": 0}, ValueError),
    ],
)
def test_bad_constructor_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error):
        StateStore(**kwargs)
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize(
    ("rows", "error", "match"),
    [
        ({"": ROW}, InvalidStateKey, "must not be empty"),
        ({5: ROW}, InvalidStateKey, "must be a str"),
        ({"k" * 257: ROW}, InvalidStateKey, "257 bytes, over the limit of 256"),
        ({"a\x00b": ROW}, InvalidStateKey, "NUL"),
        ({"\ud800": ROW}, InvalidStateKey, "not valid Unicode"),
        ({"k": [1]}, InvalidStateValue, "must be a dict"),
        ({"k": {"v": float("nan")}}, InvalidStateValue, "not JSON"),
        ({"k": {"v": object()}}, InvalidStateValue, "not JSON"),
        ({"k": {"v": "\udc00"}}, InvalidStateValue, "not JSON"),
    ],
)
def test_bad_rows_write_nothing(
    store: StateStore, rows: Any, error: type[Exception], match: str
) -> None:
    store.put({"good": ROW})
    with pytest.raises(error, match=match):
        store.put({"also-good": ROW, **rows})
    assert store.load() == {"good": ROW}


def test_put_rejects_a_non_mapping(store: StateStore) -> None:
    with pytest.raises(TypeError, match="mapping"):
        store.put([("k", ROW)])  # type: ignore[arg-type]
    store.put({})
    assert store.load() == {}


def test_closed_store(store: StateStore) -> None:
    store.close()
    store.close()
    with pytest.raises(StateClosed, match="closed"):
        store.put({"k": ROW})
    with pytest.raises(StateClosed):
        store.load()


def test_validate_key_limits() -> None:
    assert validate_key("é" * 128) == "é" * 128  # 256 bytes
    with pytest.raises(InvalidStateKey, match="257 bytes"):
        validate_key("é" * 128 + "x")
    with pytest.raises(InvalidStateKey, match="over the limit of 4"):
        validate_key("abcde", 4)


def _fail_writes_of(path: Path, key: str) -> None:
    """Make SQLite itself fail a write, halfway through a transaction."""
    raw = sqlite3.connect(path)
    raw.execute(
        f"CREATE TRIGGER fail BEFORE INSERT ON state WHEN NEW.key = '{key}' "
        "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
    )
    raw.commit()
    raw.close()


def test_a_write_failing_halfway_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateStore(path, plugin_id="p").close()
    _fail_writes_of(path, "boom")
    store = StateStore(path, plugin_id="p")
    store.put({"kept": ROW})
    with pytest.raises(StateError, match="writing failed: injected failure"):
        store.put({"first": ROW, "boom": ROW, "last": ROW})
    assert store.load() == {"kept": ROW}
    store.put({"after": ROW})  # the store is still usable
    store.close()
    assert StateStore(path, plugin_id="p").load() == {"kept": ROW, "after": ROW}


def test_an_empty_file_is_refused_as_damaged_not_taken_as_new(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateStore(path, plugin_id="p").close()
    path.write_bytes(b"")  # truncated to 0 bytes
    with pytest.raises(StateCorrupt, match=rf"{path}.* empty"):
        StateStore(path, plugin_id="p")
    assert path.stat().st_size == 0  # left as found, for whoever investigates


def test_a_missing_file_is_created_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A crash while the file is being made must never leave an empty file at the path:
    # it is built beside it and moved into place complete.
    path = tmp_path / "state.db"
    seen: list[Path] = []
    real_connect = sqlite3.connect

    def spying_connect(target: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        seen.append(Path(target))
        return real_connect(target, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", spying_connect)
    store = StateStore(path, plugin_id="p")
    replica = store.replica_id
    store.close()
    assert seen[0] != path  # the file is made elsewhere...
    assert seen[0].parent == path.parent  # ...on the same file system, then moved
    assert path.stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.db"]  # nothing left over
    assert StateStore(path, plugin_id="p").replica_id == replica


def test_deltas_follow_their_row_until_it_is_written_again(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(path, plugin_id="p")
    store.put({"a": ROW})
    store.append({"a": {"d": 1}, "b": {"d": 2}})
    store.append({"a": {"d": 3}})
    store.close()
    store = StateStore(path, plugin_id="p")
    assert [(key, data) for key, data, _ in store.load_log()] == [
        ("a", {"d": 1}),
        ("b", {"d": 2}),
        ("a", {"d": 3}),
    ]
    store.append({"a": {"d": 4}})  # numbered after what the file held
    store.put({"a": {"whole": True}})
    assert [(key, data) for key, data, _ in store.load_log()] == [("b", {"d": 2})]
    assert store.load() == {"a": {"whole": True}}
    assert store.row_sizes() == {"a": len('{"whole":true}')}
    store.close()


def test_a_file_of_the_first_format_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateStore(path, plugin_id="p").close()
    raw = sqlite3.connect(path)
    raw.execute("DROP TABLE log")
    raw.execute("UPDATE meta SET value = 'jira-orchestrator-state/1' WHERE name = 'format'")
    raw.execute("INSERT INTO state VALUES ('a', ?)", ('{"type":"pncounter","p":{"r":1},"n":{}}',))
    raw.commit()
    raw.close()
    store = StateStore(path, plugin_id="p")
    assert store.load() == {"a": ROW}
    store.append({"a": ROW})
    assert len(store.load_log()) == 1
    store.close()


def test_a_delta_that_is_not_a_json_object_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateStore(path, plugin_id="p").close()
    raw = sqlite3.connect(path)
    raw.execute("INSERT INTO log VALUES ('bad', 1, 'not json')")
    raw.commit()
    raw.close()
    store = StateStore(path, plugin_id="p")
    with pytest.raises(StateCorrupt, match="a delta of 'bad' is not a JSON object"):
        store.load_log()
    store.close()
