"""The example ecosystem's plugins do real, checkable work."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from jira_orchestrator.messagebus import MessageBus
from jira_orchestrator.plugins import Plugin, load_plugin

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plugins"
BusFactory = Callable[[str], MessageBus]


def load(name: str) -> Plugin:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / name / "plugin.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugin: Plugin = module.plugin
    return plugin


async def command(bus: MessageBus, plugin: str, which: str, **parameters: Any) -> Any:
    return await bus.request(
        topic=f"plugin/{plugin}/request",
        payload={"command": which, "parameters": parameters},
        timeout=5,
    )


def test_every_example_is_a_valid_plugin_with_an_entry_point() -> None:
    names = sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir())
    python = [name for name in names if load_plugin(EXAMPLES / name).manifest.runtime is None]
    assert len(python) >= 5
    for name in names:
        info = load_plugin(EXAMPLES / name)
        assert not info.problems, info.problems
        assert info.agents, f"{name} declares no agent"
        if name in python:
            assert (EXAMPLES / name / "plugin.py").is_file()
        else:  # a plugin in another language: its sources, and how to build them
            assert info.manifest.runtime is not None
            assert info.manifest.runtime.setup, f"{name} does not say how to set it up"
            assert not (EXAMPLES / name / "plugin.py").exists()


async def test_platform_manager_provisions_a_tenant(
    start_plugin: Any, message_bus: BusFactory, tmp_path: Path
) -> None:
    await start_plugin(load("lobbi-platform-manager"))
    bus = message_bus("jira-orchestrator")
    reply = await command(
        bus,
        "lobbi-platform-manager",
        "handle_issue",
        key="PLAT-1",
        summary="Onboard tenant acme-corp on the enterprise plan",
        description="They need SSO through their SAML provider.",
    )
    assert reply["status"] == "success", reply
    tenant = json.loads(
        (tmp_path / "output/lobbi-platform-manager/tenants/acme-corp.json").read_text()
    )
    assert tenant["plan"] == "enterprise"
    assert tenant["quotas"]["users"] == 10_000
    assert tenant["keycloak"]["identityProviders"] == ["saml"]
    bad = await command(bus, "lobbi-platform-manager", "create_tenant", tenant_id="Bad Id!")
    assert bad["status"] == "error"


async def test_design_system_writes_a_component_and_fails_on_demand(
    start_plugin: Any, message_bus: BusFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await start_plugin(load("frontend-design-system"))
    bus = message_bus("jira-orchestrator")
    reply = await command(
        bus,
        "frontend-design-system",
        "handle_issue",
        summary="Add a DateRangePicker to the reports page",
        description="It takes prop `startDate` and prop `endDate`.",
    )
    assert reply["result"]["component"] == "DateRangePicker"
    code = (tmp_path / "output/frontend-design-system/components/DateRangePicker.tsx").read_text()
    assert "export interface DateRangePickerProps" in code
    assert "startDate?: React.ReactNode;" in code
    monkeypatch.setenv("DEMO_FAIL", "frontend-design-system")
    failed = await command(bus, "frontend-design-system", "create_component", name="Toolbar")
    assert failed["error"] == "design-token service unreachable"
    assert failed["errorType"] == "ConnectionError"


async def test_helm_deployer_writes_a_valid_chart(
    start_plugin: Any, message_bus: BusFactory, tmp_path: Path
) -> None:
    await start_plugin(load("k8s-helm-deployer"))
    bus = message_bus("jira-orchestrator")
    reply = await command(
        bus,
        "k8s-helm-deployer",
        "handle_issue",
        summary="Deploy billing-api to the EKS cluster with 4 replicas",
    )
    assert reply["result"]["replicas"] == 4
    chart = tmp_path / "output/k8s-helm-deployer/charts/billing-api"
    deployment = yaml.safe_load((chart / "templates/deployment.yaml").read_text())
    assert deployment["kind"] == "Deployment"
    assert deployment["spec"]["replicas"] == 4
    assert yaml.safe_load((chart / "values.yaml").read_text())["replicaCount"] == 4
    bad = await command(bus, "k8s-helm-deployer", "generate_helm_chart", service="x", replicas=0)
    assert bad["status"] == "error"


async def test_exec_automator_computes_the_critical_path(
    start_plugin: Any, message_bus: BusFactory
) -> None:
    await start_plugin(load("exec-automator"))
    bus = message_bus("jira-orchestrator")
    tasks = [
        {"id": "design", "hours": 3},
        {"id": "api", "hours": 5, "depends_on": ["design"]},
        {"id": "ui", "hours": 2, "depends_on": ["design"]},
        {"id": "release", "hours": 1, "depends_on": ["api", "ui"]},
    ]
    reply = await command(bus, "exec-automator", "plan", tasks=tasks)
    assert reply["result"]["criticalPath"] == ["design", "api", "release"]
    assert reply["result"]["hours"] == 9
    assert reply["result"]["order"].index("release") == 3
    cycle = await command(
        bus,
        "exec-automator",
        "plan",
        tasks=[{"id": "a", "depends_on": ["b"]}, {"id": "b", "depends_on": ["a"]}],
    )
    assert "cycle" in cycle["error"]
    checklist = await command(
        bus,
        "exec-automator",
        "handle_issue",
        key="OPS-3",
        summary="Rotate the database credentials",
        description="- revoke old keys\n- issue new keys\n- restart services",
    )
    assert checklist["result"]["steps"] == 3
    assert checklist["result"]["hours"] == 3
