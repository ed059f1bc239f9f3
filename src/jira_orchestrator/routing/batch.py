"""Batch input: JSON Lines or a Jira CSV export, read as a stream.

JSON Lines: one object a line, ``id``, ``text``, optional ``files``, ``labels``,
``components`` (a Jira issue with ``fields`` is accepted too). CSV: a Jira export, with
the columns Issue key, Summary, Description, Labels and Component/s (Jira repeats a
column for each value of a multi-valued field; every copy is read).

The file is read as it is routed: memory stays constant whatever its size, and the first
request is yielded before the rest of the file is read (a pipe or a FIFO works). A bad
line is yielded as a `BatchProblem` with its line number, and reading goes on: a line
longer than ``line_limit`` bytes, a line that is not UTF-8, a CSV row with the wrong
number of columns, and a CSV quote that is never closed (reported on the line where it
opened; reading resumes on the next line, so one broken quote costs one row). A file that
cannot be read at all (missing, binary, not UTF-8, a CSV without a Summary column) raises
`InvalidRequest` naming it.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import re
import stat
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO, Literal

from jira_orchestrator.routing.errors import InvalidRequest
from jira_orchestrator.routing.request import RoutingRequest

__all__ = ["DEFAULT_LINE_LIMIT", "BatchItem", "BatchProblem", "BatchReader", "read_batch"]

DEFAULT_LINE_LIMIT = 1024 * 1024
"""The longest line (and CSV row, over all its lines) read, in bytes: 1 MiB."""

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
_BOM = codecs.BOM_UTF8


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


@dataclass(frozen=True, slots=True)
class _Line:
    """One physical line: its text (with its end), or why it cannot be read."""

    number: int
    raw: bytes
    text: str = ""
    problem: str | None = None


class _Lines:
    """The physical lines of a binary stream, each at most ``limit`` bytes long (a longer
    line is a problem, and the rest of it is skipped without being kept)."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._skipping = False
        self.number = 0
        self.position = 0
        """Bytes read so far."""

    def __iter__(self) -> Iterator[_Line]:
        return self

    def __next__(self) -> _Line:
        if self._skipping:
            self._skip()
        raw = self._stream.readline(self._limit + 1)
        if not raw:
            raise StopIteration
        self.position += len(raw)
        self.number += 1
        if self.number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        if len(raw) > self._limit and not raw.endswith(b"\n"):
            self._skipping = True
            return _Line(self.number, raw, problem=f"line longer than {self._limit} bytes")
        if b"\0" in raw:
            return _Line(self.number, raw, problem="a NUL byte: not text")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _Line(self.number, raw, problem=f"not UTF-8 (byte {exc.start}: {exc.reason})")
        return _Line(self.number, raw, text)

    def _skip(self) -> None:
        self._skipping = False
        while True:
            chunk = self._stream.readline(self._limit + 1)
            self.position += len(chunk)
            if not chunk or chunk.endswith(b"\n"):
                return


class BatchReader(Iterator[BatchItem | BatchProblem]):
    """The items and problems of one batch file, in file order, read as they are taken.

    ``format`` is ``"jsonl"`` or ``"csv"``; ``size`` the file's size in bytes when it is
    a regular file (None for a pipe) and ``position`` how many bytes were read so far (for
    a progress bar). The file is closed once the last entry was taken; `close` (or a
    ``with``) closes it before then.
    """

    def __init__(
        self,
        source: str,
        file_format: Literal["jsonl", "csv"],
        lines: _Lines,
        entries: Iterator[BatchItem | BatchProblem],
        stream: BinaryIO | None,
        size: int | None,
    ) -> None:
        self.source = source
        self.format = file_format
        self.size = size
        self._lines = lines
        self._entries = entries
        self._stream = stream

    @property
    def position(self) -> int:
        """Bytes of the file read so far."""
        return self._lines.position

    def __next__(self) -> BatchItem | BatchProblem:
        try:
            return next(self._entries)
        except BaseException:  # the end, or a failure: either way nothing more to read
            self.close()
            raise

    def close(self) -> None:
        """Stop reading and close the file (if `read_batch` opened it); idempotent."""
        close = getattr(self._entries, "close", None)
        if close is not None:
            close()
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def __enter__(self) -> BatchReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_batch(
    path: str | os.PathLike[str] | BinaryIO, *, line_limit: int = DEFAULT_LINE_LIMIT
) -> BatchReader:
    """Requests (or problems) from a JSON Lines or Jira CSV file, in file order, read as
    they are taken. ``path`` may also be a binary stream (standard input), read as JSON
    Lines unless its first line does not start with ``{``.

    Raises `InvalidRequest` when the file cannot be read, is binary or not UTF-8, or is a
    CSV without a Summary column.
    """
    if line_limit < 1:
        raise ValueError(f"line_limit must be at least 1, got {line_limit}")
    if isinstance(path, str | os.PathLike):
        source = os.fspath(path)
        try:
            stream: BinaryIO = open(path, "rb")  # noqa: SIM115 - the reader closes it
        except FileNotFoundError:
            raise InvalidRequest(source, "batch file not found") from None
        except IsADirectoryError:
            raise InvalidRequest(source, "is a directory, not a batch file") from None
        except OSError as exc:
            raise InvalidRequest(source, f"cannot read: {exc.strerror or exc}") from None
        owned: BinaryIO | None = stream
        suffix = os.path.splitext(source)[1].lower()
    else:
        stream, owned, suffix = path, None, ""
        source = str(getattr(path, "name", "<stream>"))
    try:
        return _reader(source, suffix, stream, owned, line_limit)
    except BaseException:
        if owned is not None:
            owned.close()
        raise


def _reader(
    source: str, suffix: str, stream: BinaryIO, owned: BinaryIO | None, limit: int
) -> BatchReader:
    size: int | None = None
    try:
        status = os.fstat(stream.fileno())
        if stat.S_ISREG(status.st_mode):
            size = status.st_size
    except (OSError, AttributeError, ValueError):
        pass
    lines = _Lines(stream, limit)
    try:
        first = next((line for line in lines if line.problem or line.text.strip()), None)
    except OSError as exc:
        raise InvalidRequest(source, f"cannot read: {exc.strerror or exc}") from None
    if first is not None:
        _check_text(source, first, limit)
    head = b"" if first is None else first.raw.lstrip()
    is_csv = suffix == ".csv" or (
        suffix not in (".jsonl", ".ndjson", ".json") and head[:1] not in (b"", b"{")
    )
    if is_csv:
        entries = _read_csv(source, _chain(first, lines), limit)
        return BatchReader(source, "csv", lines, entries, owned, size)
    return BatchReader(
        source, "jsonl", lines, _read_jsonl(source, _chain(first, lines)), owned, size
    )


def _check_text(source: str, first: _Line, limit: int) -> None:
    """Refuse a file whose first line is binary or not UTF-8: it is not a batch file."""
    if b"\0" in first.raw:
        raise InvalidRequest(source, f"not a text file (a NUL byte on line {first.number})")
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(first.raw, final=len(first.raw) <= limit)
    except UnicodeDecodeError as exc:
        raise InvalidRequest(source, f"not UTF-8 text (byte {exc.start}: {exc.reason})") from None


def _chain(first: _Line | None, rest: Iterator[_Line]) -> Iterator[_Line]:
    if first is not None:
        yield first
    yield from rest


def _read_jsonl(source: str, lines: Iterator[_Line]) -> Iterator[BatchItem | BatchProblem]:
    for line in lines:
        number = line.number
        if line.problem is not None:
            yield BatchProblem(source, number, line.problem)
            continue
        if not line.text.strip():
            continue
        try:
            data = json.loads(line.text)
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


# The characters that change a CSV line's quoting state (Excel dialect, as `csv` reads it).
_QUOTING = re.compile(r'[",]')


def _ends_quoted(text: str, quoted: bool) -> bool:
    """Whether a quoted field is still open at the end of ``text``, one physical line of a
    CSV row (``quoted``: whether one was open at its start)."""
    if '"' not in text:
        return quoted
    # States: 0 start of a field, 1 in an unquoted field, 2 in a quoted field,
    # 3 just after a quote inside a quoted field.
    state = 2 if quoted else 0
    at = 0
    for match in _QUOTING.finditer(text):
        char = match.group()
        if state in (0, 3) and match.start() > at:
            state = 1  # other characters before this one
        if char == ",":
            if state != 2:
                state = 0
        elif state == 0:
            state = 2
        elif state == 2:
            state = 3
        elif state == 3:
            state = 2
        at = match.end()
    if state == 3 and at < len(text.rstrip("\r\n")):
        state = 1
    return state == 2


@dataclass(frozen=True, slots=True)
class _Row:
    start: int
    end: int
    cells: list[str]


def _csv_records(source: str, lines: Iterator[_Line], limit: int) -> Iterator[_Row | BatchProblem]:
    """The CSV rows (or problems) of ``lines``: a quote never closed, or still open after
    ``limit`` bytes, costs the row it opened on, and reading resumes on the next line."""
    pending: deque[_Line] = deque()

    def take() -> _Line | None:
        if pending:
            return pending.popleft()
        return next(lines, None)

    while (line := take()) is not None:
        if line.problem is not None:
            yield BatchProblem(source, line.number, line.problem)
            continue
        if not line.text.strip():
            continue
        parts = [line]
        size = len(line.raw)
        quoted = _ends_quoted(line.text, False)
        while quoted:
            more = take()
            if more is None or more.problem is not None or size + len(more.raw) > limit:
                where = (
                    "to the end of the file"
                    if more is None
                    else f"past {limit} bytes"
                    if more.problem is None
                    else f"into line {more.number}, which cannot be read ({more.problem})"
                )
                yield BatchProblem(
                    source,
                    line.number,
                    f"unterminated quote: the quoted field opened on this line runs {where};"
                    f" this row is skipped, reading resumed on line {line.number + 1}",
                )
                if more is not None:
                    pending.appendleft(more)
                pending.extendleft(reversed(parts[1:]))
                break
            parts.append(more)
            size += len(more.raw)
            quoted = _ends_quoted(more.text, True)
        else:
            try:
                cells = next(csv.reader(part.text for part in parts))
            except (csv.Error, StopIteration) as exc:
                yield BatchProblem(source, line.number, f"bad CSV: {exc}")
                continue
            yield _Row(line.number, parts[-1].number, cells)


def _read_csv(
    source: str, lines: Iterator[_Line], limit: int
) -> Iterator[BatchItem | BatchProblem]:
    records = _csv_records(source, lines, limit)
    header = next(records, None)
    if header is None:
        return iter(())
    if isinstance(header, BatchProblem):
        raise InvalidRequest(f"{source}:{header.line}", f"not a CSV header: {header.reason}")
    columns = [_CSV_COLUMNS.get(name.strip().lower()) for name in header.cells]
    if "summary" not in columns:
        raise InvalidRequest(
            f"{source}:{header.start}",
            "no 'Summary' column (a Jira CSV export has Issue key, Summary, Description,"
            f" Labels, Component/s); found {', '.join(repr(h) for h in header.cells[:8])}",
        )
    return _csv_rows(source, records, columns)


def _csv_rows(
    source: str, records: Iterator[_Row | BatchProblem], columns: list[str | None]
) -> Iterator[BatchItem | BatchProblem]:
    for record in records:
        if isinstance(record, BatchProblem):
            yield record
            continue
        start, row = record.start, record.cells
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            reason = f"expected {len(columns)} columns as in the header, got {len(row)}"
            if record.end > start:
                reason += (
                    f"; this row runs from line {start} to line {record.end} inside a quoted"
                    f" field, so {record.end - start} more lines were read as part of it"
                    " (is a quote on this line unterminated?)"
                )
            yield BatchProblem(source, start, reason)
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
