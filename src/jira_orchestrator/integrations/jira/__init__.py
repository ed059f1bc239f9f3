"""Jira Cloud: ADF, and a local Jira sandbox (extra ``web``).

`jira_orchestrator.integrations.jira.adf` builds and reads Atlassian Document Format;
`jira_orchestrator.integrations.jira.sandbox` is a stateful Jira Cloud stand-in
(``JiraSandbox``), which needs the ``web`` extra (``pip install 'jira-orchestrator[web]'``).
"""
