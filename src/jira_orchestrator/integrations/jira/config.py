"""The Jira configuration: one TOML file (``jira-orchestrator.toml``), validated by pydantic.

Secrets are never in the file: it names the environment variables that hold them
(``auth.tokenEnv``, ``auth.bearerTokenEnv``, ``webhook.secretEnv``), read when the
configuration is used. ``jira-orchestrator jira init`` prints a commented file,
``jira-orchestrator jira schema`` its JSON Schema (``schemas/jira-config.schema.json``).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from jira_orchestrator.integrations.jira.errors import JiraConfigError

__all__ = [
    "CONFIG_FILE",
    "AuthConfig",
    "JiraConfig",
    "JiraSettings",
    "PollConfig",
    "RoutingConfig",
    "TransitionsConfig",
    "WebhookConfig",
    "WriteBackConfig",
    "config_json_schema_text",
    "load_config",
    "parse_config",
]

CONFIG_FILE = "jira-orchestrator.toml"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PROJECT_KEY = re.compile(r"^[A-Z][A-Z0-9_]{0,49}$")

EnvName = Annotated[str, Field(pattern=_ENV_NAME.pattern, max_length=200)]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class AuthConfig(_Model):
    """How to sign in: email + API token (basic auth), or a bearer token."""

    email: str | None = Field(
        default=None, description="The Atlassian account's email (basic auth)."
    )
    token_env: EnvName | None = Field(
        default=None, description="The environment variable holding the API token (with email)."
    )
    token: str | None = Field(
        default=None,
        description="The API token itself: accepted only for a site on a loopback address"
        " (the local sandbox); a real site's token comes from tokenEnv.",
    )
    bearer_token_env: EnvName | None = Field(
        default=None, description="The environment variable holding a bearer token (instead)."
    )

    @model_validator(mode="after")
    def _one_way(self) -> AuthConfig:
        if self.token is not None and self.token_env is not None:
            raise ValueError("give tokenEnv or token, not both")
        basic = self.email is not None or self.token_env is not None or self.token is not None
        if basic and self.bearer_token_env is not None:
            raise ValueError("give either email + tokenEnv, or bearerTokenEnv, not both")
        if not basic and self.bearer_token_env is None:
            raise ValueError("give email + tokenEnv (an API token), or bearerTokenEnv")
        if basic and (self.email is None or (self.token_env is None and self.token is None)):
            raise ValueError("email and tokenEnv go together")
        if self.email is not None and "@" not in self.email:
            raise ValueError(f"email: not an email address: {self.email!r}")
        return self

    def headers(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The ``Authorization`` header; raises `JiraConfigError` naming a missing variable."""
        import base64

        env = os.environ if environ is None else environ
        name = self.bearer_token_env or self.token_env
        secret = self.token if name is None else env.get(name, "")
        if not secret:
            raise JiraConfigError([f"auth: the environment variable {name} is not set or empty"])
        if self.bearer_token_env is not None:
            return {"Authorization": f"Bearer {secret}"}
        raw = f"{self.email}:{secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}


class WebhookConfig(_Model):
    """The webhook receiver (``POST /webhooks/jira``)."""

    secret_env: EnvName | None = Field(
        default=None,
        description="The environment variable holding the webhook's secret; without it,"
        " signatures are not checked (only for a receiver that nobody else can reach).",
    )
    secret: str | None = Field(
        default=None,
        description="The secret itself: accepted only for a site on a loopback address"
        " (the local sandbox).",
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)

    @model_validator(mode="after")
    def _one_secret(self) -> WebhookConfig:
        if self.secret is not None and self.secret_env is not None:
            raise ValueError("give secretEnv or secret, not both")
        return self

    def secret_bytes(self, environ: Mapping[str, str] | None = None) -> bytes | None:
        """The webhook secret, or None when signatures are not checked."""
        if self.secret is not None:
            return self.secret.encode()
        if self.secret_env is None:
            return None
        value = (os.environ if environ is None else environ).get(self.secret_env, "")
        if not value:
            raise JiraConfigError(
                [f"webhook: the environment variable {self.secret_env} is not set or empty"]
            )
        return value.encode()


class WriteBackConfig(_Model):
    """How a decision and its outcome show in Jira."""

    comment: bool = Field(default=True, description="Comment the decision and the outcome (ADF).")
    label: bool = Field(default=True, description="Label the issue with labelPrefix + the plugin.")
    label_prefix: str = Field(default="routed:", min_length=1, max_length=100, pattern=r"^\S+$")
    component: bool = Field(
        default=False, description="Set a component per plugin (see components)."
    )
    components: dict[str, str] = Field(
        default_factory=dict, description="Plugin -> component name (default: the plugin's)."
    )
    assignees: dict[str, str] = Field(
        default_factory=dict, description="Plugin -> the accountId to assign its issues to."
    )


class TransitionsConfig(_Model):
    """The workflow transition (by name or id) applied after the work."""

    completed: str | None = None
    failed: str | None = None


class RoutingConfig(_Model):
    """What to do when the router is unsure."""

    min_confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    triage_label: str = Field(
        default="needs-triage", min_length=1, max_length=100, pattern=r"^\S+$"
    )


class PollConfig(_Model):
    """The JQL poller, for sites that cannot send webhooks (``serve --poll``)."""

    interval_seconds: float = Field(default=60.0, gt=0, le=86_400)
    overlap_seconds: float = Field(default=120.0, ge=0, le=86_400)
    jql: str | None = Field(default=None, description="Extra JQL, ANDed with the projects.")


class JiraSettings(_Model):
    """The Jira site and what the orchestrator does there."""

    site: str = Field(description="The site's base URL, e.g. https://your-team.atlassian.net")
    projects: list[str] = Field(min_length=1, description="The project keys to act on.")
    auth: AuthConfig
    webhook: WebhookConfig = Field(default_factory=lambda: WebhookConfig.model_validate({}))
    write_back: WriteBackConfig = Field(default_factory=lambda: WriteBackConfig.model_validate({}))
    transitions: TransitionsConfig = Field(
        default_factory=lambda: TransitionsConfig.model_validate({})
    )
    poll: PollConfig = Field(default_factory=lambda: PollConfig.model_validate({}))
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    @field_validator("site")
    @classmethod
    def _site(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {value!r}")
        if parts.username or parts.password:
            raise ValueError("the site URL must not hold credentials (use auth)")
        if parts.query or parts.fragment:
            raise ValueError(f"the site URL takes no query or fragment: {value!r}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _secrets_in_file_only_for_a_sandbox(self) -> JiraSettings:
        if self.auth.token is None and self.webhook.secret is None:
            return self
        host = urlsplit(self.site).hostname or ""
        if host != "localhost" and not _is_loopback(host):
            raise ValueError(
                "a token or secret written in the file is accepted only for a site on a"
                " loopback address (the local sandbox); use tokenEnv / secretEnv"
            )
        return self

    @field_validator("projects")
    @classmethod
    def _projects(cls, value: list[str]) -> list[str]:
        bad = [key for key in value if not _PROJECT_KEY.match(key)]
        if bad:
            raise ValueError(f"not Jira project keys (upper case, e.g. OPS): {bad}")
        return value


class JiraConfig(_Model):
    """The whole file: ``[jira]`` and ``[routing]``."""

    jira: JiraSettings
    routing: RoutingConfig = Field(default_factory=lambda: RoutingConfig.model_validate({}))


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_config(path: str | os.PathLike[str]) -> JiraConfig:
    """Read and validate a configuration file; `JiraConfigError` lists every problem."""
    where = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise JiraConfigError([f"{where}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise JiraConfigError([f"{where}: cannot read: {exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise JiraConfigError([f"{where}: not valid TOML: {exc}"]) from None
    return parse_config(data, where)


def parse_config(data: Mapping[str, Any], where: str = "<config>") -> JiraConfig:
    """Validate an already-parsed configuration (as `load_config` does)."""
    try:
        return JiraConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            location = ".".join(str(part) for part in error["loc"]) or "(top)"
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {location}: {message}")
        raise JiraConfigError(problems) from None


def config_json_schema_text() -> str:
    """The JSON Schema of the file, as ``schemas/jira-config.schema.json`` holds it."""
    schema = JiraConfig.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "jira-orchestrator.toml"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
