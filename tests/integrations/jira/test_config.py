"""jira-orchestrator.toml: validation names every problem, secrets stay in the environment."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jira_orchestrator.cli import app
from jira_orchestrator.integrations.jira.check import init_text
from jira_orchestrator.integrations.jira.config import (
    config_json_schema_text,
    load_config,
    parse_config,
)
from jira_orchestrator.integrations.jira.errors import JiraConfigError

REPO = Path(__file__).resolve().parents[3]


def _minimal(**jira: object) -> dict[str, object]:
    base: dict[str, object] = {
        "site": "https://team.atlassian.net",
        "projects": ["OPS"],
        "auth": {"email": "me@example.com", "tokenEnv": "JIRA_API_TOKEN"},
    }
    return {"jira": {**base, **jira}}


def test_the_commented_template_is_a_valid_configuration() -> None:
    config = parse_config(tomllib.loads(init_text()))
    assert config.jira.auth.token_env == "JIRA_API_TOKEN"
    assert config.jira.webhook.secret_env == "JIRA_WEBHOOK_SECRET"
    assert config.jira.transitions.completed == "Done"
    assert config.routing.triage_label == "needs-triage"


def test_the_sandbox_template_carries_the_sandbox_defaults() -> None:
    config = parse_config(tomllib.loads(init_text("http://127.0.0.1:9000/")))
    assert config.jira.site == "http://127.0.0.1:9000"
    assert config.jira.auth.headers({}) == {
        "Authorization": "Basic c2FuZGJveEBleGFtcGxlLmNvbTpzYW5kYm94LXRva2Vu"
    }
    assert config.jira.webhook.secret_bytes({}) == b"sandbox-secret"


def test_every_problem_is_named_with_its_path(tmp_path: Path) -> None:
    file = tmp_path / "jira-orchestrator.toml"
    file.write_text(
        '[jira]\nsite = "ftp://x"\nprojects = ["ops"]\nbogus = 1\n'
        '[jira.auth]\nemail = "me@example.com"\n[routing]\nminConfidence = 2\n'
    )
    with pytest.raises(JiraConfigError) as caught:
        load_config(file)
    problems = caught.value.problems
    assert f"{file}: jira.site: not an http(s) URL: 'ftp://x'" in problems
    assert any("jira.projects" in p and "'ops'" in p for p in problems)
    assert any(p.startswith(f"{file}: jira.bogus:") for p in problems)
    assert any("jira.auth" in p and "tokenEnv" in p for p in problems)
    assert any("routing.minConfidence" in p for p in problems)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not = [toml", "not valid TOML"),
        ("", "jira: Field required"),
        ("[jira]\nsite = 3", "jira.site"),
    ],
)
def test_broken_files_are_refused_with_a_reason(tmp_path: Path, text: str, expected: str) -> None:
    file = tmp_path / "c.toml"
    file.write_text(text)
    with pytest.raises(JiraConfigError, match=expected):
        load_config(file)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(JiraConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml")


def test_a_token_in_the_file_is_refused_for_a_real_site() -> None:
    data = _minimal(auth={"email": "me@example.com", "token": "s3cret"})
    with pytest.raises(JiraConfigError, match="loopback") as caught:
        parse_config(data)
    assert "s3cret" not in str(caught.value)
    data = _minimal(webhook={"secret": "hush"})
    with pytest.raises(JiraConfigError, match="loopback"):
        parse_config(data)


@pytest.mark.parametrize(
    "auth",
    [
        {"email": "me@example.com"},
        {"tokenEnv": "T"},
        {"email": "me@example.com", "tokenEnv": "T", "bearerTokenEnv": "B"},
        {},
        {"email": "not-an-email", "tokenEnv": "T"},
        {"email": "me@example.com", "tokenEnv": "NOT A NAME"},
    ],
)
def test_one_way_to_sign_in(auth: dict[str, str]) -> None:
    with pytest.raises(JiraConfigError, match=r"jira\.auth"):
        parse_config(_minimal(auth=auth))


def test_secrets_come_from_the_environment_and_a_missing_one_is_named() -> None:
    config = parse_config(_minimal(auth={"bearerTokenEnv": "JIRA_BEARER"}))
    assert config.jira.auth.headers({"JIRA_BEARER": "abc"}) == {"Authorization": "Bearer abc"}
    with pytest.raises(JiraConfigError, match="JIRA_BEARER is not set"):
        config.jira.auth.headers({})
    config = parse_config(_minimal(webhook={"secretEnv": "HOOK"}))
    assert config.jira.webhook.secret_bytes({"HOOK": "x"}) == b"x"
    with pytest.raises(JiraConfigError, match="HOOK is not set"):
        config.jira.webhook.secret_bytes({})


def test_the_site_url_holds_no_credentials() -> None:
    with pytest.raises(JiraConfigError, match="must not hold credentials"):
        parse_config(_minimal(site="https://me:pw@team.atlassian.net"))


def test_the_schema_file_is_in_sync() -> None:
    stored = (REPO / "schemas" / "jira-config.schema.json").read_text(encoding="utf-8")
    assert stored == config_json_schema_text(), (
        "schemas/jira-config.schema.json is stale: run"
        " `jira-orchestrator jira schema -o schemas/jira-config.schema.json`"
    )
    schema = json.loads(stored)
    assert "jira" in schema["required"]


def test_init_writes_a_file_that_check_reads(tmp_path: Path) -> None:
    target = tmp_path / "jira-orchestrator.toml"
    result = CliRunner().invoke(app, ["jira", "init", "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert load_config(target).jira.projects == ["OPS"]
