"""The seed's FastAPIBackendPlugin, written with the jira-orchestrator SDK."""

import re
from pathlib import Path
from typing import Literal

from jira_orchestrator.messagebus import Message
from jira_orchestrator.plugins import Issue, Plugin

plugin = Plugin(Path(__file__).parent)
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
ENDPOINT = re.compile(r"\b(?P<method>GET|POST|PUT|PATCH|DELETE)\s+(?P<path>/[\w/{}.-]*)")


def function_name(path: str) -> str:
    name = re.sub(r"\W", "", path.strip("/").replace("/", "_").replace("-", "_"))
    return name if name and not name[0].isdigit() else f"endpoint_{name}"


def endpoint_code(path: str, method: str, database: str) -> str:
    return (
        f'"""{method} {path}, backed by {database}."""\n\nfrom fastapi import APIRouter\n\n'
        f"router = APIRouter()\n\n\n@router.{method.lower()}({path!r})\n"
        f"async def {function_name(path)}() -> dict[str, str]:\n"
        '    return {"message": "Endpoint created"}\n'
    )


@plugin.rpc("create_endpoint")
@plugin.command("create_endpoint")
async def create_endpoint(path: str, method: HttpMethod = "GET", database: str = "mongodb") -> dict:
    code = endpoint_code(path, method, database)
    file_path = plugin.output_path(f"routes_{function_name(path)}.py")
    file_path.write_text(code)
    plugin.state.add_to_set("endpoints", {"path": path, "method": method})
    await plugin.publish_event("endpoint_created", endpoint={"path": path, "method": method})
    return {"filePath": str(file_path), "code": code, "schemaId": f"schema_{function_name(path)}"}


@plugin.command("handle_issue")  # what the orchestrator sends: build the endpoint it names
async def handle_issue(issue: Issue) -> dict:
    found = ENDPOINT.search(issue.text)
    return await create_endpoint(**(found.groupdict() if found else {"path": f"/api/{issue.slug}"}))


plugin.command("create_model")(lambda name: {"modelName": name, "schemaId": f"schema_{name}"})
plugin.command("setup_authentication")(
    lambda method="jwt": {"authConfigured": True, "method": method}
)
plugin.on("system/broadcast")(lambda m: plugin.log.info("system broadcast: %s", m.payload))


@plugin.on("routing/decision")
def on_routing_decision(message: Message) -> None:
    if message.payload.get("primaryPlugin") == plugin.id:
        plugin.state.increment_counter("requests_routed")


if __name__ == "__main__":
    plugin.run()
