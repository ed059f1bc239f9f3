"""Plans: ordered steps with dependencies and the critical path; the fallback for any issue."""

import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

from pydantic import BaseModel, Field

from jira_orchestrator.plugins import Issue, Plugin

plugin = Plugin(Path(__file__).parent)


class Task(BaseModel):
    id: str = Field(min_length=1)
    hours: float = Field(default=1.0, ge=0)
    depends_on: list[str] = Field(default_factory=list)


@plugin.command("plan")
def plan(tasks: list[Task]) -> dict:
    """Order tasks by their dependencies and find the critical path (longest chain)."""
    by_id = {task.id: task for task in tasks}
    missing = sorted({d for t in tasks for d in t.depends_on} - by_id.keys())
    if missing:
        raise ValueError(f"unknown dependencies: {', '.join(missing)}")
    try:
        order = list(TopologicalSorter({t.id: t.depends_on for t in tasks}).static_order())
    except CycleError as error:
        raise ValueError(f"dependency cycle: {' -> '.join(error.args[1])}") from None
    finish: dict[str, float] = {}
    via: dict[str, str | None] = {}
    for task_id in order:
        task = by_id[task_id]
        before = max(task.depends_on, key=lambda d: finish[d], default=None)
        finish[task_id] = (finish[before] if before else 0.0) + task.hours
        via[task_id] = before
    end = max(finish, key=lambda t: finish[t])
    path = [end]
    while (step := via[path[-1]]) is not None:
        path.append(step)
    return {"order": order, "criticalPath": path[::-1], "hours": finish[end]}


@plugin.command("handle_issue")
def handle_issue(issue: Issue) -> dict:
    """Any issue becomes a checklist: one step per bullet or sentence, each after the last."""
    lines = [
        re.sub(r"^\s*(?:[-*]|\d+[.)])\s*", "", line) for line in issue.description.splitlines()
    ]
    steps = [line.strip() for line in lines if line.strip()] or [issue.summary]
    tasks = [
        Task(id=f"step-{n}", depends_on=[f"step-{n - 1}"] if n > 1 else [])
        for n in range(1, len(steps) + 1)
    ]
    result = plan(tasks)
    checklist = "\n".join(f"- [ ] {step}" for step in steps)
    path = plugin.output_path("plans", f"{issue.slug}.md")
    path.write_text(f"# {issue.key or 'Plan'}: {issue.summary}\n\n{checklist}\n")
    return {"filePath": str(path), "steps": len(steps), "hours": result["hours"]}


if __name__ == "__main__":
    plugin.run()
