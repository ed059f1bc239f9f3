"""React components with typed props and a Storybook story, from the design system."""

import os
import re
from pathlib import Path

from jira_orchestrator.plugins import Issue, Plugin

plugin = Plugin(Path(__file__).parent)
STOP = {"The", "A", "An", "Add", "Create", "Build", "New", "We", "Our", "Make", "Fix", "On"}


def failing() -> bool:
    """The demo's switch: DEMO_FAIL=frontend-design-system makes every command fail."""
    return plugin.id in os.environ.get("DEMO_FAIL", "").split(",")


@plugin.command("create_component")
def create_component(name: str, props: list[str] | None = None) -> dict:
    if failing():
        raise ConnectionError("design-token service unreachable")
    if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", name):
        raise ValueError(f"component name {name!r} must be PascalCase")
    props = props or ["children"]
    fields = "\n".join(f"  {prop}?: React.ReactNode;" for prop in props)
    code = (
        f'import React from "react";\n\nexport interface {name}Props {{\n{fields}\n}}\n\n'
        f"export function {name}({{ {', '.join(props)} }}: {name}Props) {{\n"
        f'  return <div className="ds-{name.lower()}">{{{props[0]}}}</div>;\n}}\n'
    )
    story = f'import {{ {name} }} from "./{name}";\n\nexport default {{ component: {name} }};\n'
    plugin.output_path("components", f"{name}.tsx").write_text(code)
    plugin.output_path("components", f"{name}.stories.tsx").write_text(story)
    return {"component": name, "files": [f"{name}.tsx", f"{name}.stories.tsx"], "props": props}


@plugin.command("handle_issue")
def handle_issue(issue: Issue) -> dict:
    """Build the component the issue names: its first PascalCase word that is not filler."""
    words = re.findall(r"\b[A-Z][a-z]+(?:[A-Z][a-z]+)*\b", issue.text)
    candidates = [w for w in words if w not in STOP]
    name = candidates[0] if candidates else "Widget"
    props = re.findall(r"\bprop(?:erty|s)?\s+`?([a-z][A-Za-z]*)", issue.text)
    return create_component(name, props or None)


if __name__ == "__main__":
    plugin.run()
