"""The seed's FastAPIBackendPlugin, written with the jira-orchestrator SDK."""

import re
from pathlib import Path
from typing import Literal

from jira_orchestrator.messagebus import Message
from jira_orchestrator.plugins import Plugin

plugin = Plugin(Path(__file__).parent)
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


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
    file_path = plugin.output_dir / f"routes_{function_name(path)}.py"
    file_path.parent.mkdir(parents=True, exist_ok=True)
    file_path.write_text(code)
    plugin.state.add_to_set("endpoints", {"path": path, "method": method})
    plugin.state.increment_counter("requests_processed")
    await plugin.publish_event("endpoint_created", endpoint={"path": path, "method": method})
    return {"filePath": str(file_path), "code": code, "schemaId": f"schema_{function_name(path)}"}


@plugin.command("create_model")
def create_model(name: str) -> dict:
    return {"modelName": name, "schemaId": f"schema_{name.lower()}"}


@plugin.command("setup_authentication")
def setup_authentication(method: Literal["jwt", "oauth2", "keycloak"] = "jwt") -> dict:
    return {"authConfigured": True, "method": method}


@plugin.on("routing/decision")
def on_routing_decision(message: Message) -> None:
    if message.payload.get("primaryPlugin") == plugin.id:
        plugin.state.increment_counter("requests_routed")


plugin.on("system/broadcast")(lambda m: plugin.log.info("system broadcast: %s", m.payload))

if __name__ == "__main__":
    plugin.run()
