"""Batch input: JSON Lines or a Jira CSV export, read line by line.

JSON Lines: one object a line, ``id``, ``text``, optional ``files``, ``labels``,
``components`` (a Jira issue with ``fields`` is accepted too). CSV: a Jira export, with
the columns Issue key, Summary, Description, Labels and Component/s (Jira repeats a
column for each value of a multi-valued field; every copy is read). A bad line is
yielded as a `BatchProblem` with its line number, and reading goes on; a file that
cannot be read at all raises `InvalidRequest` naming it.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from jira_orchestrator.routing.errors import InvalidRequest
from jira_orchestrator.routing.request import RoutingRequest

__all__ = ["BatchItem", "BatchProblem", "read_batch"]

_CSV_COLUMNS = {
    "issue key": "key",
    "key": "key",
    "summary": "summary",
    "description": "description",
    "labels": "labels",
    "component/s": "components",
    "components": "components",
    "issue type": "type",
    "files": "files",
}


@dataclass(frozen=True, slots=True)
class BatchItem:
    """A request read from ``line`` of the batch file."""

    line: int
    request: RoutingRequest


@dataclass(frozen=True, slots=True)
class BatchProblem:
    """A line that could not be read; ``str()`` is ``file:line: reason``."""

    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


def read_batch(path: str | os.PathLike[str]) -> Iterator[BatchItem | BatchProblem]:
    """Requests (or problems) from a JSON Lines or Jira CSV file, in file order.

    Raises `InvalidRequest` when the file cannot be read, is not UTF-8, or is a CSV
    without a Summary column.
    """
    source = str(path)
    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise InvalidRequest(source, "batch file not found") from None
    except IsADirectoryError:
        raise InvalidRequest(source, "is a directory, not a batch file") from None
    except OSError as exc:
        raise InvalidRequest(source, f"cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(source, f"not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    suffix = file.suffix.lower()
    if suffix == ".csv" or (suffix not in (".jsonl", ".ndjson", ".json") and not _looks_json(text)):
        return _read_csv(source, text)
    return _read_jsonl(source, text)


def _looks_json(text: str) -> bool:
    stripped = text.lstrip()
    return not stripped or stripped.startswith("{")


def _read_jsonl(source: str, text: str) -> Iterator[BatchItem | BatchProblem]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            yield BatchProblem(source, number, f"invalid JSON at column {exc.colno}: {exc.msg}")
            continue
        except RecursionError:
            yield BatchProblem(source, number, "JSON nested too deeply")
            continue
        if isinstance(data, dict) and "id" not in data and "fields" not in data:
            data = {**data, "id": f"line-{number}"}
        try:
            request = RoutingRequest.from_mapping(data, where="request")
        except InvalidRequest as exc:
            yield BatchProblem(source, number, str(exc).removeprefix("request: "))
            continue
        yield BatchItem(number, request)


def _read_csv(source: str, text: str) -> Iterator[BatchItem | BatchProblem]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return iter(())
    except csv.Error as exc:
        raise InvalidRequest(f"{source}:1", f"not a CSV header: {exc}") from None
    columns = [_CSV_COLUMNS.get(name.strip().lower()) for name in header]
    if "summary" not in columns:
        raise InvalidRequest(
            f"{source}:1",
            "no 'Summary' column (a Jira CSV export has Issue key, Summary, Description,"
            f" Labels, Component/s); found {', '.join(repr(h) for h in header[:8])}",
        )
    return _csv_rows(source, reader, columns)


def _csv_rows(
    source: str, reader: Iterator[list[str]], columns: list[str | None]
) -> Iterator[BatchItem | BatchProblem]:
    line = 1
    while True:
        start = getattr(reader, "line_num", line) + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield BatchProblem(source, start, f"bad CSV: {exc}")
            continue
        line = start
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            yield BatchProblem(
                source, start, f"expected {len(columns)} columns as in the header, got {len(row)}"
            )
            continue
        values: dict[str, list[str]] = {}
        for column, cell in zip(columns, row, strict=True):
            if column is not None and cell.strip():
                values.setdefault(column, []).append(cell.strip())
        summary = " ".join(values.get("summary", []))
        description = "\n".join(values.get("description", []))
        key = (values.get("key") or [f"line-{start}"])[0]
        text = "\n".join(part for part in (summary, description) if part)
        labels = [label for cell in values.get("labels", []) for label in cell.split()]
        files = [f for cell in values.get("files", []) for f in cell.replace(";", ",").split(",")]
        try:
            request = RoutingRequest.from_text(
                text,
                files=[f.strip() for f in files if f.strip()],
                labels=labels,
                components=values.get("components", []),
                request_id=key,
            )
        except InvalidRequest as exc:
            yield BatchProblem(source, start, f"{key}: {exc.reason}")
            continue
        yield BatchItem(start, request)
