"""Jira Cloud's published contract, applied to every HTTP exchange a test makes.

`JiraContract` validates a request and its response with openapi-core against Atlassian's
OpenAPI document (the subset in ``../shared/jira-ref/``; operations outside it, such as
``createIssue``, against the full document) and every ADF body (comment bodies,
descriptions) against Atlassian's ADF JSON Schema. `ContractCheckingTransport` wraps any
httpx transport so that a client under test is checked on every call.

The documents are never edited (only the loaded copy's ``servers``, so that a loopback URL
matches). Where real Jira differs from its own document, the difference is a rule below,
each named after the reference README's "Known gaps":

1. ``date-time``: Jira writes ``2021-01-17T12:34:00.000+0000`` (no colon in the offset);
   a Jira-style checker replaces the RFC 3339 one.
2. Changelog ``from``/``to``/``fromString``/``toString`` are ``null`` in real changelogs:
   a null there is accepted (the rest of the item is still checked).
3. ``PUT .../assignee`` with ``{"accountId": null}`` unassigns (documented in prose).
4. A 204 carries no body: only the status is checked (it must be declared).
5. 401, 409, 429 and 5xx may answer any operation (Jira sends them whether declared or
   not); their body, when there is one, must be Jira's error collection. A 410 may answer a
   deprecated operation.
7. ``Comment.body`` and ``fields.description`` have no schema in the document: they are
   validated against ``adf-full-schema.json``.
11. ``servers`` is replaced by ``/`` in the loaded copy.

Paths under ``/_sandbox/`` are the sandbox's own controls, not Jira's: they are not checked.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jsonschema
from openapi_core import OpenAPI
from openapi_core.configurations import Config
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

REFERENCE = Path(__file__).resolve().parents[4] / "shared" / "jira-ref"
if not REFERENCE.is_dir():  # the worktree may sit elsewhere; the reference stays in /work
    REFERENCE = Path("/work/shared/jira-ref")
SUBSET = REFERENCE / "jira-platform-openapi-v3.subset.json"
FULL = REFERENCE / "jira-platform-openapi-v3.json"
ADF_SCHEMA = REFERENCE / "adf-full-schema.json"
WEBHOOKS = REFERENCE / "webhooks"

# Rule 1: Jira's date-time, with or without a colon in the offset.
JIRA_DATE_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})$"
)
# Rule 5: statuses Jira may send for any operation.
ANY_OPERATION_STATUSES = frozenset({401, 409, 429, 500, 502, 503, 504})
CHANGE_VALUES = ("from", "to", "fromString", "toString")


class ContractViolation(AssertionError):
    """An exchange that breaks Jira's published contract."""


def is_jira_date_time(value: object) -> bool:
    """Whether ``value`` is a date-time as Jira writes one (rule 1)."""
    return isinstance(value, str) and JIRA_DATE_TIME.match(value) is not None


@dataclass
class Exchange:
    """One checked request and response, kept for the test to inspect."""

    method: str
    path: str
    status: int
    operation: str | None
    problems: list[str] = field(default_factory=list)


class _Request:
    """An ``httpx.Request`` as openapi-core's request protocol wants it."""

    def __init__(self, request: httpx.Request, body: bytes | None) -> None:
        self.host_url = f"{request.url.scheme}://{request.url.netloc.decode()}"
        self.path = request.url.path
        self.method = request.method.lower()
        self.body = body or None
        self.content_type = request.headers.get("content-type", "").lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(request.url.params.multi_items())),
            header=Headers(list(request.headers.items())),
            cookie=ImmutableMultiDict(),
        )


class _Response:
    """An ``httpx.Response`` as openapi-core's response protocol wants it."""

    def __init__(self, status: int, headers: httpx.Headers, data: bytes) -> None:
        self.status_code = status
        self.headers = Headers(list(headers.items()))
        self.content_type = headers.get("content-type", "").lower()
        self.data = data


class JiraContract:
    """Atlassian's OpenAPI documents and ADF schema, with the harness rules above."""

    def __init__(self) -> None:
        self._documents, self.adf_validator = _load()
        self.error_collection = self._documents[0][1]["components"]["schemas"]["ErrorCollection"]
        # (path regex, {method: operation}) per document, most specific paths first.
        self._routes = [
            (
                sorted(
                    (
                        (re.compile(re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template))), ops)
                        for template, ops in document["paths"].items()
                    ),
                    key=lambda route: route[0].pattern.count("[^/]+"),
                ),
                api,
            )
            for _name, document, api in self._documents
        ]
        self.exchanges: list[Exchange] = []
        self._lenient_requests = 0

    # -- what tests call -------------------------------------------------------------------

    def adf_errors(self, document: Any) -> list[str]:
        """Why ``document`` is not valid ADF per Atlassian's schema (empty when it is)."""
        return [
            f"{'/'.join(str(p) for p in error.absolute_path) or '$'}: {error.message[:200]}"
            for error in self.adf_validator.iter_errors(document)
        ]

    @contextlib.contextmanager
    def allow_invalid_requests(self) -> Iterator[None]:
        """Within this block, a request that breaks the contract is recorded, not raised.

        For tests that send a bad request on purpose to see the sandbox refuse it; the
        response is still checked.
        """
        self._lenient_requests += 1
        try:
            yield
        finally:
            self._lenient_requests -= 1

    def check(self, request: httpx.Request, body: bytes, response: httpx.Response) -> Exchange:
        """Check one exchange; raise `ContractViolation` naming every problem found."""
        path = request.url.path
        exchange = Exchange(request.method, path, response.status_code, None)
        if path.startswith("/_sandbox/"):
            return exchange
        self.exchanges.append(exchange)
        located = self._locate(request, body)
        if located is None:
            if self._lenient_requests:
                return exchange
            raise ContractViolation(f"{request.method} {path}: no such operation in Jira's API")
        api, operation, openapi_request = located
        exchange.operation = operation.get("operationId")
        request_problems = self._request_problems(api, openapi_request, operation, body)
        if request_problems and not self._lenient_requests:
            exchange.problems.extend(request_problems)
        exchange.problems.extend(self._response_problems(api, openapi_request, operation, response))
        if exchange.problems:
            raise ContractViolation(
                f"{request.method} {path} -> {response.status_code} ({exchange.operation}): "
                + "; ".join(exchange.problems)
            )
        return exchange

    # -- internals ---------------------------------------------------------------------------

    def _locate(
        self, request: httpx.Request, body: bytes
    ) -> tuple[OpenAPI, dict[str, Any], _Request] | None:
        method = request.method.lower()
        for routes, api in self._routes:
            for pattern, methods in routes:
                if pattern.fullmatch(request.url.path) and method in methods:
                    return api, methods[method], _Request(request, body)
        return None

    def _request_problems(
        self, api: OpenAPI, request: _Request, operation: dict[str, Any], body: bytes
    ) -> list[str]:
        problems: list[str] = []
        parsed = _json(body)
        checked = request
        if operation.get("operationId") == "assignIssue" and parsed == {"accountId": None}:
            # Rule 3: null unassigns; check the rest of the request with the "-1" form.
            checked = copy.copy(request)
            checked.body = json.dumps({"accountId": "-1"}).encode()
        try:
            api.validate_request(checked)
        except Exception as exc:
            problems.append(f"request: {_describe(exc)}")
        problems.extend(f"request ADF {error}" for error in self._adf_in_request(operation, parsed))
        return problems

    def _response_problems(
        self,
        api: OpenAPI,
        request: _Request,
        operation: dict[str, Any],
        response: httpx.Response,
    ) -> list[str]:
        status = response.status_code
        declared = operation.get("responses", {})
        data = response.content
        if status == 204:  # rule 4
            if "204" not in declared:
                return [f"204 is not a response of {operation.get('operationId')}"]
            return ["a 204 response carries a body"] if data else []
        if str(status) not in declared and (
            status in ANY_OPERATION_STATUSES or (status == 410 and operation.get("deprecated"))
        ):  # rule 5
            return self._error_body_problems(data)
        parsed = _json(data)
        checked = data
        if isinstance(parsed, dict | list):
            relaxed = _relax_changelog_nulls(copy.deepcopy(parsed))  # rule 2
            checked = json.dumps(relaxed).encode()
        problems = []
        try:
            api.validate_response(request, _Response(status, response.headers, checked))
        except Exception as exc:
            problems.append(f"response: {_describe(exc)}")
        if 200 <= status < 300:
            problems.extend(f"response ADF {error}" for error in self._adf_in_response(parsed))
        elif status >= 400:
            problems.extend(self._error_body_problems(data))
        return problems

    def _error_body_problems(self, data: bytes) -> list[str]:
        if not data:
            return []
        parsed = _json(data)
        try:
            jsonschema.Draft4Validator(self.error_collection).validate(parsed)
        except jsonschema.ValidationError as exc:
            return [f"error body is not Jira's error collection: {exc.message[:200]}"]
        return []

    def _adf_in_request(self, operation: dict[str, Any], body: Any) -> list[str]:
        if not isinstance(body, dict):
            return []
        documents = []
        if operation.get("operationId") == "addComment" and "body" in body:
            documents.append(("body", body["body"]))
        fields = body.get("fields")
        if isinstance(fields, dict) and fields.get("description") is not None:
            documents.append(("fields.description", fields["description"]))
        update = body.get("update")
        if isinstance(update, dict):
            for index, op in enumerate(update.get("description") or []):
                if isinstance(op, dict) and op.get("set") is not None:
                    documents.append((f"update.description[{index}].set", op["set"]))
        return [f"{where}: {error}" for where, doc in documents for error in self.adf_errors(doc)]

    def _adf_in_response(self, body: Any) -> list[str]:
        documents = list(_adf_documents(body, "$"))
        return [f"{where}: {error}" for where, doc in documents for error in self.adf_errors(doc)]


@functools.cache
def _load() -> tuple[list[tuple[str, dict[str, Any], OpenAPI]], jsonschema.Draft4Validator]:
    """The documents, parsed once per test session (the full one is 2.4 MB)."""
    config = Config(
        spec_validator_cls=None,  # the full document fails spec validation (one bad default)
        extra_format_validators={"date-time": is_jira_date_time},
    )
    documents = []
    for name, path in (("subset", SUBSET), ("full", FULL)):
        document = json.loads(path.read_text(encoding="utf-8"))
        document["servers"] = [{"url": "/"}]  # rule 11, on the loaded copy only
        documents.append((name, document, OpenAPI.from_dict(document, config=config)))
    adf = json.loads(ADF_SCHEMA.read_text(encoding="utf-8"))
    return documents, jsonschema.Draft4Validator(adf)


class ContractCheckingTransport(httpx.AsyncBaseTransport):
    """Wraps an httpx transport: every exchange through it is checked by ``contract``.

    A violation raises `ContractViolation` from the client call that made the exchange.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, contract: JiraContract) -> None:
        self.inner = inner
        self.contract = contract

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        await response.aclose()
        self.contract.check(request, body, response)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=content,
            request=request,
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


def _json(data: bytes) -> Any:
    if not data:
        return None
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


def _describe(exc: Exception) -> str:
    text = str(exc)
    cause = exc.__cause__
    details = getattr(cause, "schema_errors", None)
    if details:
        text += ": " + "; ".join(
            f"{'/'.join(str(p) for p in getattr(e, 'absolute_path', []))}: "
            f"{getattr(e, 'message', e)}"
            for e in details
        )
    elif cause is not None:
        text += f": {cause}"
    return text[:1500]


def _relax_changelog_nulls(body: Any) -> Any:
    """Rule 2: a null in a changelog item's from/to/fromString/toString reads as ""."""
    histories: list[Any] = []
    if isinstance(body, dict):
        histories.extend(body.get("values") or [])  # getChangeLogs
        changelog = body.get("changelog")
        if isinstance(changelog, dict):
            histories.extend(changelog.get("histories") or [])  # getIssue?expand=changelog
        for issue in body.get("issues") or []:  # search with expand=changelog
            if isinstance(issue, dict) and isinstance(issue.get("changelog"), dict):
                histories.extend(issue["changelog"].get("histories") or [])
    for history in histories:
        for item in (history.get("items") or []) if isinstance(history, dict) else []:
            if isinstance(item, dict):
                for key in CHANGE_VALUES:
                    if key in item and item[key] is None:
                        item[key] = ""
    return body


def _adf_documents(body: Any, where: str) -> Iterator[tuple[str, Any]]:
    """Every ADF body in a REST v3 response: comment bodies and descriptions (rule 7)."""
    if isinstance(body, list):
        for index, item in enumerate(body):
            yield from _adf_documents(item, f"{where}[{index}]")
        return
    if not isinstance(body, dict):
        return
    for key, value in body.items():
        here = f"{where}.{key}"
        if key == "body" and "author" in body:  # a comment
            yield here, value
        elif key == "description" and where.endswith(".fields"):
            if value is not None:
                yield here, value
        elif isinstance(value, dict | list):
            yield from _adf_documents(value, here)
