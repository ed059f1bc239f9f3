"""The ``.claude-plugin/plugin.json`` manifest: pydantic models, loading and validation.

Every section of the integration guide's manifest has a model (``capabilities``,
``routing``, ``communication``, ``errorHandling``), plus the extended sections
``stateManagement`` and ``orchestration`` and ``errorHandling.fallback``. Keys are
camelCase in JSON and snake_case in Python (either is accepted on input). Keys the models
do not know are kept, never rejected: real manifests carry ``author``, ``context``,
``permissions``, ``mcpServers`` and more, and they survive a load/dump round trip.

Durations are milliseconds in JSON (as the seed writes them) and seconds (``float``) as
Python attributes. Validation input is always the JSON form, so ``CircuitBreakerConfig(
timeout=60000)`` means 60 s; ``model_dump(by_alias=True, mode="json")`` gives the JSON
form (milliseconds) back, while ``model_dump()`` gives seconds.

Validation reports every problem at once, each as ``file: json.path: message``, in a
`ManifestError`.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from jira_orchestrator._core.errors import InvalidTopic, ManifestError
from jira_orchestrator._core.topics import normalize_pattern, normalize_topic
from jira_orchestrator.resilience import read_error_handling

__all__ = [
    "MANIFEST_PATH",
    "PLUGIN_ID_PATTERN",
    "Capabilities",
    "CircuitBreakerConfig",
    "CommunicationConfig",
    "ErrorHandlingConfig",
    "FallbackConfig",
    "MessageBusConfig",
    "OrchestrationConfig",
    "PersistenceConfig",
    "PluginManifest",
    "RetryPolicyConfig",
    "RoutingConfig",
    "RpcConfig",
    "RuntimeConfig",
    "SharingConfig",
    "StateManagementConfig",
    "load_manifest",
    "manifest_json_schema",
    "manifest_json_schema_text",
    "manifest_path",
    "parse_manifest",
    "validate_manifest",
]

MANIFEST_PATH = Path(".claude-plugin") / "plugin.json"
"""Where a plugin folder keeps its manifest."""

PLUGIN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
"""A plugin name becomes a topic segment (``plugin/<id>/request``), so it is restricted."""

_ENDPOINT = re.compile(r"^plugin://(?P<id>[A-Za-z0-9][A-Za-z0-9_-]*)/rpc$")
_SCHEMA_ID = "https://jira-orchestrator.dev/schemas/plugin.schema.json"


def _ms_to_seconds(value: object) -> object:
    # bool is an int subclass; let the strict float validator reject it with a clear message.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value / 1000
    return value


def _seconds_to_ms(value: float) -> int | float:
    ms = round(value * 1000, 6)
    return int(ms) if math.isfinite(ms) and ms.is_integer() else ms


Milliseconds = Annotated[
    float,
    BeforeValidator(_ms_to_seconds),
    Field(ge=0, allow_inf_nan=False),
    PlainSerializer(_seconds_to_ms, when_used="json"),
    WithJsonSchema({"type": "number", "minimum": 0, "description": "milliseconds"}),
]
"""A duration: milliseconds in JSON, seconds (float) in Python."""


def _check_topic(value: str) -> str:
    try:
        normalize_topic(value)
    except InvalidTopic as exc:
        raise ValueError(str(exc)) from None
    return value


def _check_pattern(value: str) -> str:
    try:
        normalize_pattern(value)
    except InvalidTopic as exc:
        raise ValueError(str(exc)) from None
    return value


def _check_endpoint(value: str | None) -> str | None:
    if value is not None and not _ENDPOINT.match(value):
        raise ValueError(f"must look like 'plugin://<plugin-id>/rpc', not {value!r}")
    return value


def _check_plugin_id(value: str) -> str:
    if not re.match(PLUGIN_ID_PATTERN, value):
        raise ValueError(
            f"{value!r} is not a plugin id: use letters, digits, '-' and '_', starting with a"
            " letter or digit (it becomes a topic segment, plugin/<id>/request)"
        )
    return value


_PROGRAM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def _check_inside(value: str) -> str:
    if value.startswith(("/", "~")) or "\\" in value or re.match(r"^[A-Za-z]:", value):
        raise ValueError(f"must be a path relative to the plugin folder, not {value!r}")
    if ".." in value.split("/"):
        raise ValueError(f"must stay inside the plugin folder ('..' is refused), not {value!r}")
    return value


def _check_program(value: str) -> str:
    if not _PROGRAM.match(value):
        raise ValueError(
            f"must be the name of a program found on PATH (such as 'node'), not {value!r}; "
            "a program of the plugin's own is its 'entry', without 'command'"
        )
    return value


def _check_state_ref(value: str) -> str:
    plugin, sep, key = value.partition("/")
    if not sep or not plugin or not key:
        raise ValueError(f"must be '<plugin-id>/<key>', not {value!r}")
    return value


NonEmptyStr = Annotated[str, Field(min_length=1)]
Topic = Annotated[str, AfterValidator(_check_topic)]
TopicPattern = Annotated[str, AfterValidator(_check_pattern)]
Endpoint = Annotated[
    str | None,
    AfterValidator(_check_endpoint),
    WithJsonSchema(
        {"type": "string", "pattern": _ENDPOINT.pattern, "description": "plugin://<id>/rpc"}
    ),
]
StateRef = Annotated[str, AfterValidator(_check_state_ref)]
InsidePath = Annotated[str, Field(min_length=1), AfterValidator(_check_inside)]
ProgramName = Annotated[
    str,
    AfterValidator(_check_program),
    WithJsonSchema({"type": "string", "pattern": _PROGRAM.pattern}),
]
PluginId = Annotated[
    str,
    AfterValidator(_check_plugin_id),
    WithJsonSchema({"type": "string", "pattern": PLUGIN_ID_PATTERN}),
]


def _duration(seconds: float, description: str = "") -> Any:
    """A duration field: its default in seconds, shown in the JSON Schema in milliseconds."""
    text = f"{description} (milliseconds)" if description else "milliseconds"
    return Field(
        default=seconds,
        json_schema_extra={"default": _seconds_to_ms(seconds), "description": text},
    )


def _title(name: str, info: object) -> str:
    return to_camel(name)


class _Section(BaseModel):
    """Base of every manifest model: camelCase aliases, strict JSON types, unknown keys kept."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        strict=True,
        field_title_generator=_title,
    )


class Capabilities(_Section):
    """What the plugin can do; the router matches requests against these lists."""

    domains: list[NonEmptyStr] = Field(default_factory=list, description="e.g. backend, api")
    contexts: list[NonEmptyStr] = Field(default_factory=list, description="e.g. python, fastapi")
    patterns: list[NonEmptyStr] = Field(default_factory=list, description="e.g. rest-api")
    integrations: list[NonEmptyStr] = Field(default_factory=list, description="e.g. mongodb")
    provides: list[NonEmptyStr] = Field(
        default_factory=list, description="capability ids provided (used by real manifests)"
    )
    requires: list[NonEmptyStr] = Field(
        default_factory=list, description="capability ids required from other plugins"
    )

    def all_terms(self) -> list[str]:
        """Every capability string, in section order, without duplicates."""
        seen: dict[str, None] = {}
        for group in (
            self.domains,
            self.contexts,
            self.patterns,
            self.integrations,
            self.provides,
        ):
            seen.update(dict.fromkeys(group))
        return list(seen)


class RoutingConfig(_Section):
    """How the orchestrator routes requests to this plugin."""

    priority: int = Field(default=100, ge=0, description="higher is preferred")
    keywords: list[NonEmptyStr] = Field(default_factory=list)
    context_patterns: list[NonEmptyStr] = Field(
        default_factory=list, description="file globs such as **/*.py"
    )
    accepts_routing_from: list[NonEmptyStr] = Field(
        default_factory=lambda: ["*"],
        description="plugin ids allowed to send requests; '*' is anyone",
    )
    can_route_to: list[NonEmptyStr] = Field(default_factory=list)


class MessageBusConfig(_Section):
    """Topics the plugin publishes on and subscribes to (``/`` or ``.`` separated)."""

    enabled: bool = True
    topics: list[Topic] = Field(default_factory=list)
    subscriptions: list[TopicPattern] = Field(default_factory=list)


class RpcConfig(_Section):
    """The plugin's RPC endpoint and the methods it offers."""

    enabled: bool = True
    endpoint: Endpoint = Field(default=None, description="defaults to plugin://<name>/rpc")
    methods: list[NonEmptyStr] = Field(
        default_factory=lambda: ["execute_command", "query_agents", "get_status"]
    )


class CommunicationConfig(_Section):
    """Message bus and RPC settings."""

    messagebus: MessageBusConfig = Field(default_factory=MessageBusConfig)
    rpc: RpcConfig = Field(default_factory=RpcConfig)


class CircuitBreakerConfig(_Section):
    """The plugin's circuit breaker."""

    enabled: bool = True
    threshold: int = Field(default=5, ge=1, description="failures that open the circuit")
    timeout: Milliseconds = _duration(60.0, "how long the circuit stays open")
    half_open_retries: int = Field(default=3, ge=1, description="successes that close it")
    monitoring_window: Milliseconds = _duration(300.0, "the window failures are counted in")
    half_open_max_calls: int = Field(default=1, ge=1, description="trial calls at once")
    slow_call_threshold: Milliseconds | None = Field(
        default=None, description="calls slower than this count as failures (milliseconds)"
    )
    failure_rate: float | None = Field(
        default=None, gt=0, le=1, description="open on this failure rate instead of a count"
    )
    minimum_calls: int = Field(default=10, ge=1, description="calls before a rate is judged")


class RetryPolicyConfig(_Section):
    """Retries of failed calls; delays grow by ``backoff`` from ``initialDelay`` to ``maxDelay``."""

    enabled: bool = True
    max_retries: int = Field(default=3, ge=0)
    backoff: Literal["constant", "linear", "exponential", "fibonacci"] = "exponential"
    initial_delay: Milliseconds = _duration(1.0)
    max_delay: Milliseconds = _duration(10.0)
    jitter: Literal["full", "equal", "none"] = "full"
    deadline: Milliseconds | None = Field(
        default=None, description="give up after this long in all (milliseconds)"
    )


class FallbackConfig(_Section):
    """What happens when the plugin cannot serve: nothing, answer an error, answer the last
    good result, or ask another plugin. Unset means "plugin" when ``fallbackPlugin`` is
    set, else "none"."""

    strategy: Literal["none", "error", "cached", "plugin"] | None = None
    fallback_plugin: PluginId | None = None


class ErrorHandlingConfig(_Section):
    """Circuit breaker, retry policy and fallback (see docs/resilience.md for the order)."""

    timeout: Milliseconds | None = Field(
        default=None, description="the longest one attempt may take (milliseconds)"
    )
    circuit_breaker: CircuitBreakerConfig = Field(default_factory=CircuitBreakerConfig)
    retry_policy: RetryPolicyConfig = Field(default_factory=RetryPolicyConfig)
    fallback: FallbackConfig = Field(default_factory=FallbackConfig)


class PersistenceConfig(_Section):
    """Where the plugin's replicated state lives; ``path`` is relative to the plugin folder."""

    enabled: bool = True
    backend: Literal["sqlite", "memory"] = "sqlite"
    path: NonEmptyStr = ".claude-plugin/state.db"


class SharingConfig(_Section):
    """State shared across plugins: keys exported, ``<plugin>/<key>`` imported, and who reads."""

    enabled: bool = True
    exports: list[NonEmptyStr] = Field(default_factory=list)
    imports: list[StateRef] = Field(default_factory=list)
    shared_with: list[NonEmptyStr] = Field(
        default_factory=lambda: ["*"], description="plugin ids allowed to import; '*' is anyone"
    )


class StateManagementConfig(_Section):
    """Persistence and cross-plugin sharing of state."""

    persistence: PersistenceConfig = Field(default_factory=PersistenceConfig)
    sharing: SharingConfig = Field(default_factory=SharingConfig)


class OrchestrationConfig(_Section):
    """Limits on the work the plugin accepts and how long ``stop()`` waits for it."""

    max_concurrent_tasks: int = Field(default=10, ge=1)
    task_timeout: Milliseconds = _duration(300.0, "the longest one task may run")
    drain_timeout: Milliseconds = _duration(10.0, "how long stop() waits for work in flight")


class RuntimeConfig(_Section):
    """How ``jira-orchestrator up`` starts a plugin that is not a Python ``plugin.py``:
    ``command`` (a program on PATH, such as ``node``) runs ``entry`` (a file of the plugin
    folder) in the plugin folder; without ``command``, ``entry`` is run itself. Paths are
    relative to the plugin folder and may not leave it."""

    command: ProgramName | None = Field(
        default=None, description="a program found on PATH that runs the entry, e.g. node"
    )
    entry: InsidePath = Field(description="the file to run, relative to the plugin folder")
    requires: list[InsidePath] = Field(
        default_factory=list,
        description="files or folders that must exist first, e.g. node_modules/nats",
    )
    setup: str | None = Field(
        default=None, description="the command that makes them, shown when one is missing"
    )


class PluginManifest(_Section):
    """A plugin's ``.claude-plugin/plugin.json``. Only ``name`` is required."""

    model_config = ConfigDict(
        title="Jira Orchestrator plugin manifest",
        json_schema_extra={
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": _SCHEMA_ID,
        },
    )

    name: PluginId = Field(description="the plugin id")
    version: str = "0.0.0"
    description: str = ""
    keywords: list[NonEmptyStr] = Field(default_factory=list)
    capabilities: Capabilities = Field(default_factory=Capabilities)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    communication: CommunicationConfig = Field(default_factory=CommunicationConfig)
    error_handling: ErrorHandlingConfig = Field(default_factory=ErrorHandlingConfig)
    state_management: StateManagementConfig = Field(default_factory=StateManagementConfig)
    orchestration: OrchestrationConfig = Field(default_factory=OrchestrationConfig)
    runtime: RuntimeConfig | None = Field(
        default=None, description="how up starts a plugin that has no plugin.py"
    )

    @property
    def rpc_endpoint(self) -> str:
        """The RPC address: ``communication.rpc.endpoint`` or ``plugin://<name>/rpc``."""
        return self.communication.rpc.endpoint or f"plugin://{self.name}/rpc"

    @property
    def extra(self) -> dict[str, Any]:
        """Top-level keys the model does not know (``author``, ``context``, ...), as given."""
        return dict(self.__pydantic_extra__ or {})


def manifest_path(path: str | os.PathLike[str]) -> Path:
    """The manifest of ``path``: itself if a file, else ``path/.claude-plugin/plugin.json``."""
    candidate = Path(path)
    if candidate.is_dir():
        if candidate.name == MANIFEST_PATH.parent.name:
            return candidate / MANIFEST_PATH.name
        return candidate / MANIFEST_PATH
    return candidate


def load_manifest(path: str | os.PathLike[str]) -> PluginManifest:
    """Load and validate a manifest from a ``plugin.json`` file or a plugin folder.

    Raises `ManifestError` listing every problem (``file: json.path: message``), also for
    a missing or unreadable file and for invalid JSON (with line and column).
    """
    file = manifest_path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ManifestError([f"{file}: $: file not found"]) from None
    except OSError as exc:
        raise ManifestError([f"{file}: $: cannot read: {exc.strerror or exc}"]) from None
    return parse_manifest(raw, source=str(file))


def validate_manifest(path: str | os.PathLike[str]) -> list[str]:
    """Every problem of the manifest at ``path`` (a file or a plugin folder); empty if valid."""
    try:
        load_manifest(path)
    except ManifestError as exc:
        return exc.problems
    return []


def parse_manifest(
    data: Mapping[str, Any] | str | bytes, *, source: str = "<manifest>"
) -> PluginManifest:
    """Validate a manifest given as a mapping or JSON text; ``source`` names it in problems."""
    document = _decode_json(data, source) if isinstance(data, str | bytes) else data
    if not isinstance(document, Mapping):
        kind = _json_type(document)
        raise ManifestError([f"{source}: $: the manifest must be a JSON object, not {kind}"])
    problems: list[str] = []
    manifest: PluginManifest | None = None
    try:
        manifest = PluginManifest.model_validate(dict(document))
    except ValidationError as exc:
        problems.extend(
            f"{source}: {_error_path(e['loc'])}: {_error_message(e)}" for e in exc.errors()
        )
    problems.extend(f"{source}: {where}: {message}" for where, message in _cross_check(document))
    if manifest is not None:
        # The resilience layer reads errorHandling itself; ask it, so what validates here
        # is exactly what a plugin can run with.
        try:
            read_error_handling(document)
        except ManifestError as error:
            problems.extend(f"{source}: {problem}" for problem in error.problems)
    if problems:
        raise ManifestError(problems)
    assert manifest is not None
    return manifest


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema of ``plugin.json`` (the input form: camelCase keys, milliseconds)."""
    return PluginManifest.model_json_schema(by_alias=True, mode="validation")


def manifest_json_schema_text() -> str:
    """The JSON Schema as the text stored in ``schemas/plugin.schema.json``."""
    return json.dumps(manifest_json_schema(), indent=2, ensure_ascii=False) + "\n"


def _decode_json(data: str | bytes, source: str) -> object:
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ManifestError(
                [f"{source}: $: not UTF-8 text (byte {exc.start}: {exc.reason})"]
            ) from None
    else:
        text = data
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(
            [f"{source}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}"]
        ) from None
    except RecursionError:
        raise ManifestError([f"{source}: $: JSON nested too deeply"]) from None


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null" if value is None else type(value).__name__


def _error_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or "$"


def _error_message(error: Mapping[str, Any]) -> str:
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    elif error["type"] != "missing" and "input" in error:
        value = error["input"]
        if isinstance(value, Mapping | list):
            message += f" (got {_json_type(value)})"
        else:
            shown = json.dumps(value) if _is_json_scalar(value) else repr(value)
            message += f" (got {shown[:60]})"
    if error["type"] == "missing":
        message = "required field is missing"
    return message


def _is_json_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _cross_check(document: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Rules that span fields; read leniently, as the field types are checked elsewhere."""
    found: list[tuple[str, str]] = []
    name = document.get("name")
    communication = _section(document, "communication")
    endpoint = _section(communication, "rpc").get("endpoint")
    if isinstance(name, str) and isinstance(endpoint, str):
        match = _ENDPOINT.match(endpoint)
        if match and match.group("id") != name:
            found.append(
                (
                    "communication.rpc.endpoint",
                    f"names plugin {match.group('id')!r} but the manifest's name is {name!r}",
                )
            )
    fallback = _section(_section(document, "errorHandling"), "fallback")
    if isinstance(name, str) and fallback.get("fallbackPlugin") == name:
        found.append(
            ("errorHandling.fallback.fallbackPlugin", "a plugin cannot fall back to itself")
        )
    if isinstance(name, str):
        found.extend(_claims(name, _section(communication, "messagebus")))
    return found


# Topics a plugin may watch on another plugin: what it announces to everyone.
_PUBLIC = frozenset({"events", "status"})
# Topics only the orchestrator publishes (a plugin sending them would speak for it).
_ORCHESTRATOR_OWNED = frozenset({"routing", "orchestration"})


def _claims(name: str, messagebus: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Topics a manifest declares beyond its own scope: they would become its NATS
    permissions (``nats-config``), so a plugin could grant itself another's subjects."""
    found: list[tuple[str, str]] = []
    for key, publish in (("topics", True), ("subscriptions", False)):
        entries = messagebus.get(key)
        if not isinstance(entries, list):
            continue
        for index, entry in enumerate(entries):
            if isinstance(entry, str):
                why = _claim(name, [s for s in re.split(r"[./]", entry) if s], publish)
                if why is not None:
                    found.append((f"communication.messagebus.{key}[{index}]", why))
    return found


def _claim(name: str, segments: list[str], publish: bool) -> str | None:
    if not segments:
        return None
    head, owner = segments[0], segments[1] if len(segments) > 1 else None
    if head in ("*", "**"):
        return "a pattern over every topic is wider than the plugin's own scope"
    if head in ("plugin", "state"):
        if owner == name:
            return None
        if head == "plugin" and not publish and len(segments) == 3 and segments[2] in _PUBLIC:
            return None  # watching other plugins' announcements (``plugin/*/events`` too)
        if owner in (None, "*", "**"):
            return f"a pattern over other plugins' {head} topics is wider than the plugin's scope"
        verb = "publishes on" if publish else "subscribes to"
        how = (
            "state/.../export through stateManagement.sharing.imports"
            if head == "state"
            else ("routing.canRouteTo for requests" if publish else "only its events and status")
        )
        return f"{verb} a topic of plugin {owner!r}, which only that plugin may (use {how})"
    if publish and head in _ORCHESTRATOR_OWNED:
        return f"{head}/ topics are the orchestrator's: a plugin may not publish them"
    return None


def _section(document: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = document.get(key)
    return value if isinstance(value, Mapping) else {}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
