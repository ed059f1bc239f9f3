"""A local, stateful stand-in for Jira Cloud: REST v3, signed webhooks, fault switches.

It ships in the package, as httpx ships ``MockTransport``: our tests use it wherever a Jira
is needed, and users can point their own automation at it
(``jira-orchestrator sandbox``). ``JiraSandbox`` holds the state (projects, issues,
comments, changelogs, a workflow, users) and serves it as an ASGI application
(`JiraSandbox.app`) at Jira Cloud's paths, ``/rest/api/3/...``: in process through
``httpx.ASGITransport`` (`JiraSandbox.client`), or over HTTP with uvicorn.

Every change, made over REST or through the methods here, is sent as a signed webhook
(REST v2 shape, as Jira sends them) to each registered URL, and retried as Jira retries.
``await sandbox.webhooks_idle()`` returns once every webhook has been delivered or given up.

Errors a caller gets from the methods here::

    JiraSandboxError      what Jira would answer with an error (status, errorMessages, errors)
    SandboxDataError      an issues file that cannot be loaded (ValueError)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from jira_orchestrator._core.clock import WallClock, wall
from jira_orchestrator._core.errors import JiraOrchestratorError
from jira_orchestrator.integrations.jira._sandbox_faults import (
    FAULT_STATUSES,
    RATE_LIMIT_REASONS,
    Fault,
    FaultSwitches,
)
from jira_orchestrator.integrations.jira._sandbox_jql import JqlError, parse_jql
from jira_orchestrator.integrations.jira._sandbox_webhooks import (
    RETRY_STATUSES,
    Delivery,
    DeliveryAttempt,
    Sleep,
    WebhookRetry,
    WebhookSender,
)
from jira_orchestrator.integrations.jira._sandbox_workflow import (
    CATEGORIES,
    DEFAULT_WORKFLOW,
    Status,
    Transition,
    Workflow,
)
from jira_orchestrator.integrations.jira.adf import (
    adf_from_text,
    adf_problems,
    adf_to_text,
    wiki_from_adf,
)

if TYPE_CHECKING:
    import httpx
    from starlette.applications import Starlette

__all__ = [
    "DEFAULT_EMAIL",
    "DEFAULT_SECRET",
    "DEFAULT_TOKEN",
    "DEFAULT_WORKFLOW",
    "FAULT_STATUSES",
    "RATE_LIMIT_REASONS",
    "RETRY_STATUSES",
    "Delivery",
    "DeliveryAttempt",
    "Fault",
    "FaultSwitches",
    "JiraSandbox",
    "JiraSandboxError",
    "SandboxDataError",
    "Status",
    "Transition",
    "WebhookRetry",
    "WebhookTarget",
    "Workflow",
    "jira_datetime",
]

DEFAULT_EMAIL = "sandbox@example.com"
DEFAULT_TOKEN = "sandbox-token"
DEFAULT_SECRET = "sandbox-secret"
ISSUE_TYPES = {
    "Epic": "10000",
    "Task": "10001",
    "Story": "10002",
    "Bug": "10003",
    "Subtask": "10004",
}
MAX_COMMENT_CHARS = 32767
MAX_PAGE = 5000
_KEY = re.compile(r"^([A-Z][A-Z0-9_]{0,9})-([1-9][0-9]{0,8})$")
_PROJECT = re.compile(r"^[A-Z][A-Z0-9_]{0,9}$")
_NOT_FOUND = "Issue does not exist or you do not have permission to see it."
_DESCRIPTION_NOT_ADF = (
    "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
)

# The base URL of the request being served (for ``self`` links) when none is configured.
_request_base: ContextVar[str | None] = ContextVar("jira_sandbox_base", default=None)


def jira_datetime(seconds: float) -> str:
    """A moment as Jira writes it: ``2021-01-17T12:34:00.000+0000`` (UTC, no colon)."""
    ms = round(seconds * 1000)
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}+0000"


class JiraSandboxError(JiraOrchestratorError):
    """What Jira answers with an error: ``status``, ``error_messages`` and field ``errors``."""

    def __init__(
        self,
        status: int,
        error_messages: Sequence[str] = (),
        errors: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.error_messages = list(error_messages)
        self.errors = dict(errors or {})
        details = "; ".join([*self.error_messages, *(f"{k}: {v}" for k, v in self.errors.items())])
        super().__init__(f"{status}: {details}" if details else str(status))

    def to_json(self) -> dict[str, Any]:
        """The body Jira sends: ``{"errorMessages": [...], "errors": {...}}``."""
        return {"errorMessages": self.error_messages, "errors": self.errors}


class SandboxDataError(JiraOrchestratorError, ValueError):
    """An issues file (or list) the sandbox cannot load; the message names where."""


@dataclass(frozen=True)
class WebhookTarget:
    """A registered webhook: events go to ``url``, signed with ``secret`` (``None``: unsigned)."""

    url: str
    secret: str | None = DEFAULT_SECRET


@dataclass
class _User:
    account_id: str
    display_name: str
    email: str | None = None


@dataclass
class _Comment:
    id: str
    author: str
    body: dict[str, Any]
    created: float
    updated: float


@dataclass
class _History:
    id: str
    author: str
    created: float
    items: list[dict[str, Any]]


@dataclass
class _Project:
    id: str
    key: str
    last_number: int = 0
    components: dict[str, str] = field(default_factory=dict)  # name -> id


@dataclass
class _Issue:
    id: str
    key: str
    project: str
    issue_type: str
    summary: str
    description: dict[str, Any] | None
    labels: list[str]
    components: list[str]
    assignee: str | None
    reporter: str
    status: str
    created: float
    updated: float
    comments: list[_Comment] = field(default_factory=list)
    histories: list[_History] = field(default_factory=list)


class JiraSandbox:
    """A Jira Cloud site in memory, served at ``/rest/api/3/...`` by `app`.

    ``email`` and ``token`` are the basic-auth credentials it accepts (a bearer token equal
    to ``token`` works too); ``clock`` stamps ``created``/``updated`` and webhook
    ``timestamp``s (epoch seconds); ``workflow`` gives the statuses and transitions.
    ``webhook_url`` registers one webhook signed with ``webhook_secret``; `register_webhook`
    adds more. Webhooks go out through ``webhook_transport`` (default: the network) and
    retries wait through ``sleep`` (default ``asyncio.sleep``). ``base_url`` is the site
    URL written in ``self`` links (default: the URL each request came to).

    Not thread-safe: use it from one event loop (the one serving it).
    """

    def __init__(
        self,
        *,
        email: str = DEFAULT_EMAIL,
        token: str = DEFAULT_TOKEN,
        display_name: str = "Sandbox User",
        clock: WallClock = wall,
        workflow: Workflow = DEFAULT_WORKFLOW,
        webhook_url: str | None = None,
        webhook_secret: str | None = DEFAULT_SECRET,
        webhook_retry: WebhookRetry | None = None,
        webhook_transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        base_url: str | None = None,
    ) -> None:
        if not email or not token:
            raise ValueError("the sandbox needs a non-empty email and API token")
        self.email = email
        self.token = token
        self.workflow = workflow
        self.base_url = base_url.rstrip("/") if base_url else None
        self.faults = FaultSwitches()
        self.webhooks: list[WebhookTarget] = []
        self.clock = clock
        self._sender = WebhookSender(
            retry=webhook_retry or WebhookRetry(), sleep=sleep, transport=webhook_transport
        )
        self._users: dict[str, _User] = {}
        self._projects: dict[str, _Project] = {}
        self._issues: dict[str, _Issue] = {}  # by id
        self._keys: dict[str, str] = {}  # key -> id (old keys too)
        self._next_id = 10000
        self._app: Starlette | None = None
        self.account_id = self.add_user(
            display_name, account_id="712020:sandbox-api-user", email=email
        )
        if webhook_url:
            self.register_webhook(webhook_url, webhook_secret)

    @property
    def auth(self) -> tuple[str, str]:
        """``(email, token)``, ready for ``httpx``'s ``auth=``."""
        return (self.email, self.token)

    @property
    def app(self) -> Starlette:
        """The ASGI application (Starlette) serving this sandbox."""
        if self._app is None:
            from jira_orchestrator.integrations.jira._sandbox_http import build_app

            self._app = build_app(self)
        return self._app

    def client(
        self, base_url: str = "http://jira-sandbox.test", **kwargs: Any
    ) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` talking to the sandbox in process, already authenticated."""
        import httpx

        kwargs.setdefault("auth", self.auth)
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url=base_url, **kwargs
        )

    @property
    def deliveries(self) -> list[Delivery]:
        """Every webhook delivery so far, oldest first, with its attempts."""
        return self._sender.deliveries

    def register_webhook(self, url: str, secret: str | None = DEFAULT_SECRET) -> WebhookTarget:
        """Send every later change to ``url``, signed with ``secret`` (``None``: unsigned)."""
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"a webhook URL starts with http:// or https://, not {url!r}")
        target = WebhookTarget(url, secret or None)
        self.webhooks.append(target)
        return target

    async def start(self) -> None:
        """Start delivering webhooks in the running loop (the app's lifespan calls it)."""
        self._sender.start()

    async def webhooks_idle(self, timeout: float | None = None) -> None:
        """Return once every webhook so far is delivered or given up (``TimeoutError``)."""
        await self._sender.idle(timeout)

    async def aclose(self) -> None:
        """Stop delivering webhooks and release the HTTP client."""
        await self._sender.aclose()

    async def __aenter__(self) -> JiraSandbox:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- users -----------------------------------------------------------------------------

    def add_user(
        self, display_name: str, *, account_id: str | None = None, email: str | None = None
    ) -> str:
        """Add a user (someone to assign, or to act as) and return their account id."""
        if account_id is None:
            account_id = f"712020:sandbox-user-{len(self._users) + 1}"
        if not account_id or len(account_id) > 128:
            raise ValueError("an account id is 1 to 128 characters")
        self._users[account_id] = _User(account_id, display_name, email)
        return account_id

    def authenticate(self, authorization: str | None) -> str | None:
        """The account id an ``Authorization`` header authenticates, or ``None``."""
        if not authorization:
            return None
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer":
            ok = hmac.compare_digest(credentials.strip().encode(), self.token.encode())
            return self.account_id if ok else None
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        expected = f"{self.email}:{self.token}".encode()
        return self.account_id if hmac.compare_digest(decoded, expected) else None

    # -- loading ---------------------------------------------------------------------------

    def load_issues_file(self, path: str | Path, *, announce: bool = False) -> list[str]:
        """Load issues from a JSON file in the format of ``examples/issues.json``."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SandboxDataError(f"{path}: cannot read it ({exc.strerror or exc})") from None
        except UnicodeDecodeError:
            raise SandboxDataError(f"{path}: not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise SandboxDataError(
                f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})"
            ) from None
        return self.load_issues(data, where=str(path), announce=announce)

    def load_issues(self, data: Any, *, where: str = "issues", announce: bool = False) -> list[str]:
        """Load issues and return their keys; nothing is loaded when one is bad.

        ``data`` is a list of ``{"key": "PROJ-1", "fields": {...}}`` (as ``examples/issues.json``,
        or a search result's ``{"issues": [...]}``). Fields read: ``summary`` (required),
        ``description`` (text or ADF), ``issuetype``, ``labels``, ``components``, ``status``,
        ``assignee``; others are ignored. With ``announce`` each issue is sent as a
        ``jira:issue_created`` webhook; by default loading is silent, as an existing site is.
        Raises `SandboxDataError` naming the entry and field.
        """
        if isinstance(data, Mapping) and isinstance(data.get("issues"), list):
            data = data["issues"]
        if not isinstance(data, list):
            raise SandboxDataError(f"{where}: expected a list of issues, not {_kind(data)}")
        planned = [
            self._parse_entry(entry, f"{where}[{index}]") for index, entry in enumerate(data)
        ]
        seen: set[str] = set()
        for index, (key, *_rest) in enumerate(planned):
            if key in seen or key in self._keys:
                raise SandboxDataError(f"{where}[{index}].key: duplicate issue key {key!r}")
            seen.add(key)
        keys = []
        for key, summary, issue_type, description, labels, components, status, assignee in planned:
            issue = self._new_issue(
                key.split("-")[0],
                summary=summary,
                issue_type=issue_type,
                description=description,
                labels=labels,
                components=components,
                assignee=assignee,
                actor=self.account_id,
                key=key,
                status=status,
            )
            if announce:
                self._announce_created(issue, self.account_id)
            keys.append(issue.key)
        return keys

    def _parse_entry(self, entry: Any, where: str) -> tuple[Any, ...]:
        if not isinstance(entry, Mapping):
            raise SandboxDataError(f"{where}: an issue is an object, not {_kind(entry)}")
        key = entry.get("key")
        if not isinstance(key, str) or not _KEY.match(key):
            raise SandboxDataError(
                f"{where}.key: expected an issue key like 'PROJ-12', not {key!r}"
            )
        fields = entry.get("fields")
        if not isinstance(fields, Mapping):
            raise SandboxDataError(f"{where}.fields: expected an object, not {_kind(fields)}")
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            raise SandboxDataError(f"{where}.fields.summary: expected a non-empty string")
        description = fields.get("description")
        if isinstance(description, str):
            description = adf_from_text(description)
        elif description is not None:
            problems = adf_problems(description)
            if problems:
                raise SandboxDataError(f"{where}.fields.description: {problems[0]}")
        issue_type = _name(fields.get("issuetype"), "Task")
        if issue_type not in ISSUE_TYPES:
            raise SandboxDataError(
                f"{where}.fields.issuetype: unknown issue type {issue_type!r} "
                f"(known: {', '.join(ISSUE_TYPES)})"
            )
        labels = fields.get("labels") or []
        if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
            raise SandboxDataError(f"{where}.fields.labels: expected a list of strings")
        for label in labels:
            if " " in label:
                raise SandboxDataError(f"{where}.fields.labels: {label!r} contains a space")
        raw_components = fields.get("components") or []
        if not isinstance(raw_components, list):
            raise SandboxDataError(f"{where}.fields.components: expected a list")
        components = [_name(item, "") for item in raw_components]
        if not all(components):
            raise SandboxDataError(
                f"{where}.fields.components: expected names or {{'name': ...}} objects"
            )
        status = _name(fields.get("status"), self.workflow.initial)
        try:
            status = self.workflow.status(status).name
        except KeyError:
            raise SandboxDataError(f"{where}.fields.status: unknown status {status!r}") from None
        assignee = fields.get("assignee")
        if isinstance(assignee, Mapping):
            account = assignee.get("accountId")
            if not isinstance(account, str) or not account:
                raise SandboxDataError(f"{where}.fields.assignee: expected an accountId")
            if account not in self._users:
                self.add_user(str(assignee.get("displayName") or account), account_id=account)
            assignee = account
        elif assignee is not None:
            raise SandboxDataError(f"{where}.fields.assignee: expected {{'accountId': ...}}")
        return (key, summary, issue_type, description, labels, components, status, assignee)

    # -- programmatic access (as a person using Jira's UI would) ------------------------------

    def issue(self, key: str, *, changelog: bool = True) -> dict[str, Any]:
        """The issue as ``GET /rest/api/3/issue/{key}`` returns it (with its changelog)."""
        return self.issue_json(self._find(key), expand={"changelog"} if changelog else set())

    def keys(self) -> list[str]:
        """Every issue's key, in creation order."""
        return [issue.key for issue in self._issues.values()]

    def comments(self, key: str) -> list[dict[str, Any]]:
        """The issue's comments as ``GET .../comment`` returns them, oldest first."""
        issue = self._find(key)
        return [self.comment_json(issue, comment) for comment in issue.comments]

    def add_project(self, key: str) -> None:
        """Add an empty project (one also appears when its first issue is created)."""
        self._project(key)

    def create_issue(
        self,
        project: str,
        summary: str,
        *,
        issue_type: str = "Task",
        description: str | Mapping[str, Any] | None = None,
        labels: Iterable[str] = (),
        components: Iterable[str] = (),
        assignee: str | None = None,
        as_user: str | None = None,
    ) -> str:
        """Create an issue (``jira:issue_created`` webhook) and return its key."""
        fields: dict[str, Any] = {
            "project": {"key": project},
            "summary": summary,
            "issuetype": {"name": issue_type},
            "labels": list(labels),
            "components": [{"name": name} for name in components],
        }
        if description is not None:
            fields["description"] = (
                adf_from_text(description) if isinstance(description, str) else description
            )
        if assignee is not None:
            fields["assignee"] = {"accountId": assignee}
        return self.create({"fields": fields}, actor=self._actor(as_user))["key"]  # type: ignore[no-any-return]

    def edit_issue(
        self,
        key: str,
        *,
        fields: Mapping[str, Any] | None = None,
        update: Mapping[str, Any] | None = None,
        as_user: str | None = None,
    ) -> None:
        """Edit an issue as ``PUT /rest/api/3/issue/{key}`` does (``fields`` and ``update``)."""
        body: dict[str, Any] = {}
        if fields is not None:
            body["fields"] = dict(fields)
        if update is not None:
            body["update"] = dict(update)
        self.edit(key, body, actor=self._actor(as_user))

    def add_comment(
        self, key: str, body: str | Mapping[str, Any], *, as_user: str | None = None
    ) -> dict[str, Any]:
        """Comment on an issue (text or ADF; ``comment_created`` webhook); return the comment."""
        document = adf_from_text(body) if isinstance(body, str) else body
        return self.comment(key, {"body": document}, actor=self._actor(as_user))

    def assign(self, key: str, account_id: str | None, *, as_user: str | None = None) -> None:
        """Assign the issue to ``account_id`` (``None``: unassign)."""
        self.assign_issue(key, {"accountId": account_id}, actor=self._actor(as_user))

    def transition(self, key: str, to: str, *, as_user: str | None = None) -> None:
        """Move the issue to status ``to`` (a status name) or by transition id."""
        issue = self._find(key)
        for candidate in self.workflow.available(issue.status):
            if to in (candidate.id, candidate.name) or candidate.to.lower() == to.lower():
                self.do_transition(
                    key, {"transition": {"id": candidate.id}}, actor=self._actor(as_user)
                )
                return
        raise JiraSandboxError(
            400, [f"No transition from {issue.status!r} to {to!r} in the workflow."]
        )

    def delete_issue(self, key: str, *, as_user: str | None = None) -> None:
        """Delete an issue (``jira:issue_deleted`` webhook)."""
        self.delete(key, actor=self._actor(as_user))

    def _actor(self, as_user: str | None) -> str:
        if as_user is None:
            return self.account_id
        if as_user not in self._users:
            raise ValueError(f"unknown user {as_user!r}; add it with add_user() first")
        return as_user

    # -- operations (the REST handlers and the methods above both call these) ---------------

    def create(self, body: Any, *, actor: str) -> dict[str, Any]:
        """``POST /rest/api/3/issue``: the created issue's ``{id, key, self}``."""
        fields = _object(body, "fields")
        errors: dict[str, str] = {}
        project_ref = fields.get("project")
        project_key = None
        if isinstance(project_ref, Mapping):
            if isinstance(project_ref.get("key"), str):
                project_key = project_ref["key"].upper()
            elif isinstance(project_ref.get("id"), str | int):
                project_key = next(
                    (p.key for p in self._projects.values() if p.id == str(project_ref["id"])),
                    None,
                )
        if project_key is None or not _PROJECT.match(project_key):
            errors["project"] = "Specify a valid project ID or key"
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            errors["summary"] = "You must specify a summary of the issue."
        elif len(summary) > 255:
            errors["summary"] = "Summary must be less than 255 characters."
        issue_type = None
        type_ref = fields.get("issuetype")
        if isinstance(type_ref, Mapping):
            if isinstance(type_ref.get("name"), str) and type_ref["name"] in ISSUE_TYPES:
                issue_type = type_ref["name"]
            elif isinstance(type_ref.get("id"), str):
                issue_type = next(
                    (name for name, id_ in ISSUE_TYPES.items() if id_ == type_ref["id"]), None
                )
        if issue_type is None:
            errors["issuetype"] = "Specify an issue type"
        description = fields.get("description")
        if description is not None:
            problems = adf_problems(description)
            if problems:
                errors["description"] = f"{_DESCRIPTION_NOT_ADF}: {problems[0]}"
        labels = self._labels(fields.get("labels", []), errors)
        components = self._component_names(fields.get("components", []), errors)
        assignee = self._assignee_ref(fields.get("assignee"), errors)
        unknown = set(fields) - {
            "project", "summary", "issuetype", "description", "labels", "components",
            "assignee", "reporter", "priority",
        }  # fmt: skip
        for name in sorted(unknown):
            errors[name] = _not_settable(name)
        if errors:
            raise JiraSandboxError(400, [], errors)
        assert project_key is not None
        assert issue_type is not None
        assert isinstance(summary, str)
        issue = self._new_issue(
            project_key,
            summary=summary,
            issue_type=issue_type,
            description=description,
            labels=labels,
            components=components,
            assignee=assignee,
            actor=actor,
        )
        self._announce_created(issue, actor)
        return {
            "id": issue.id,
            "key": issue.key,
            "self": self._url(f"/rest/api/3/issue/{issue.id}"),
        }

    def edit(self, key: str, body: Any, *, actor: str) -> None:
        """``PUT /rest/api/3/issue/{key}``: set ``fields``, apply ``update`` operations."""
        issue = self._find(key)
        if not isinstance(body, Mapping):
            raise JiraSandboxError(400, ["The request body must be a JSON object."])
        fields = _object(body, "fields")
        update = _object(body, "update")
        errors: dict[str, str] = {}
        for name in sorted(set(fields) & set(update)):
            errors[name] = f"Field '{name}' cannot be set and updated in the same request."
        new: dict[str, Any] = {
            "summary": issue.summary,
            "description": issue.description,
            "labels": list(issue.labels),
            "components": list(issue.components),
            "assignee": issue.assignee,
        }
        editable = set(new)
        for name, value in fields.items():
            if name not in editable:
                errors.setdefault(name, _not_settable(name))
                continue
            self._set_field(new, name, value, errors)
        for name, operations in update.items():
            if name not in editable:
                errors.setdefault(name, _not_settable(name))
                continue
            if not isinstance(operations, list):
                errors[name] = "The update operations must be a list."
                continue
            for operation in operations:
                self._apply_operation(new, name, operation, errors)
        if errors:
            raise JiraSandboxError(400, [], errors)
        items = []
        if new["summary"] != issue.summary:
            items.append(_item("summary", None, issue.summary, None, new["summary"]))
        if new["description"] != issue.description:
            items.append(
                _item(
                    "description",
                    None,
                    wiki_from_adf(issue.description) or None,
                    None,
                    wiki_from_adf(new["description"]) or None,
                )
            )
        if new["labels"] != issue.labels:
            items.append(
                _item("labels", None, " ".join(issue.labels), None, " ".join(new["labels"]))
            )
        project = self._projects[issue.project]
        for name in issue.components:
            if name not in new["components"]:
                items.append(
                    _item("components", project.components[name], name, None, None, "Component")
                )
        for name in new["components"]:
            if name not in issue.components:
                component_id = self._component_id(project, name)
                items.append(_item("components", None, None, component_id, name, "Component"))
        if new["assignee"] != issue.assignee:
            items.append(self._assignee_item(issue.assignee, new["assignee"]))
        issue.summary = new["summary"]
        issue.description = new["description"]
        issue.labels = new["labels"]
        issue.components = new["components"]
        issue.assignee = new["assignee"]
        if items:
            event = "issue_assigned" if all(i["fieldId"] == "assignee" for i in items) else None
            self._changed(issue, actor, items, event or "issue_updated")

    def assign_issue(self, key: str, body: Any, *, actor: str) -> None:
        """``PUT .../assignee``: ``{"accountId": id}``; ``null`` or ``"-1"`` unassigns."""
        issue = self._find(key)
        if not isinstance(body, Mapping) or "accountId" not in body:
            raise JiraSandboxError(400, [], {"accountId": "Specify an accountId (or null)."})
        errors: dict[str, str] = {}
        account = self._assignee_ref(
            None if body["accountId"] in (None, "-1") else {"accountId": body["accountId"]}, errors
        )
        if errors:
            raise JiraSandboxError(400, [], errors)
        if account != issue.assignee:
            item = self._assignee_item(issue.assignee, account)
            issue.assignee = account
            self._changed(issue, actor, [item], "issue_assigned")

    def transitions(self, key: str) -> list[Transition]:
        """The transitions the issue can take now."""
        return self.workflow.available(self._find(key).status)

    def do_transition(self, key: str, body: Any, *, actor: str) -> None:
        """``POST .../transitions``: ``{"transition": {"id": "21"}}``."""
        issue = self._find(key)
        transition_ref = _object(body, "transition") if isinstance(body, Mapping) else {}
        transition_id = transition_ref.get("id")
        if not isinstance(transition_id, str | int):
            raise JiraSandboxError(400, ["Missing 'transition' identifier"])
        chosen = next(
            (t for t in self.workflow.available(issue.status) if t.id == str(transition_id)), None
        )
        if chosen is None:
            raise JiraSandboxError(
                400, [f"Transition id '{transition_id}' is not valid for this issue."]
            )
        old = self.workflow.status(issue.status)
        new = self.workflow.status(chosen.to)
        items = []
        if (old.category == "done") != (new.category == "done"):
            items.append(
                _item(
                    "resolution",
                    "10000" if old.category == "done" else None,
                    "Done" if old.category == "done" else None,
                    "10000" if new.category == "done" else None,
                    "Done" if new.category == "done" else None,
                )
            )
        items.append(_item("status", old.id, old.name, new.id, new.name))
        issue.status = new.name
        self._changed(issue, actor, items, "issue_generic")

    def comment(self, key: str, body: Any, *, actor: str) -> dict[str, Any]:
        """``POST .../comment``: ``{"body": ADF}``; the new comment."""
        issue = self._find(key)
        if not isinstance(body, Mapping) or "body" not in body:
            raise JiraSandboxError(400, [], {"comment": "Comment body can not be empty!"})
        problems = adf_problems(body["body"])
        if problems:
            raise JiraSandboxError(
                400, [], {"comment": f"Comment body is not valid ADF: {'; '.join(problems)}"}
            )
        if len(wiki_from_adf(body["body"])) > MAX_COMMENT_CHARS:
            raise JiraSandboxError(
                400,
                [],
                {
                    "comment": "The entered text is too long. It exceeds the allowed limit of "
                    f"{MAX_COMMENT_CHARS:,} characters."
                },
            )
        now = self.clock()
        comment = _Comment(
            self._new_id(), actor, json.loads(json.dumps(body["body"])), created=now, updated=now
        )
        issue.comments.append(comment)
        issue.updated = max(now, issue.updated)
        payload = {
            "timestamp": _millis(now),
            "webhookEvent": "comment_created",
            "comment": self._comment_v2(issue, comment),
            "issue": self._issue_v2(issue, reduced=True),
        }
        self._send("comment_created", issue.key, payload)
        return self.comment_json(issue, comment)

    def delete(self, key: str, *, actor: str) -> None:
        """``DELETE /rest/api/3/issue/{key}``."""
        issue = self._find(key)
        payload = {
            "timestamp": _millis(self.clock()),
            "webhookEvent": "jira:issue_deleted",
            "user": self._user_v2(actor),
            "issue": self._issue_v2(issue),
        }
        del self._issues[issue.id]
        for old_key, issue_id in list(self._keys.items()):
            if issue_id == issue.id:
                del self._keys[old_key]
        self._send("jira:issue_deleted", issue.key, payload)

    def search(
        self,
        jql: str,
        *,
        actor: str,
        max_results: int = 50,
        next_page_token: str | None = None,
        fields: Sequence[str] | None = None,
        expand: Iterable[str] = (),
    ) -> dict[str, Any]:
        """``POST /rest/api/3/search/jql``: one page; ``nextPageToken`` when more follow."""
        try:
            query = parse_jql(jql, now=self.clock(), current_user=actor)
        except JqlError as exc:
            raise JiraSandboxError(400, [str(exc)]) from None
        if not query.bounded:
            raise JiraSandboxError(
                400,
                [
                    "Unbounded JQL queries are not allowed here. Please add a search "
                    "restriction to your query."
                ],
            )
        unknown = sorted(
            key for key in query.projects if key not in self._projects and not key.isdigit()
        )
        if unknown:
            raise JiraSandboxError(
                400,
                [f"The value '{key}' does not exist for the field 'project'." for key in unknown],
            )
        if max_results < 0:
            raise JiraSandboxError(400, ["maxResults must be zero or positive."])
        digest = hashlib.sha256(jql.encode()).hexdigest()[:12]
        offset = 0
        if next_page_token is not None:
            offset = _read_token(next_page_token, digest)
        records = [(self._record(issue), issue) for issue in self._issues.values()]
        matching = [record for record, _ in records if query.matches(record)]
        by_id = {issue.id: issue for _, issue in records}
        ordered = [by_id[record["id"]] for record in query.sort(matching)]
        selected = field_selection(fields if fields else ["id"])
        size = min(max_results, MAX_PAGE if selected == set() else 100)
        page = ordered[offset : offset + size]
        result: dict[str, Any] = {
            "issues": [
                self.issue_json(issue, fields=selected, expand=set(expand)) for issue in page
            ]
        }
        if offset + size < len(ordered):
            result["nextPageToken"] = _make_token(offset + size, digest)
            result["isLast"] = False
        else:
            result["isLast"] = True
        return result

    # -- representations ----------------------------------------------------------------------

    def issue_json(
        self,
        issue: _Issue,
        *,
        fields: set[str] | None = None,
        expand: set[str] | None = None,
    ) -> dict[str, Any]:
        """REST v3 issue; ``fields`` (``None``: all; empty: only ``id``) and ``expand``."""
        expand = expand or set()
        if fields == set():
            result: dict[str, Any] = {"id": issue.id}
        else:
            every = self._fields_v3(issue)
            result = {
                "expand": "renderedFields,names,schema,operations,editmeta,changelog,"
                "versionedRepresentations",
                "id": issue.id,
                "self": self._url(f"/rest/api/3/issue/{issue.id}"),
                "key": issue.key,
                "fields": {
                    name: value for name, value in every.items() if fields is None or name in fields
                },
            }
        if "changelog" in expand:
            histories = [self._history_json(history) for history in issue.histories]
            result["changelog"] = {
                "startAt": 0,
                "maxResults": len(histories),
                "total": len(histories),
                "histories": histories,
            }
        if "transitions" in expand:
            result["transitions"] = [self.transition_json(t) for t in self.transitions(issue.key)]
        return result

    def comment_json(self, issue: _Issue, comment: _Comment) -> dict[str, Any]:
        """REST v3 comment (ADF body)."""
        return {
            "self": self._url(f"/rest/api/3/issue/{issue.id}/comment/{comment.id}"),
            "id": comment.id,
            "author": self._user_json(comment.author),
            "body": comment.body,
            "updateAuthor": self._user_json(comment.author),
            "created": jira_datetime(comment.created),
            "updated": jira_datetime(comment.updated),
            "jsdPublic": True,
        }

    def transition_json(self, transition: Transition) -> dict[str, Any]:
        """REST v3 transition (``isLooped`` as real Jira writes it, besides ``looped``)."""
        return {
            "id": transition.id,
            "name": transition.name,
            "to": self._status_json(self.workflow.status(transition.to)),
            "hasScreen": False,
            "isGlobal": not transition.sources,
            "isInitial": False,
            "isAvailable": True,
            "isConditional": False,
            "isLooped": False,
        }

    def myself_json(self, account_id: str) -> dict[str, Any]:
        """``GET /rest/api/3/myself``."""
        user = self._users[account_id]
        return {
            "self": self._url(f"/rest/api/3/user?accountId={user.account_id}"),
            "accountId": user.account_id,
            "accountType": "atlassian",
            "emailAddress": user.email or "",
            "avatarUrls": self._avatars(user.account_id),
            "displayName": user.display_name,
            "active": True,
            "timeZone": "Etc/UTC",
            "locale": "en_US",
            "groups": {"size": 0, "items": []},
            "applicationRoles": {"size": 0, "items": []},
            "expand": "groups,applicationRoles",
        }

    def changelog_page(self, key: str, start_at: int, max_results: int) -> dict[str, Any]:
        """``GET .../changelog``: a page of histories, oldest first."""
        issue = self._find(key)
        histories = issue.histories[start_at : start_at + max_results]
        base = f"/rest/api/3/issue/{issue.key}/changelog"
        page: dict[str, Any] = {
            "self": self._url(f"{base}?startAt={start_at}&maxResults={max_results}"),
            "maxResults": max_results,
            "startAt": start_at,
            "total": len(issue.histories),
            "isLast": start_at + max_results >= len(issue.histories),
            "values": [self._history_json(history) for history in histories],
        }
        if not page["isLast"]:
            page["nextPage"] = self._url(
                f"{base}?startAt={start_at + max_results}&maxResults={max_results}"
            )
        return page

    def comments_page(
        self, key: str, start_at: int, max_results: int, newest_first: bool
    ) -> dict[str, Any]:
        """``GET .../comment``: a page of comments."""
        issue = self._find(key)
        comments = list(reversed(issue.comments)) if newest_first else issue.comments
        return {
            "startAt": start_at,
            "maxResults": max_results,
            "total": len(comments),
            "comments": [
                self.comment_json(issue, comment)
                for comment in comments[start_at : start_at + max_results]
            ],
        }

    def find(self, key: str) -> _Issue:
        """The issue by key or id; `JiraSandboxError` 404 as Jira answers."""
        return self._find(key)

    def _find(self, key: str) -> _Issue:
        issue_id = self._keys.get(key.upper(), key)
        issue = self._issues.get(issue_id)
        if issue is None:
            raise JiraSandboxError(404, [_NOT_FOUND])
        return issue

    # -- internals ----------------------------------------------------------------------------

    def _new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    def _project(self, key: str) -> _Project:
        project = self._projects.get(key)
        if project is None:
            project = self._projects[key] = _Project(str(10000 + len(self._projects)), key)
        return project

    def _component_id(self, project: _Project, name: str) -> str:
        if name not in project.components:
            project.components[name] = self._new_id()
        return project.components[name]

    def _new_issue(
        self,
        project_key: str,
        *,
        summary: str,
        issue_type: str,
        description: dict[str, Any] | None,
        labels: list[str],
        components: list[str],
        assignee: str | None,
        actor: str,
        key: str | None = None,
        status: str | None = None,
    ) -> _Issue:
        project = self._project(project_key)
        if key is None:
            project.last_number += 1
            key = f"{project.key}-{project.last_number}"
        else:
            project.last_number = max(project.last_number, int(key.split("-")[1]))
        for name in components:
            self._component_id(project, name)
        now = self.clock()
        issue = _Issue(
            id=self._new_id(),
            key=key,
            project=project.key,
            issue_type=issue_type,
            summary=summary,
            description=json.loads(json.dumps(description)) if description else None,
            labels=list(labels),
            components=list(dict.fromkeys(components)),
            assignee=assignee,
            reporter=actor,
            status=status or self.workflow.initial,
            created=now,
            updated=now,
        )
        self._issues[issue.id] = issue
        self._keys[issue.key] = issue.id
        return issue

    def _announce_created(self, issue: _Issue, actor: str) -> None:
        items = [
            _item("summary", None, None, None, issue.summary),
            _item("issuetype", None, None, ISSUE_TYPES[issue.issue_type], issue.issue_type),
        ]
        status = self.workflow.status(issue.status)
        items.append(_item("status", None, None, status.id, status.name, "Status"))
        if issue.labels:
            items.append(_item("labels", None, None, None, " ".join(issue.labels)))
        if issue.assignee:
            items.append(self._assignee_item(None, issue.assignee))
        self._webhook_event(
            issue, actor, "jira:issue_created", "issue_created", self._new_id(), items
        )

    def _changed(self, issue: _Issue, actor: str, items: list[dict[str, Any]], kind: str) -> None:
        now = self.clock()
        issue.updated = max(now, issue.updated)
        history = _History(self._new_id(), actor, now, items)
        issue.histories.append(history)
        self._webhook_event(issue, actor, "jira:issue_updated", kind, history.id, items)

    def _webhook_event(
        self,
        issue: _Issue,
        actor: str,
        event: str,
        kind: str,
        changelog_id: str,
        items: list[dict[str, Any]],
    ) -> None:
        payload = {
            "timestamp": _millis(self.clock()),
            "webhookEvent": event,
            "issue_event_type_name": kind,
            "user": self._user_v2(actor),
            "issue": self._issue_v2(issue),
            "changelog": {"id": changelog_id, "items": items},
        }
        self._send(event, issue.key, payload)

    def _send(self, event: str, issue_key: str, payload: dict[str, Any]) -> None:
        if not self.webhooks:
            return
        body = json.dumps(payload, separators=(",", ":")).encode()
        for target in self.webhooks:
            self._sender.submit(
                url=target.url, secret=target.secret, event=event, issue_key=issue_key, body=body
            )

    def _record(self, issue: _Issue) -> dict[str, Any]:
        comments = " ".join(adf_to_text(comment.body) for comment in issue.comments)
        description = adf_to_text(issue.description)
        return {
            "id": issue.id,
            "key": issue.key,
            "project": issue.project,
            "status": issue.status,
            "labels": issue.labels,
            "components": issue.components,
            "assignee": issue.assignee,
            "issuetype": issue.issue_type,
            "created": issue.created,
            "updated": issue.updated,
            "summary": issue.summary,
            "text": f"{issue.summary} {description} {comments}",
        }

    def _labels(self, value: Any, errors: dict[str, str]) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            errors["labels"] = "Labels must be a list of non-empty strings."
            return []
        for label in value:
            if " " in label:
                errors["labels"] = f"The label '{label}' contains spaces which is invalid."
            elif len(label) > 255:
                errors["labels"] = "The label must not exceed 255 characters."
        return list(dict.fromkeys(value))

    def _component_names(self, value: Any, errors: dict[str, str]) -> list[str]:
        if not isinstance(value, list):
            errors["components"] = 'Components must be a list of {"name": ...} objects.'
            return []
        names = []
        for item in value:
            name = item.get("name") if isinstance(item, Mapping) else None
            if not isinstance(name, str) or not name.strip():
                errors["components"] = "Component name is required."
                return []
            names.append(name)
        return list(dict.fromkeys(names))

    def _assignee_ref(self, value: Any, errors: dict[str, str]) -> str | None:
        if value is None:
            return None
        account = value.get("accountId") if isinstance(value, Mapping) else None
        if account is None and isinstance(value, Mapping) and "accountId" in value:
            return None
        if not isinstance(account, str) or not account or len(account) > 128:
            errors["assignee"] = "Specify a valid accountId for the assignee."
            return None
        if account == "-1":
            return None
        if account not in self._users:
            # Real Jira knows every account of the site; the sandbox meets them on first use.
            self.add_user(account, account_id=account)
        return account

    def _set_field(
        self, new: dict[str, Any], name: str, value: Any, errors: dict[str, str]
    ) -> None:
        if name == "summary":
            if not isinstance(value, str) or not value.strip():
                errors[name] = "You must specify a summary of the issue."
            else:
                new[name] = value
        elif name == "description":
            problems = [] if value is None else adf_problems(value)
            if problems:
                errors[name] = f"{_DESCRIPTION_NOT_ADF}: {problems[0]}"
            else:
                new[name] = json.loads(json.dumps(value)) if value else None
        elif name == "labels":
            new[name] = self._labels(value if value is not None else [], errors)
        elif name == "components":
            new[name] = self._component_names(value if value is not None else [], errors)
        elif name == "assignee":
            new[name] = self._assignee_ref(value, errors)

    def _apply_operation(
        self, new: dict[str, Any], name: str, operation: Any, errors: dict[str, str]
    ) -> None:
        if not isinstance(operation, Mapping) or len(operation) != 1:
            errors[name] = "Each update operation is an object with one verb: add, remove, set."
            return
        verb, value = next(iter(operation.items()))
        if verb == "set":
            self._set_field(new, name, value, errors)
            return
        if name not in ("labels", "components") or verb not in ("add", "remove"):
            errors[name] = f"Field '{name}' does not support the operation '{verb}'."
            return
        if name == "labels":
            items = self._labels([value], errors)
        else:
            items = self._component_names([value], errors)
        for item in items:
            if verb == "add" and item not in new[name]:
                new[name].append(item)
            elif verb == "remove" and item in new[name]:
                new[name].remove(item)

    def _assignee_item(self, old: str | None, new: str | None) -> dict[str, Any]:
        return _item(
            "assignee",
            old,
            self._users[old].display_name if old else None,
            new,
            self._users[new].display_name if new else None,
        )

    def _url(self, path: str) -> str:
        return (self.base_url or _request_base.get() or "http://127.0.0.1") + path

    def _avatars(self, account_id: str) -> dict[str, str]:
        base = self._url(f"/secure/useravatar?ownerId={account_id}")
        return {f"{size}x{size}": f"{base}&size={size}" for size in (48, 24, 16, 32)}

    def _user_json(self, account_id: str, api: str = "3") -> dict[str, Any]:
        user = self._users[account_id]
        return {
            "self": self._url(f"/rest/api/{api}/user?accountId={account_id}"),
            "accountId": account_id,
            "avatarUrls": self._avatars(account_id),
            "displayName": user.display_name,
            "active": True,
            "timeZone": "Etc/UTC",
            "accountType": "atlassian",
        }

    def _user_v2(self, account_id: str) -> dict[str, Any]:
        return self._user_json(account_id, api="2")

    def _status_json(self, status: Status, api: str = "3") -> dict[str, Any]:
        category_id, colour, category_name = CATEGORIES[status.category]
        return {
            "self": self._url(f"/rest/api/{api}/status/{status.id}"),
            "description": "",
            "iconUrl": self._url("/images/icons/statuses/generic.png"),
            "name": status.name,
            "id": status.id,
            "statusCategory": {
                "self": self._url(f"/rest/api/{api}/statuscategory/{category_id}"),
                "id": category_id,
                "key": status.category,
                "colorName": colour,
                "name": category_name,
            },
        }

    def _fields_v3(self, issue: _Issue, api: str = "3") -> dict[str, Any]:
        project = self._projects[issue.project]
        status = self.workflow.status(issue.status)
        done = status.category == "done"
        return {
            "summary": issue.summary,
            "description": issue.description,
            "issuetype": {
                "self": self._url(f"/rest/api/{api}/issuetype/{ISSUE_TYPES[issue.issue_type]}"),
                "id": ISSUE_TYPES[issue.issue_type],
                "name": issue.issue_type,
                "subtask": issue.issue_type == "Subtask",
                "hierarchyLevel": 1 if issue.issue_type == "Epic" else 0,
            },
            "project": {
                "self": self._url(f"/rest/api/{api}/project/{project.id}"),
                "id": project.id,
                "key": project.key,
                "name": project.key,
                "projectTypeKey": "software",
                "simplified": False,
            },
            "status": self._status_json(status, api),
            "resolution": (
                {
                    "self": self._url(f"/rest/api/{api}/resolution/10000"),
                    "id": "10000",
                    "name": "Done",
                    "description": "Work has been completed on this issue.",
                }
                if done
                else None
            ),
            "priority": {
                "self": self._url(f"/rest/api/{api}/priority/3"),
                "iconUrl": self._url("/images/icons/priorities/medium.svg"),
                "name": "Medium",
                "id": "3",
            },
            "labels": list(issue.labels),
            "components": [
                {
                    "self": self._url(f"/rest/api/{api}/component/{project.components[name]}"),
                    "id": project.components[name],
                    "name": name,
                }
                for name in issue.components
            ],
            "assignee": self._user_json(issue.assignee, api) if issue.assignee else None,
            "reporter": self._user_json(issue.reporter, api),
            "creator": self._user_json(issue.reporter, api),
            "created": jira_datetime(issue.created),
            "updated": jira_datetime(issue.updated),
            "resolutiondate": jira_datetime(issue.updated) if done else None,
            "comment": {
                "comments": [self.comment_json(issue, comment) for comment in issue.comments],
                "self": self._url(f"/rest/api/{api}/issue/{issue.id}/comment"),
                "maxResults": len(issue.comments),
                "total": len(issue.comments),
                "startAt": 0,
            },
        }

    def _issue_v2(self, issue: _Issue, *, reduced: bool = False) -> dict[str, Any]:
        """The issue as webhooks carry it: REST v2 links, wiki-markup description."""
        fields = self._fields_v3(issue, api="2")
        fields["description"] = wiki_from_adf(issue.description) if issue.description else None
        del fields["comment"]
        if reduced:  # comment events carry a reduced set of fields
            keep = ("summary", "issuetype", "project", "assignee", "priority", "status")
            fields = {name: fields[name] for name in keep}
        return {
            "id": issue.id,
            "self": self._url(f"/rest/api/2/issue/{issue.id}"),
            "key": issue.key,
            "fields": fields,
        }

    def _comment_v2(self, issue: _Issue, comment: _Comment) -> dict[str, Any]:
        return {
            "self": self._url(f"/rest/api/2/issue/{issue.id}/comment/{comment.id}"),
            "id": comment.id,
            "author": self._user_v2(comment.author),
            "body": wiki_from_adf(comment.body),
            "updateAuthor": self._user_v2(comment.author),
            "created": jira_datetime(comment.created),
            "updated": jira_datetime(comment.updated),
            "jsdPublic": True,
        }

    def _history_json(self, history: _History) -> dict[str, Any]:
        return {
            "id": history.id,
            "author": self._user_json(history.author),
            "created": jira_datetime(history.created),
            "items": history.items,
        }


def _item(
    field_id: str,
    from_: str | None,
    from_string: str | None,
    to: str | None,
    to_string: str | None,
    field: str | None = None,
) -> dict[str, Any]:
    """A changelog item; ``field`` is the display name Jira writes (default: the field id)."""
    return {
        "field": field or field_id,
        "fieldtype": "jira",
        "fieldId": field_id,
        "from": from_,
        "fromString": from_string,
        "to": to,
        "toString": to_string,
    }


def _not_settable(name: str) -> str:
    return f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."


def _object(body: Any, key: str) -> dict[str, Any]:
    value = body.get(key) if isinstance(body, Mapping) else None
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise JiraSandboxError(400, [f"'{key}' must be a JSON object."])
    return dict(value)


def _name(value: Any, default: str) -> str:
    if value is None:
        return default
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("name"), str):
        return str(value["name"])
    return ""


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    return "null" if value is None else type(value).__name__


def _millis(seconds: float) -> int:
    return round(seconds * 1000)


def _make_token(offset: int, digest: str) -> str:
    raw = json.dumps({"o": offset, "q": digest}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_token(token: str, digest: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset = data["o"]
        ok = data["q"] == digest and isinstance(offset, int) and offset >= 0
    except (ValueError, KeyError, TypeError, binascii.Error):
        ok = False
    if not ok:
        raise JiraSandboxError(
            400, ["The nextPageToken is invalid or does not belong to this query."]
        )
    return int(offset)


def field_selection(requested: Sequence[str]) -> set[str] | None:
    """Which fields to return: ``None`` for all, an empty set for ``id`` only."""
    names = [part.strip() for item in requested for part in item.split(",") if part.strip()]
    if not names or names == ["id"]:
        return set()
    everything = any(name in ("*all", "*navigable") for name in names)
    excluded = {name[1:] for name in names if name.startswith("-")}
    included = {name for name in names if not name.startswith(("-", "*")) and name != "id"}
    if everything or (excluded and not included):
        return None if not excluded else set(_ALL_FIELDS - excluded)
    return included - excluded


_ALL_FIELDS = frozenset(
    [
        "summary",
        "description",
        "issuetype",
        "project",
        "status",
        "resolution",
        "priority",
        "labels",
        "components",
        "assignee",
        "reporter",
        "creator",
        "created",
        "updated",
        "resolutiondate",
        "comment",
    ]
)
