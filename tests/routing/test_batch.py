"""Batch files: JSON Lines and Jira CSV exports, bad lines reported with their number."""

from __future__ import annotations

import csv
import os
import threading
import tracemalloc
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jira_orchestrator.routing import BatchItem, BatchProblem, InvalidRequest, read_batch
from jira_orchestrator.routing.batch import _ends_quoted


def _split(path: Path) -> tuple[list[BatchItem], list[BatchProblem]]:
    entries = list(read_batch(path))
    return (
        [e for e in entries if isinstance(e, BatchItem)],
        [e for e in entries if isinstance(e, BatchProblem)],
    )


def test_json_lines_with_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        '{"id": "a", "text": "Helm chart", "files": ["Chart.yaml"], "labels": ["infra"]}\n'
        "\n"
        "not json\n"
        '{"id": "b", "text": ""}\n'
        '["a list"]\n'
        '{"text": "no id", "components": ["Web"]}\n'
        '{"id": "c", "text": "x", "files": "a.py, b.py"}\n'
    )
    items, problems = _split(path)
    assert [(i.line, i.request.request_id) for i in items] == [(1, "a"), (6, "line-6"), (7, "c")]
    assert items[0].request.files == ("Chart.yaml",)
    assert items[1].request.components == ("Web",)
    assert items[2].request.files == ("a.py", "b.py")
    assert [p.line for p in problems] == [3, 4, 5]
    assert str(problems[0]).startswith(f"{path}:3: invalid JSON")
    assert "empty request" in str(problems[1])
    assert "expected a JSON object" in str(problems[2])


def test_a_jira_csv_export(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "Issue key,Summary,Description,Labels,Labels,Component/s,Issue Type\n"
        'SHOP-1,Grid is slow,"The orders grid\nfreezes on typing",perf,blazor,Web,Bug\n'
        "SHOP-2,only two,columns\n"
        'SHOP-3,"Write the Terraform",,infra,,,Task\n',
        encoding="utf-8",
    )
    items, problems = _split(path)
    first = items[0].request
    assert (items[0].line, first.request_id) == (2, "SHOP-1")
    assert first.text == "Grid is slow\nThe orders grid\nfreezes on typing"
    assert first.labels == ("perf", "blazor")
    assert first.components == ("Web",)
    assert [(i.line, i.request.request_id) for i in items[1:]] == [(5, "SHOP-3")]
    assert [(p.line, "columns" in p.reason) for p in problems] == [(4, True)]


def test_csv_without_summary_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("Key,Title\nA-1,hello\n")
    with pytest.raises(InvalidRequest, match=r"x\.csv:1: no 'Summary' column"):
        list(read_batch(path))


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "batch file not found"), (b"\xff\xfe{", "not UTF-8"), ("dir", "is a directory")],
)
def test_unreadable_batch_files(tmp_path: Path, content: bytes | str | None, message: str) -> None:
    path = tmp_path / "in.jsonl"
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(InvalidRequest, match=message) as caught:
        list(read_batch(path))
    assert str(path) in str(caught.value)


def test_format_is_sniffed_without_a_known_suffix(tmp_path: Path) -> None:
    as_json = tmp_path / "a.txt"
    as_json.write_text('{"id": "1", "text": "hello"}\n')
    as_csv = tmp_path / "b.txt"
    as_csv.write_text("Summary\nhello\n")
    assert [i.request.text for i in _split(as_json)[0]] == ["hello"]
    assert [i.request.text for i in _split(as_csv)[0]] == ["hello"]


def _csv_rows(count: int, broken: int | None = None, quoted: set[int] | None = None) -> str:
    """A Jira CSV of ``count`` rows (row i on line i + 1); row ``broken`` opens a quote it
    never closes; the rows in ``quoted`` quote their summary properly."""
    rows = ["Issue key,Summary,Description"]
    for i in range(1, count + 1):
        if i == broken:
            rows.append(f'K-{i},"Summary {i} never closed,desc {i}')
        elif quoted and i in quoted:
            rows.append(f'K-{i},"Summary, {i}",desc {i}')
        else:
            rows.append(f"K-{i},Summary {i},desc {i}")
    return "\n".join(rows) + "\n"


def test_an_unterminated_quote_loses_its_own_row_only_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "quote_early.csv"
    path.write_text(_csv_rows(1000, broken=2))  # the quote opens on line 3
    items, problems = _split(path)
    assert [p.line for p in problems] == [3]
    assert "unterminated quote" in problems[0].reason
    assert "end of the file" in problems[0].reason
    assert "reading resumed on line 4" in problems[0].reason
    assert [i.request.request_id for i in items] == [f"K-{i}" for i in range(1, 1001) if i != 2]


def test_a_quote_still_open_past_the_record_limit_is_cut_there(tmp_path: Path) -> None:
    # A later row quotes a field, so the runaway quote "closes" there: it must not
    # swallow the rows in between.
    path = tmp_path / "export.csv"
    path.write_text(_csv_rows(400, broken=2, quoted={300}))
    items, problems = _split_limited(path, 1000)
    assert [p.line for p in problems] == [3]
    assert "unterminated quote" in problems[0].reason
    assert "1000 bytes" in problems[0].reason
    ids = [i.request.request_id for i in items]
    assert ids == [f"K-{i}" for i in range(1, 401) if i != 2]
    assert items[ids.index("K-300")].request.text.startswith("Summary, 300")


def test_a_row_spanning_lines_with_the_wrong_columns_names_the_lines_it_took(
    tmp_path: Path,
) -> None:
    path = tmp_path / "export.csv"
    lines = _csv_rows(20, broken=2).splitlines()
    lines[9] = 'K-9,"Summary 9",desc 9,more'  # line 10: its first quote closes the runaway one
    path.write_text("\n".join(lines) + "\n")
    items, problems = _split(path)
    assert [p.line for p in problems] == [3]
    reason = problems[0].reason
    assert "expected 3 columns as in the header" in reason
    assert "runs from line 3 to line 10" in reason
    assert "7 more lines" in reason
    assert [i.line for i in items] == [2, *range(11, 22)]


def _split_limited(path: Path, limit: int) -> tuple[list[BatchItem], list[BatchProblem]]:
    with read_batch(path, line_limit=limit) as entries:
        found = list(entries)
    return (
        [e for e in found if isinstance(e, BatchItem)],
        [e for e in found if isinstance(e, BatchProblem)],
    )


def test_a_line_over_the_limit_is_a_bad_line_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        '{"id": "a", "text": "first"}\n'
        + '{"id": "b", "text": "'
        + "x" * 5000
        + '"}\n'
        + '{"id": "c", "text": "third"}\n'
    )
    items, problems = _split_limited(path, 1000)
    assert [i.request.request_id for i in items] == ["a", "c"]
    assert [p.line for p in problems] == [2]
    assert "longer than 1000 bytes" in problems[0].reason
    csv_path = tmp_path / "in.csv"
    csv_path.write_text("Summary\nfirst\n" + "y" * 5000 + "\nthird\n")
    items, problems = _split_limited(csv_path, 1000)
    assert [i.request.text for i in items] == ["first", "third"]
    assert [(p.line, "longer than 1000 bytes" in p.reason) for p in problems] == [(3, True)]


def test_a_binary_file_is_refused_and_a_later_bad_line_is_reported(tmp_path: Path) -> None:
    zeros = tmp_path / "zeros.jsonl"
    zeros.write_bytes(b"\0" * 100_000)
    with pytest.raises(InvalidRequest, match="not a text file"):
        list(read_batch(zeros))
    later = tmp_path / "later.jsonl"
    later.write_bytes(b'{"id": "a", "text": "ok"}\n{"id": "b", "text": "\xff"}\n{"text": "c"}\n')
    items, problems = _split(later)
    assert [i.line for i in items] == [1, 3]
    assert [(p.line, "not UTF-8" in p.reason) for p in problems] == [(2, True)]


def _fifo_writer(
    fifo: Path,
    first: bytes,
    rest: Iterator[bytes],
    go_on: threading.Event,
    written: threading.Event | None = None,
) -> threading.Thread:
    """Write ``first`` into the FIFO, then wait for ``go_on`` before writing ``rest``;
    ``written`` is set once everything is written, before the FIFO is closed."""

    def write() -> None:
        with fifo.open("wb") as out:
            out.write(first)
            out.flush()
            go_on.wait(60)  # set by the reader; this budget only matters when it is broken
            for chunk in rest:
                out.write(chunk)
            if written is not None:
                written.set()

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def test_the_first_request_comes_before_the_file_is_finished(tmp_path: Path) -> None:
    fifo = tmp_path / "batch.jsonl"
    os.mkfifo(fifo)
    go_on = threading.Event()
    written = threading.Event()
    rest = iter([b'{"id": "b", "text": "b"}\n'])
    writer = _fifo_writer(fifo, b'{"id": "a", "text": "first"}\n', rest, go_on, written)
    try:
        with closing(read_batch(fifo)) as entries:
            first = next(entries)
            finished_before = written.is_set()
            go_on.set()
            later = list(entries)
    finally:
        go_on.set()
        writer.join(60)
    assert isinstance(first, BatchItem)
    assert first.request.request_id == "a"
    assert not finished_before
    assert [e.request.request_id for e in later if isinstance(e, BatchItem)] == ["b"]


@pytest.mark.parametrize("kind", ["many lines", "one endless line"])
def test_reading_a_huge_batch_takes_constant_memory(tmp_path: Path, kind: str) -> None:
    size = 64 * 1024 * 1024
    if kind == "many lines":
        line = b'{"text": "' + b"helm chart " * 900 + b'"}\n'  # about 10 kB
        chunks: Iterator[bytes] = iter([line * 100] * (size // (len(line) * 100)))
    else:
        chunks = iter([b"{" + b"x" * (1024 * 1024)] * (size // (1024 * 1024)))
    fifo = tmp_path / "huge.jsonl"
    os.mkfifo(fifo)
    go_on = threading.Event()
    go_on.set()
    writer = _fifo_writer(fifo, b"", chunks, go_on)
    items = problems = 0
    tracemalloc.start()
    try:
        with closing(read_batch(fifo)) as entries:
            for entry in entries:
                if isinstance(entry, BatchItem):
                    items += 1
                else:
                    problems += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        writer.join(60)
    assert peak < 12 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB for {size / 1e6:.0f} MB read"
    if kind == "many lines":
        assert (items, problems) == (size // (len(line) * 100) * 100, 0)
    else:
        assert (items, problems) == (0, 1)


@settings(max_examples=300)
@given(st.text(alphabet='",ab x\t', max_size=30))
def test_the_quote_tracking_agrees_with_the_csv_module(line: str) -> None:
    # A quote still open at the end of a line makes `csv` read the next line into the row.
    rows = list(csv.reader([line + "\n", "z\n"]))
    assert _ends_quoted(line + "\n", False) == (len(rows) == 1)


cells = st.text(alphabet=st.sampled_from('ab ,"\n\r\tüé'), max_size=12)


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(cells, cells), min_size=1, max_size=8))
def test_any_well_formed_csv_export_is_read_row_for_row(
    tmp_path: Path, rows: list[tuple[str, str]]
) -> None:
    path = tmp_path / "export.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["Summary", "Description"])
        for i, (summary, description) in enumerate(rows):
            writer.writerow([f"S{i} {summary}", description])
    items, problems = _split(path)
    assert problems == []
    expected = [
        "\n".join(p for p in (f"S{i} {s}".strip(), d.strip()) if p) for i, (s, d) in enumerate(rows)
    ]
    assert [item.request.text for item in items] == expected
