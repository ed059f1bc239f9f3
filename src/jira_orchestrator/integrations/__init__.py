"""Integrations with outside systems (layer 5); Jira Cloud is in ``integrations.jira``."""

__all__: list[str] = []
