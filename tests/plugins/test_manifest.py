"""The plugin.json models: defaults, units, unknown keys, and problems reported all at once."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from jira_orchestrator import ManifestError
from jira_orchestrator.plugins import (
    CircuitBreakerConfig,
    PluginManifest,
    load_manifest,
    manifest_json_schema,
    manifest_json_schema_text,
    parse_manifest,
    validate_manifest,
)

REPO = Path(__file__).resolve().parents[2]

# The integration guide's Quick Start manifest, verbatim.
SEED: dict[str, Any] = {
    "name": "your-plugin",
    "version": "1.0.0",
    "capabilities": {
        "domains": ["backend", "api"],
        "contexts": ["python", "fastapi"],
        "patterns": ["rest-api"],
        "integrations": ["mongodb", "keycloak"],
    },
    "routing": {
        "priority": 100,
        "keywords": ["backend", "api", "fastapi"],
        "contextPatterns": ["**/*.py", "**/api/**/*"],
        "acceptsRoutingFrom": ["jira-orchestrator"],
        "canRouteTo": [],
    },
    "communication": {
        "messagebus": {
            "enabled": True,
            "topics": [
                "plugin.your-plugin.request",
                "plugin.your-plugin.response",
                "plugin.your-plugin.events",
            ],
            "subscriptions": ["system.broadcast", "jira.orchestrator.commands"],
        },
        "rpc": {
            "enabled": True,
            "endpoint": "plugin://your-plugin/rpc",
            "methods": ["execute_command", "query_agents", "get_status"],
        },
    },
    "errorHandling": {
        "circuitBreaker": {"enabled": True, "threshold": 5, "timeout": 60000, "halfOpenRetries": 3},
        "retryPolicy": {
            "maxRetries": 3,
            "backoff": "exponential",
            "initialDelay": 1000,
            "maxDelay": 10000,
        },
    },
}


def problems_of(data: Any, source: str = "x/plugin.json") -> list[str]:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(data, source=source)
    return caught.value.problems


def test_seed_manifest_loads_with_seconds_as_attributes() -> None:
    manifest = parse_manifest(SEED)
    assert manifest.name == "your-plugin"
    assert manifest.capabilities.integrations == ["mongodb", "keycloak"]
    assert manifest.routing.context_patterns == ["**/*.py", "**/api/**/*"]
    assert manifest.routing.accepts_routing_from == ["jira-orchestrator"]
    breaker = manifest.error_handling.circuit_breaker
    assert breaker.timeout == 60.0
    assert breaker.half_open_retries == 3
    assert manifest.error_handling.retry_policy.initial_delay == 1.0
    assert manifest.error_handling.retry_policy.max_delay == 10.0
    assert manifest.rpc_endpoint == "plugin://your-plugin/rpc"


def test_json_dump_by_alias_gives_the_file_back() -> None:
    manifest = parse_manifest(SEED)
    assert manifest.model_dump(by_alias=True, mode="json", exclude_unset=True) == SEED
    full = manifest.model_dump(by_alias=True, mode="json")
    assert full["errorHandling"]["circuitBreaker"]["timeout"] == 60000
    assert full["errorHandling"]["circuitBreaker"]["monitoringWindow"] == 300000
    assert parse_manifest(full) == manifest


def test_python_dump_is_in_seconds() -> None:
    dumped = parse_manifest(SEED).model_dump()
    assert dumped["error_handling"]["circuit_breaker"]["timeout"] == 60.0


def test_fractional_milliseconds_survive_the_round_trip() -> None:
    breaker = CircuitBreakerConfig.model_validate({"timeout": 1234.5})
    assert breaker.timeout == pytest.approx(1.2345)
    assert breaker.model_dump(by_alias=True, mode="json")["timeout"] == 1234.5


def test_defaults_are_the_seeds() -> None:
    manifest = parse_manifest({"name": "minimal"})
    assert manifest.version == "0.0.0"
    assert manifest.routing.priority == 100
    assert manifest.routing.accepts_routing_from == ["*"]
    assert manifest.communication.messagebus.enabled is True
    assert manifest.communication.rpc.methods == ["execute_command", "query_agents", "get_status"]
    assert manifest.rpc_endpoint == "plugin://minimal/rpc"
    breaker = manifest.error_handling.circuit_breaker
    assert (breaker.threshold, breaker.timeout, breaker.half_open_retries) == (5, 60.0, 3)
    assert breaker.monitoring_window == 300.0
    retry = manifest.error_handling.retry_policy
    assert (retry.max_retries, retry.backoff, retry.initial_delay, retry.max_delay) == (
        3,
        "exponential",
        1.0,
        10.0,
    )
    assert manifest.error_handling.fallback.strategy is None  # inferred by the resilience layer
    assert manifest.error_handling.fallback.fallback_plugin is None
    assert manifest.state_management.persistence.backend == "sqlite"
    assert manifest.state_management.sharing.shared_with == ["*"]
    assert manifest.orchestration.max_concurrent_tasks == 10
    assert manifest.orchestration.drain_timeout == 10.0


def test_extended_sections_parse() -> None:
    manifest = parse_manifest(
        {
            "name": "stateful",
            "stateManagement": {
                "persistence": {"backend": "memory"},
                "sharing": {"exports": ["endpoints"], "imports": ["jira-orchestrator/issues"]},
            },
            "orchestration": {"maxConcurrentTasks": 2, "taskTimeout": 1500},
            "errorHandling": {"fallback": {"strategy": "plugin", "fallbackPlugin": "backup"}},
        }
    )
    assert manifest.state_management.persistence.backend == "memory"
    assert manifest.state_management.sharing.imports == ["jira-orchestrator/issues"]
    assert manifest.orchestration.task_timeout == 1.5
    assert manifest.error_handling.fallback.fallback_plugin == "backup"


def test_snake_case_keys_are_accepted_too() -> None:
    manifest = parse_manifest({"name": "p", "routing": {"accepts_routing_from": ["a"]}})
    assert manifest.routing.accepts_routing_from == ["a"]


def test_unknown_keys_are_kept_at_every_level() -> None:
    data = {
        "name": "p",
        "author": {"name": "Someone"},
        "mcpServers": {"x": {"command": "node"}},
        "$schema": "https://example.com/s.json",
        "capabilities": {"provides": ["a"], "flavour": "vanilla"},
        "routing": {"weight": 3},
    }
    manifest = parse_manifest(data)
    assert manifest.extra["author"] == {"name": "Someone"}
    assert manifest.extra["$schema"] == "https://example.com/s.json"
    assert manifest.routing.model_extra == {"weight": 3}
    assert manifest.model_dump(by_alias=True, mode="json", exclude_unset=True) == data


def test_every_problem_is_reported_at_once() -> None:
    bad = copy.deepcopy(SEED)
    bad["routing"]["priority"] = "high"
    bad["routing"]["keywords"] = ["ok", 3]
    bad["errorHandling"]["circuitBreaker"]["threshold"] = 0
    bad["errorHandling"]["retryPolicy"]["backoff"] = "cubic"
    bad["communication"]["messagebus"]["enabled"] = "yes"
    problems = problems_of(bad, source="plugins/x/.claude-plugin/plugin.json")
    assert problems == [
        "plugins/x/.claude-plugin/plugin.json: routing.priority: Input should be a valid"
        ' integer (got "high")',
        "plugins/x/.claude-plugin/plugin.json: routing.keywords[1]: Input should be a valid"
        " string (got 3)",
        "plugins/x/.claude-plugin/plugin.json: communication.messagebus.enabled: Input should"
        ' be a valid boolean (got "yes")',
        "plugins/x/.claude-plugin/plugin.json: errorHandling.circuitBreaker.threshold: Input"
        " should be greater than or equal to 1 (got 0)",
        "plugins/x/.claude-plugin/plugin.json: errorHandling.retryPolicy.backoff: Input should"
        " be 'constant', 'linear', 'exponential' or 'fibonacci' (got \"cubic\")",
    ]


@pytest.mark.parametrize(
    ("patch", "where", "fragment"),
    [
        ({"name": "has space"}, "name", "is not a plugin id"),
        ({"name": "a.b"}, "name", "is not a plugin id"),
        ({"version": 1}, "version", "valid string"),
        ({"keywords": "api"}, "keywords", "valid list"),
        ({"capabilities": ["api"]}, "capabilities", "(got an array)"),
        ({"routing": {"priority": -1}}, "routing.priority", "greater than or equal to 0"),
        ({"routing": {"priority": 1.5}}, "routing.priority", "valid integer"),
        ({"routing": {"priority": True}}, "routing.priority", "valid integer"),
        (
            {"communication": {"messagebus": {"topics": ["plugin//x"]}}},
            "communication.messagebus.topics[0]",
            "empty segment",
        ),
        (
            {"communication": {"messagebus": {"topics": ["plugin/*/x"]}}},
            "communication.messagebus.topics[0]",
            "wildcards are only allowed in patterns",
        ),
        (
            {"communication": {"messagebus": {"subscriptions": ["a/**/b"]}}},
            "communication.messagebus.subscriptions[0]",
            "only allowed as the last segment",
        ),
        (
            {"communication": {"rpc": {"endpoint": "http://x/rpc"}}},
            "communication.rpc.endpoint",
            "plugin://<plugin-id>/rpc",
        ),
        (
            {"communication": {"rpc": {"endpoint": "plugin://other/rpc"}}},
            "communication.rpc.endpoint",
            "names plugin 'other'",
        ),
        (
            {"errorHandling": {"circuitBreaker": {"timeout": "60s"}}},
            "errorHandling.circuitBreaker.timeout",
            "valid number",
        ),
        (
            {"errorHandling": {"circuitBreaker": {"timeout": -5}}},
            "errorHandling.circuitBreaker.timeout",
            "greater than or equal to 0",
        ),
        (
            {"errorHandling": {"retryPolicy": {"initialDelay": 5000, "maxDelay": 10}}},
            "errorHandling.retryPolicy.maxDelay",
            "must not be less than initialDelay",
        ),
        (
            {"errorHandling": {"fallback": {"strategy": "plugin"}}},
            "errorHandling.fallback.fallbackPlugin",
            'required when strategy is "plugin"',
        ),
        (
            {"errorHandling": {"fallback": {"strategy": "error", "fallbackPlugin": "other"}}},
            "errorHandling.fallback.fallbackPlugin",
            'only used with strategy "plugin"',
        ),
        (
            {"errorHandling": {"fallback": {"strategy": "plugin", "fallbackPlugin": "p"}}},
            "errorHandling.fallback.fallbackPlugin",
            "cannot fall back to itself",
        ),
        (
            {"stateManagement": {"sharing": {"imports": ["no-slash"]}}},
            "stateManagement.sharing.imports[0]",
            "'<plugin-id>/<key>'",
        ),
        (
            {"stateManagement": {"persistence": {"backend": "redis"}}},
            "stateManagement.persistence.backend",
            "'sqlite' or 'memory'",
        ),
        (
            {"orchestration": {"maxConcurrentTasks": 0}},
            "orchestration.maxConcurrentTasks",
            "greater than or equal to 1",
        ),
    ],
)
def test_each_bad_field_is_named_with_its_json_path(
    patch: dict[str, Any], where: str, fragment: str
) -> None:
    problems = problems_of({"name": "p", **patch})
    assert any(
        problem.startswith(f"x/plugin.json: {where}: ") and fragment in problem
        for problem in problems
    ), problems


def test_missing_name_is_reported() -> None:
    assert problems_of({"version": "1.0.0"}) == ["x/plugin.json: name: required field is missing"]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("[]", "x/plugin.json: $: the manifest must be a JSON object, not an array"),
        ('"text"', "x/plugin.json: $: the manifest must be a JSON object, not a string"),
        ("null", "x/plugin.json: $: the manifest must be a JSON object, not null"),
        (
            '{\n  "name": "p",\n  "version": "1.0.0",,\n}',
            "x/plugin.json: line 3, column 22: invalid JSON: Expecting property name enclosed"
            " in double quotes",
        ),
        ("", "x/plugin.json: line 1, column 1: invalid JSON: Expecting value"),
        (b"\xff\xfe{}", "x/plugin.json: $: not UTF-8 text (byte 0: invalid start byte)"),
    ],
)
def test_documents_that_are_not_manifests(document: str | bytes, expected: str) -> None:
    assert problems_of(document) == [expected]


def test_load_manifest_from_file_or_folder(write_plugin: Any) -> None:
    root = write_plugin("demo", SEED | {"name": "demo", "communication": {}})
    from_folder = load_manifest(root)
    from_file = load_manifest(root / ".claude-plugin" / "plugin.json")
    assert from_folder == from_file
    assert from_folder.name == "demo"


def test_load_manifest_names_the_file(write_plugin: Any) -> None:
    root = write_plugin("demo", {"name": "demo", "routing": {"priority": "x"}})
    with pytest.raises(ManifestError) as caught:
        load_manifest(root)
    file = root / ".claude-plugin" / "plugin.json"
    assert caught.value.problems == [
        f'{file}: routing.priority: Input should be a valid integer (got "x")'
    ]
    assert str(file) in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_load_manifest_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path / "nope.json")
    assert caught.value.problems == [f"{tmp_path / 'nope.json'}: $: file not found"]
    with pytest.raises(ManifestError, match="file not found"):
        load_manifest(tmp_path)  # a folder without .claude-plugin/plugin.json


def test_validate_manifest_returns_problems(write_plugin: Any) -> None:
    good = write_plugin("good")
    bad = write_plugin("bad", '{"name": "bad", "version": }')
    assert validate_manifest(good) == []
    [problem] = validate_manifest(bad)
    assert "line 1, column 28: invalid JSON" in problem


def test_corpus_manifests_round_trip(corpus: Path) -> None:
    files = sorted(corpus.glob("*/.claude-plugin/plugin.json"))
    assert len(files) == 35
    for file in files:
        raw = json.loads(file.read_text(encoding="utf-8"))
        manifest = load_manifest(file)
        assert manifest.model_dump(by_alias=True, mode="json", exclude_unset=True) == raw


def test_schema_file_is_in_sync() -> None:
    stored = (REPO / "schemas" / "plugin.schema.json").read_text(encoding="utf-8")
    assert stored == manifest_json_schema_text(), (
        "schemas/plugin.schema.json is stale: run"
        " `jira-orchestrator plugins schema -o schemas/plugin.schema.json`"
    )


def test_schema_describes_the_json_form() -> None:
    schema = manifest_json_schema()
    assert schema["required"] == ["name"]
    assert schema["additionalProperties"] is True
    assert "errorHandling" in schema["properties"]
    breaker = schema["$defs"]["CircuitBreakerConfig"]["properties"]
    assert breaker["timeout"]["default"] == 60000
    assert "milliseconds" in breaker["timeout"]["description"]
    assert "halfOpenRetries" in breaker


def test_model_is_importable_under_the_documented_name() -> None:
    assert load_manifest.__module__ == "jira_orchestrator.plugins.manifest"
    assert PluginManifest.model_fields["error_handling"].alias == "errorHandling"


def test_load_manifest_from_the_claude_plugin_folder(write_plugin: Any) -> None:
    root = write_plugin("demo")
    assert load_manifest(root / ".claude-plugin").name == "demo"


def test_deeply_nested_json_is_a_problem_not_a_crash() -> None:
    assert problems_of("[" * 100_000) == ["x/plugin.json: $: JSON nested too deeply"]


def test_a_fallback_plugin_alone_means_the_plugin_strategy() -> None:
    manifest = parse_manifest({"name": "p", "errorHandling": {"fallback": {"fallbackPlugin": "q"}}})
    assert manifest.error_handling.fallback.fallback_plugin == "q"
    assert manifest.error_handling.fallback.strategy is None
