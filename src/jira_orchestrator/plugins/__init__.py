"""Plugins: manifests, discovery of plugin folders, the agent registry and the runtime.

from jira_orchestrator.plugins import load_manifest, discover_plugins

manifest = load_manifest("plugins/fastapi-backend")       # raises ManifestError
catalog = discover_plugins("plugins")                      # never raises for a bad plugin
matches = catalog.registry().find_agents(query="helm chart for keycloak on EKS")
"""

from jira_orchestrator.plugins.components import (
    AgentSpec,
    CommandSpec,
    Component,
    ComponentKind,
    FrontMatterError,
    SkillSpec,
    load_components,
    parse_front_matter,
)
from jira_orchestrator.plugins.discovery import (
    PluginCatalog,
    PluginInfo,
    discover_plugins,
    is_plugin_dir,
    load_plugin,
)
from jira_orchestrator.plugins.files import PathOutsideFolder, confined, safe_name
from jira_orchestrator.plugins.issue import Issue
from jira_orchestrator.plugins.manifest import (
    MANIFEST_PATH,
    Capabilities,
    CircuitBreakerConfig,
    CommunicationConfig,
    ErrorHandlingConfig,
    FallbackConfig,
    MessageBusConfig,
    OrchestrationConfig,
    PersistenceConfig,
    PluginManifest,
    RetryPolicyConfig,
    RoutingConfig,
    RpcConfig,
    RuntimeConfig,
    SharingConfig,
    StateManagementConfig,
    load_manifest,
    manifest_json_schema,
    manifest_json_schema_text,
    manifest_path,
    parse_manifest,
    validate_manifest,
)
from jira_orchestrator.plugins.registry import (
    AgentCriteria,
    AgentMatch,
    AgentRegistry,
    glob_matches,
)
from jira_orchestrator.plugins.runtime import CommandRejected, Plugin, PluginMetrics

__all__ = [
    "MANIFEST_PATH",
    "AgentCriteria",
    "AgentMatch",
    "AgentRegistry",
    "AgentSpec",
    "Capabilities",
    "CircuitBreakerConfig",
    "CommandRejected",
    "CommandSpec",
    "CommunicationConfig",
    "Component",
    "ComponentKind",
    "ErrorHandlingConfig",
    "FallbackConfig",
    "FrontMatterError",
    "Issue",
    "MessageBusConfig",
    "OrchestrationConfig",
    "PathOutsideFolder",
    "PersistenceConfig",
    "Plugin",
    "PluginCatalog",
    "PluginInfo",
    "PluginManifest",
    "PluginMetrics",
    "RetryPolicyConfig",
    "RoutingConfig",
    "RpcConfig",
    "RuntimeConfig",
    "SharingConfig",
    "SkillSpec",
    "StateManagementConfig",
    "confined",
    "discover_plugins",
    "glob_matches",
    "is_plugin_dir",
    "load_components",
    "load_manifest",
    "load_plugin",
    "manifest_json_schema",
    "manifest_json_schema_text",
    "manifest_path",
    "parse_front_matter",
    "parse_manifest",
    "safe_name",
    "validate_manifest",
]
