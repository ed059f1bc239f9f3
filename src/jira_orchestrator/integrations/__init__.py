"""Integrations with outside systems (layer 5); Jira Cloud is in ``integrations.jira``."""
