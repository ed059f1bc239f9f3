"""``jira init`` and ``jira check``: a commented configuration, and what is wrong with one.

`check` signs in (``GET /myself``), looks up each project with a JQL search, and looks for
the configured transitions among those available on a sample of each project's issues; it
reports each finding on its own line, so an operator sees every problem at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from jira_orchestrator._core.errors import CircuitOpenError
from jira_orchestrator.integrations.jira.client import JiraClient
from jira_orchestrator.integrations.jira.config import JiraConfig
from jira_orchestrator.integrations.jira.errors import (
    JiraAuthError,
    JiraConfigError,
    JiraError,
    JiraRequestError,
)

__all__ = ["Finding", "check", "init_text"]

SANDBOX_USER = "sandbox@example.com"
SANDBOX_TOKEN = "sandbox-token"
SANDBOX_SECRET = "sandbox-secret"
_SAMPLE = 20


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of ``jira check``: ``ok``, ``warning`` or ``error``, what, and why."""

    level: Literal["ok", "warning", "error"]
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.level}: {self.subject}: {self.detail}"


def init_text(sandbox: str | None = None) -> str:
    """A commented ``jira-orchestrator.toml``; with ``sandbox`` (its URL), one that works
    unchanged against a sandbox started there with its defaults."""
    if sandbox is not None:
        site = sandbox.rstrip("/")
        auth = (
            f'email = "{SANDBOX_USER}"\n'
            "# The sandbox's token is not a secret, so it may be written here; a token in the\n"
            "# file is refused for any site that is not on a loopback address.\n"
            f'token = "{SANDBOX_TOKEN}"\n'
        )
        webhook = f'secret = "{SANDBOX_SECRET}"\n'
        projects = '["SHOP", "PLAT", "UI", "OPS"]'
    else:
        site = "https://your-team.atlassian.net"
        auth = (
            'email = "you@example.com"\n'
            "# The API token (id.atlassian.com > Security > API tokens) is read from this\n"
            "# environment variable; never write it in the file.\n"
            'tokenEnv = "JIRA_API_TOKEN"\n'
            "# Or a bearer token instead of email + token:\n"
            '# bearerTokenEnv = "JIRA_BEARER_TOKEN"\n'
        )
        webhook = (
            "# The secret you gave the webhook in Jira (Settings > System > WebHooks), read\n"
            "# from this environment variable; every delivery's signature is checked.\n"
            'secretEnv = "JIRA_WEBHOOK_SECRET"\n'
        )
        projects = '["OPS"]'
    return f"""# jira-orchestrator.toml: how the orchestrator works with your Jira Cloud site.
# Check it with: jira-orchestrator jira check --config jira-orchestrator.toml

[jira]
site = "{site}"
# The projects whose issues are routed; events for other projects are ignored.
projects = {projects}
# Seconds one call to Jira may take.
timeoutSeconds = 30

[jira.auth]
{auth}
[jira.webhook]
{webhook}# The largest webhook body accepted, in bytes (larger ones get 413).
maxBodyBytes = 1048576

[jira.writeBack]
# A comment (ADF) with the decision and its evidence, then one with the outcome.
comment = true
# The label "routed:<plugin>" on the issue.
label = true
labelPrefix = "routed:"
# A component per plugin (named as the plugin unless mapped below).
component = false

[jira.writeBack.components]
# fastapi-backend = "Backend"

[jira.writeBack.assignees]
# The accountId to assign a plugin's issues to:
# fastapi-backend = "5b10ac8d82e05b22cc7d4ef5"

[jira.transitions]
# The transition (name or id) applied when the work is done, and when it failed.
completed = "Done"
# failed = "Blocked"

[jira.poll]
# For sites that cannot send webhooks (serve --poll): how often to search, and how far
# back each search reaches before the last one (events may be indexed late).
intervalSeconds = 60
overlapSeconds = 120
# jql = "labels != no-robots"

[routing]
# Below this confidence nothing is dispatched: the issue gets triageLabel and a comment
# listing the best candidates.
minConfidence = 0.0
triageLabel = "needs-triage"
"""


async def check(
    config: JiraConfig,
    *,
    environ: Mapping[str, str] | None = None,
    client: JiraClient | None = None,
) -> list[Finding]:
    """Every finding about ``config`` against its site; errors make the check fail."""
    findings: list[Finding] = []
    settings = config.jira
    if client is None:
        try:
            client = JiraClient.from_config(config, environ, max_retries=1, max_wait=5.0)
        except JiraConfigError as exc:
            return [Finding("error", "auth", problem) for problem in exc.problems]
    try:
        secret_problem = _webhook_secret(config, environ)
        if secret_problem is not None:
            findings.append(secret_problem)
        try:
            me = await client.myself()
        except (JiraError, CircuitOpenError) as exc:
            level_detail = "credentials refused" if isinstance(exc, JiraAuthError) else "failed"
            findings.append(
                Finding("error", f"sign in at {settings.site}", f"{level_detail}: {exc}")
            )
            return findings
        who = me.get("displayName") or me.get("emailAddress") or "?"
        findings.append(
            Finding("ok", "credentials", f"signed in as {who} ({me.get('accountId', '?')})")
        )
        wanted = {
            name: value
            for name, value in (
                ("completed", settings.transitions.completed),
                ("failed", settings.transitions.failed),
            )
            if value
        }
        seen: dict[str, set[str]] = {}
        for project in settings.projects:
            try:
                sample = [
                    issue
                    async for issue in client.search(
                        f"project = {project}", fields=("status",), limit=_SAMPLE
                    )
                ]
            except JiraRequestError as exc:
                findings.append(Finding("error", f"project {project}", f"not found: {exc}"))
                continue
            except (JiraError, CircuitOpenError) as exc:
                findings.append(Finding("error", f"project {project}", str(exc)))
                continue
            findings.append(Finding("ok", f"project {project}", f"{len(sample)} issue(s) sampled"))
            for issue in sample:
                for transition in await client.transitions(str(issue.get("key"))):
                    names = seen.setdefault(project, set())
                    names.add(str(transition.get("name", "")).casefold())
                    names.add(str(transition.get("id", "")))
        for role, value in wanted.items():
            found = [p for p, names in seen.items() if value.casefold() in names]
            if found:
                findings.append(
                    Finding("ok", f"transition {role}", f"{value!r} found in {', '.join(found)}")
                )
            elif seen:
                known = sorted({n for names in seen.values() for n in names if not n.isdigit()})
                findings.append(
                    Finding(
                        "error",
                        f"transition {role}",
                        f"{value!r} is not available on any sampled issue;"
                        f" transitions seen: {', '.join(known) or 'none'}",
                    )
                )
            else:
                findings.append(
                    Finding(
                        "warning",
                        f"transition {role}",
                        f"{value!r} not checked: the projects have no issues yet",
                    )
                )
    finally:
        await client.aclose()
    return findings


def _webhook_secret(config: JiraConfig, environ: Mapping[str, str] | None) -> Finding | None:
    try:
        secret = config.jira.webhook.secret_bytes(environ)
    except JiraConfigError as exc:
        return Finding("error", "webhook secret", "; ".join(exc.problems))
    if secret is None:
        return Finding(
            "warning",
            "webhook secret",
            "none configured: webhook signatures will not be checked",
        )
    return Finding("ok", "webhook secret", "set")
