"""Integrations with outside systems (layer 5): Jira Cloud in `jira_orchestrator.integrations.jira`."""
