"""``python -m jira_orchestrator.cli``: the ``jira-orchestrator`` command."""

from jira_orchestrator.cli import main

main()
