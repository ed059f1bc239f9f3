"""Tenants on the Lobbi platform: a Keycloak realm, clients and plan quotas per tenant."""

import json
import re
from pathlib import Path
from typing import Literal

from jira_orchestrator.plugins import Issue, Plugin

plugin = Plugin(Path(__file__).parent)
Plan = Literal["starter", "pro", "enterprise"]
QUOTAS = {
    "starter": {"users": 25, "storageGb": 10, "apiCallsPerDay": 10_000},
    "pro": {"users": 250, "storageGb": 100, "apiCallsPerDay": 250_000},
    "enterprise": {"users": 10_000, "storageGb": 5_000, "apiCallsPerDay": 10_000_000},
}


@plugin.command("create_tenant")
def create_tenant(tenant_id: str, plan: Plan = "starter", sso: bool = False) -> dict:
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,62}", tenant_id):
        raise ValueError(f"tenant id {tenant_id!r} must be lowercase letters, digits and '-'")
    tenant = {
        "tenantId": tenant_id,
        "plan": plan,
        "quotas": QUOTAS[plan],
        "keycloak": {
            "realm": f"lobbi-{tenant_id}",
            "clients": [f"{tenant_id}-web", f"{tenant_id}-api"],
            "identityProviders": ["saml"] if sso else [],
        },
    }
    path = plugin.output_path("tenants", f"{tenant_id}.json")
    path.write_text(json.dumps(tenant, indent=2) + "\n")
    plugin.state.add_to_set("tenants", tenant_id)
    return {"filePath": str(path), **tenant}


@plugin.command("handle_issue")
def handle_issue(issue: Issue) -> dict:
    """Onboard the tenant the issue names, on the plan it mentions."""
    text = issue.text.lower()
    named = re.search(r"(?:tenant|customer|client|for)\s+[\"'`]?([a-z0-9][a-z0-9-]+)", text)
    plan = next((p for p in ("enterprise", "pro", "starter") if p in text), "starter")
    tenant_id = named.group(1) if named else issue.slug
    return create_tenant(tenant_id, plan, sso="sso" in text or "saml" in text)


if __name__ == "__main__":
    plugin.run()
