"""The subset of JQL the sandbox understands.

Clauses joined by ``AND`` / ``OR`` (``AND`` binds tighter) and grouped with parentheses;
``ORDER BY field [ASC|DESC], ...``. Fields: ``project``, ``key`` (``issuekey``), ``id``,
``status``, ``labels``, ``component``, ``assignee``, ``issuetype`` (``type``), ``created``,
``updated``, ``summary`` and ``text`` (``~`` only). Operators: ``=``, ``!=``, ``IN``,
``NOT IN``, ``IS [NOT] EMPTY``, ``>``, ``>=``, ``<``, ``<=``, ``~``. Values: bare words,
quoted strings, ``currentUser()``, ``now()``, and dates as Jira takes them
(``"2024-01-31 13:05"``, ``"2024/01/31"``, relative ``"-15m"``, ``"-2d"``, ``"-1w"``), all UTC.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jira_orchestrator._core.errors import JiraOrchestratorError

__all__ = ["JqlError", "JqlQuery", "parse_jql"]

Record = Mapping[str, Any]
"""What a query reads of an issue: the keys below, dates as epoch seconds."""

_FIELDS = {
    "project": "project",
    "key": "key",
    "issuekey": "key",
    "id": "id",
    "status": "status",
    "labels": "labels",
    "label": "labels",
    "component": "components",
    "components": "components",
    "assignee": "assignee",
    "issuetype": "issuetype",
    "type": "issuetype",
    "created": "created",
    "createddate": "created",
    "updated": "updated",
    "updateddate": "updated",
    "summary": "summary",
    "text": "text",
}
_DATES = {"created", "updated"}
_TEXT = {"summary", "text"}
_ORDERABLE = {"updated", "created", "key", "id", "status", "project", "summary", "issuetype"}
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>!=|>=|<=|!~|[=<>~(),])
      | (?P<word>[^\s"'=!<>~(),]+)
    )""",
    re.VERBOSE,
)
_RELATIVE = re.compile(r"^([+-]?)(\d+)([wdhm])$")
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60}
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


class JqlError(JiraOrchestratorError, ValueError):
    """A query the sandbox cannot run; the message reads as Jira's would."""


@dataclass(frozen=True)
class JqlQuery:
    """A parsed query: ``matches(record)`` and ``sort(records)``."""

    text: str
    predicate: Callable[[Record], bool] | None
    order: tuple[tuple[str, bool], ...]  # (field, descending)
    projects: frozenset[str] = frozenset()
    """The project keys the query names (Jira refuses a query naming one that does not exist)."""

    @property
    def bounded(self) -> bool:
        """Whether the query restricts the search (Jira refuses unbounded searches)."""
        return self.predicate is not None

    def matches(self, record: Record) -> bool:
        """Whether the issue ``record`` satisfies the query."""
        return self.predicate is None or self.predicate(record)

    def sort(self, records: Sequence[Record]) -> list[Record]:
        """``records`` in the query's order (``created DESC`` when it names none)."""
        ordered = list(records)
        for name, descending in reversed(self.order or (("created", True),)):
            ordered.sort(key=functools.partial(_sort_key, name=name), reverse=descending)
        return ordered


def parse_jql(text: str, *, now: float, current_user: str) -> JqlQuery:
    """Parse ``text``; ``now`` (epoch seconds) anchors relative dates. Raises `JqlError`."""
    parser = _Parser(_tokens(text), now=now, current_user=current_user)
    predicate = None if parser.at_order_or_end() else parser.expression()
    order = parser.order_by()
    if not parser.done():
        raise JqlError(f"Error in the JQL Query: unexpected {parser.peek()!r}.")
    return JqlQuery(text, predicate, tuple(order), frozenset(parser.projects))


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            if text[position:].strip() == "":
                break
            raise JqlError(
                f"Error in the JQL Query: the character {text[position]!r} at position "
                f"{position} is not valid."
            )
        position = match.end()
        if match.group("string") is not None:
            raw = match.group("string")[1:-1]
            tokens.append(("string", re.sub(r"\\(.)", r"\1", raw)))
        elif match.group("op") is not None:
            tokens.append(("op", match.group("op")))
        elif match.group("word") is not None:
            tokens.append(("word", match.group("word")))
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], *, now: float, current_user: str) -> None:
        self.tokens = tokens
        self.position = 0
        self.now = now
        self.current_user = current_user
        self.projects: set[str] = set()

    def peek(self) -> str | None:
        return self.tokens[self.position][1] if self.position < len(self.tokens) else None

    def done(self) -> bool:
        return self.position >= len(self.tokens)

    def keyword(self, *words: str) -> bool:
        """Consume ``words`` (case-insensitive) if they come next."""
        end = self.position + len(words)
        if end > len(self.tokens):
            return False
        for (kind, value), word in zip(self.tokens[self.position : end], words, strict=True):
            if kind != "word" or value.lower() != word:
                return False
        self.position = end
        return True

    def op(self, symbol: str) -> bool:
        if self.position < len(self.tokens) and self.tokens[self.position] == ("op", symbol):
            self.position += 1
            return True
        return False

    def at_order_or_end(self) -> bool:
        if self.done():
            return True
        kind, value = self.tokens[self.position]
        return kind == "word" and value.lower() == "order"

    def expression(self) -> Callable[[Record], bool]:
        terms = [self.conjunction()]
        while self.keyword("or"):
            terms.append(self.conjunction())
        if len(terms) == 1:
            return terms[0]
        return lambda record: any(term(record) for term in terms)

    def conjunction(self) -> Callable[[Record], bool]:
        factors = [self.factor()]
        while self.keyword("and"):
            factors.append(self.factor())
        if len(factors) == 1:
            return factors[0]
        return lambda record: all(factor(record) for factor in factors)

    def factor(self) -> Callable[[Record], bool]:
        if self.keyword("not"):
            inner = self.factor()
            return lambda record: not inner(record)
        if self.op("("):
            inner = self.expression()
            if not self.op(")"):
                raise JqlError("Error in the JQL Query: expecting ')' to close a group.")
            return inner
        return self.clause()

    def clause(self) -> Callable[[Record], bool]:
        if self.done():
            raise JqlError("Error in the JQL Query: expecting a field name at the end.")
        kind, name = self.tokens[self.position]
        if kind == "op":
            raise JqlError(f"Error in the JQL Query: expecting a field name, not {name!r}.")
        field = _FIELDS.get(name.lower())
        if field is None:
            raise JqlError(
                f"Field '{name}' does not exist or you do not have permission to view it."
            )
        self.position += 1
        if self.keyword("is", "not", "empty") or self.keyword("is", "not", "null"):
            return lambda record: bool(_values(record, field))
        if self.keyword("is", "empty") or self.keyword("is", "null"):
            return lambda record: not _values(record, field)
        if self.keyword("not", "in"):
            values = self.value_list(field)
            return lambda record: not (_values(record, field) & values)
        if self.keyword("in"):
            values = self.value_list(field)
            return lambda record: bool(_values(record, field) & values)
        for symbol in ("=", "!=", "~", "!~", ">=", "<=", ">", "<"):
            if self.op(symbol):
                return self.comparison(field, symbol)
        raise JqlError(
            f"Error in the JQL Query: expecting an operator after '{name}', not {self.peek()!r}."
        )

    def comparison(self, field: str, symbol: str) -> Callable[[Record], bool]:
        if field in _TEXT:
            if symbol not in ("~", "!~"):
                raise JqlError(f"The operator '{symbol}' is not supported by the '{field}' field.")
            needle = self.value(field).lower()
            words = needle.split()

            def hit(record: Record) -> bool:
                return all(word in str(record.get(field, "")).lower() for word in words)

            return hit if symbol == "~" else (lambda record: not hit(record))
        if symbol in ("~", "!~"):
            raise JqlError(f"The operator '{symbol}' is not supported by the '{field}' field.")
        if field in _DATES:
            moment = self.date(field)
            compare: Callable[[float, float], bool] = _COMPARE[symbol]
            return lambda record: compare(float(record[field]), moment)
        if symbol not in ("=", "!="):
            raise JqlError(f"The operator '{symbol}' is not supported by the '{field}' field.")
        wanted = self.value(field)
        values = {_normal(field, wanted)}
        if symbol == "=":
            return lambda record: bool(_values(record, field) & values)
        return lambda record: not (_values(record, field) & values)

    def value(self, field: str) -> str:
        if self.done():
            raise JqlError(f"Error in the JQL Query: expecting a value for '{field}'.")
        kind, value = self.tokens[self.position]
        if kind == "op":
            raise JqlError(f"Error in the JQL Query: expecting a value, not {value!r}.")
        self.position += 1
        if kind == "word" and value.lower() in ("currentuser", "now") and self.op("("):
            if not self.op(")"):
                raise JqlError(f"Error in the JQL Query: expecting ')' after {value}(.")
            if value.lower() == "currentuser":
                return self.current_user
            return _format_minute(self.now)
        if field == "project":
            self.projects.add(value.upper())
        return value

    def value_list(self, field: str) -> set[str]:
        if not self.op("("):
            raise JqlError("Error in the JQL Query: expecting '(' to start a list of values.")
        values = {_normal(field, self.value(field))}
        while self.op(","):
            values.add(_normal(field, self.value(field)))
        if not self.op(")"):
            raise JqlError("Error in the JQL Query: expecting ')' to close a list of values.")
        return values

    def date(self, field: str) -> float:
        raw = self.value(field)
        relative = _RELATIVE.match(raw.strip())
        if relative:
            sign = -1 if relative.group(1) == "-" else 1
            return self.now + sign * int(relative.group(2)) * _UNITS[relative.group(3)]
        for pattern in ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d"):
            try:
                return datetime.strptime(raw.strip(), pattern).replace(tzinfo=UTC).timestamp()
            except ValueError:
                continue
        raise JqlError(
            f"Date value '{raw}' for field '{field}' is invalid. Valid formats include: "
            "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period "
            "format e.g. '-5d', '4w 2d'."
        )

    def order_by(self) -> list[tuple[str, bool]]:
        if self.done():
            return []
        if not self.keyword("order", "by"):
            raise JqlError(f"Error in the JQL Query: unexpected {self.peek()!r}.")
        order = []
        while True:
            if self.done():
                raise JqlError("Error in the JQL Query: expecting a field name after ORDER BY.")
            name = self.tokens[self.position][1]
            field = _FIELDS.get(name.lower())
            if field not in _ORDERABLE:
                raise JqlError(f"Field '{name}' does not exist or cannot be used in ORDER BY.")
            self.position += 1
            descending = False
            if self.keyword("desc"):
                descending = True
            else:
                self.keyword("asc")
            order.append((field, descending))
            if not self.op(","):
                return order


def _values(record: Record, field: str) -> set[str]:
    value = record.get(field)
    if value is None or value == "":
        return set()
    if isinstance(value, list | tuple | set | frozenset):
        return {_normal(field, str(item)) for item in value}
    return {_normal(field, str(value))}


def _normal(field: str, value: str) -> str:
    # Labels and account ids are case-sensitive in Jira; names and keys are not.
    return value if field in ("labels", "assignee") else value.lower()


def _sort_key(record: Record, *, name: str) -> Any:
    if name == "key":
        project, _, number = str(record.get("key", "")).partition("-")
        return (project, int(number) if number.isdigit() else 0)
    if name == "id":
        return int(record.get("id", 0))
    value = record.get(name)
    return value if value is not None else ""


def _format_minute(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M")
