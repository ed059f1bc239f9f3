"""Helm charts for services on Kubernetes: Chart.yaml, values.yaml and a Deployment."""

import re
from pathlib import Path

import yaml

from jira_orchestrator.plugins import Issue, Plugin

plugin = Plugin(Path(__file__).parent)


@plugin.command("generate_helm_chart")
def generate_helm_chart(service: str, image: str = "", replicas: int = 2, port: int = 8080) -> dict:
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,51}[a-z0-9])?", service):
        raise ValueError(f"service {service!r} is not a valid Kubernetes name")
    if not 1 <= replicas <= 100:
        raise ValueError(f"replicas must be 1..100, not {replicas}")
    image = image or f"registry.example.com/{service}:latest"
    repository, _, tag = image.rpartition(":")
    chart = {"apiVersion": "v2", "name": service, "version": "0.1.0", "appVersion": tag}
    values = {
        "replicaCount": replicas,
        "image": {"repository": repository, "tag": tag},
        "service": {"port": port},
        "resources": {"limits": {"cpu": "500m", "memory": "512Mi"}},
    }
    labels = {"app.kubernetes.io/name": service}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": service, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {"name": service, "image": image, "ports": [{"containerPort": port}]}
                    ]
                },
            },
        },
    }
    root = plugin.output_path("charts", service)
    (root / "templates").mkdir(parents=True, exist_ok=True)
    for name, document in (
        ("Chart.yaml", chart),
        ("values.yaml", values),
        ("templates/deployment.yaml", deployment),
    ):
        (root / name).write_text(yaml.safe_dump(document, sort_keys=False))
    return {"chart": str(root), "service": service, "replicas": replicas, "image": image}


@plugin.command("handle_issue")
def handle_issue(issue: Issue) -> dict:
    """Chart the service the issue names, with the replica count it asks for."""
    text = issue.text.lower()
    named = re.search(r"(?:deploy|ship|release|chart for|roll out)\s+(?:the\s+)?([a-z0-9-]+)", text)
    replicas = re.search(r"(\d+)\s+(?:replicas|pods|instances)", text)
    service = named.group(1) if named else issue.slug
    return generate_helm_chart(service, replicas=int(replicas.group(1)) if replicas else 2)


if __name__ == "__main__":
    plugin.run()
