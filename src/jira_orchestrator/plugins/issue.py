"""`Issue`: the unit of work the orchestrator hands a plugin's ``handle_issue`` command."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from jira_orchestrator.plugins.files import safe_name

__all__ = ["Issue"]


class Issue(BaseModel):
    """A Jira issue (or a free-text request) as a plugin receives it.

    Declare ``def handle_issue(issue: Issue)`` and the command's parameters are validated
    into it; keys are camelCase on the wire (``issueType``), unknown keys are ignored.
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )

    key: str = ""
    summary: str = Field(min_length=1)
    description: str = ""
    issue_type: str = "Task"
    labels: list[str] = Field(default_factory=list)
    components: list[str] = Field(default_factory=list)
    files: list[str] = Field(default_factory=list)

    @property
    def text(self) -> str:
        """Summary and description, for plugins that read the request as prose."""
        return f"{self.summary}\n{self.description}".strip()

    @property
    def slug(self) -> str:
        """The key as a safe file name (``PROJ-12`` becomes ``proj-12``; ``../../x`` becomes
        ``x``): one path segment of ``[a-z0-9._-]``, see `files.safe_name`."""
        return safe_name(self.key.lower(), "issue")
