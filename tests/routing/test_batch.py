"""Batch files: JSON Lines and Jira CSV exports, bad lines reported with their number."""

from __future__ import annotations

from pathlib import Path

import pytest

from jira_orchestrator.routing import BatchItem, BatchProblem, InvalidRequest, read_batch


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
