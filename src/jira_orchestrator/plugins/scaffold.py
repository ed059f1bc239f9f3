"""``plugins new``: write a working plugin folder (manifest, entry point, agent, test)."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from jira_orchestrator.plugins.manifest import PLUGIN_ID_PATTERN

__all__ = ["scaffold_plugin"]

_MANIFEST = {
    "version": "0.1.0",
    "keywords": [],
    "capabilities": {"domains": [], "contexts": [], "patterns": [], "integrations": []},
    "routing": {
        "priority": 100,
        "keywords": [],
        "contextPatterns": [],
        "acceptsRoutingFrom": ["*"],
        "canRouteTo": [],
    },
    "errorHandling": {
        "circuitBreaker": {
            "enabled": True,
            "threshold": 5,
            "timeout": 60000,
            "halfOpenRetries": 3,
            "monitoringWindow": 300000,
        },
        "retryPolicy": {
            "maxRetries": 3,
            "backoff": "exponential",
            "initialDelay": 1000,
            "maxDelay": 10000,
        },
    },
}

_PLUGIN = '''\
"""The {name} plugin. Run it with: python plugin.py"""

from pathlib import Path

from jira_orchestrator.messagebus import Message
from jira_orchestrator.plugins import Plugin

plugin = Plugin(Path(__file__).parent)


@plugin.command("greet")
def greet(name: str) -> dict:
    """Say hello: a command, sent as {{"command": "greet", "parameters": {{"name": ...}}}}."""
    plugin.state.increment_counter("greetings")
    return {{"greeting": f"Hello, {{name}}!"}}


@plugin.rpc("ping")
def ping() -> dict:
    """An RPC method on plugin://{name}/rpc."""
    return {{"message": "pong"}}


@plugin.on("system/broadcast")
def on_broadcast(message: Message) -> None:
    plugin.log.info("broadcast: %s", message.payload)


if __name__ == "__main__":
    plugin.run()
'''

_TEST = '''\
"""Tests of the {name} plugin: python -m pytest tests"""

import importlib.util
from pathlib import Path

from jira_orchestrator.messagebus import RPCClient

HERE = Path(__file__).resolve().parent.parent


def load_plugin():
    spec = importlib.util.spec_from_file_location("{module}", HERE / "plugin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.plugin


async def test_starts_and_announces_ready(message_bus, start_plugin):
    statuses = []
    watcher = message_bus("test-subscriber")
    watcher.subscribe("plugin/{name}/status", lambda m: statuses.append(m.payload["status"]))
    await start_plugin(load_plugin())
    await watcher.flush()
    assert statuses == ["ready"]


async def test_greet_command(message_bus, start_plugin):
    plugin = await start_plugin(load_plugin())
    reply = await message_bus("jira-orchestrator").request(
        topic="plugin/{name}/request",
        payload={{"command": "greet", "parameters": {{"name": "Ada"}}}},
        timeout=5,
    )
    assert reply == {{"status": "success", "result": {{"greeting": "Hello, Ada!"}}}}
    assert plugin.state.get_counter("greetings") == 1


async def test_ping_over_rpc(start_plugin):
    await start_plugin(load_plugin())
    assert await RPCClient("plugin://{name}/rpc").call("ping") == {{"message": "pong"}}
'''

_AGENT = """\
---
name: {name}-agent
description: Describe what this agent is good at; the router reads it.
model: sonnet
tags: []
---
What this agent does, for humans and for the router.
"""

_PYTEST_INI = """\
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""

_README = """\
# {name}

A jira-orchestrator plugin.

- `python plugin.py` runs it (on `$JIRA_ORCHESTRATOR_BUS_URL`, default in-process).
- `python -m pytest tests` runs its tests.
- `jira-orchestrator plugins validate .` checks the manifest and agent files.
"""


def scaffold_plugin(name: str, directory: str | Path = ".", *, description: str = "") -> Path:
    """Write a new plugin folder ``directory/name`` and return its path.

    The folder is built in a temporary sibling and renamed into place at the end, so it
    either appears whole or not at all: a failure (disk full, permissions) leaves nothing
    behind and a retry can succeed. Raises ``ValueError`` for a name that cannot be a plugin
    id, ``FileExistsError`` if the folder exists, ``NotADirectoryError`` if ``directory``
    is a file, and ``OSError`` for what the file system refuses.
    """
    if not re.fullmatch(PLUGIN_ID_PATTERN, name):
        raise ValueError(
            f"{name!r} cannot be a plugin id: use letters, digits, '-' and '_' "
            f"(pattern {PLUGIN_ID_PATTERN})"
        )
    parent = Path(directory)
    root = parent / name
    if root.exists():
        raise FileExistsError(f"{root} already exists")
    if parent.exists() and not parent.is_dir():
        raise NotADirectoryError(f"{parent} is not a folder")
    manifest = {
        "name": name,
        "description": description or f"The {name} plugin.",
        **_MANIFEST,
        "communication": {
            "messagebus": {
                "enabled": True,
                "topics": [f"plugin.{name}.request", f"plugin.{name}.events"],
                "subscriptions": ["system.broadcast"],
            },
            "rpc": {"enabled": True, "endpoint": f"plugin://{name}/rpc", "methods": ["ping"]},
        },
    }
    files = {
        ".claude-plugin/plugin.json": json.dumps(manifest, indent=2) + "\n",
        "plugin.py": _PLUGIN.format(name=name),
        f"agents/{name}-agent.md": _AGENT.format(name=name),
        "tests/test_plugin.py": _TEST.format(name=name, module=name.replace("-", "_")),
        "README.md": _README.format(name=name),
        ".gitignore": "*.db\n*.db-wal\n*.db-shm\noutput/\n",
        "pytest.ini": _PYTEST_INI,
    }
    parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=parent))
    try:
        for relative, text in files.items():
            path = building / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        umask = os.umask(0o022)
        os.umask(umask)
        building.chmod(0o777 & ~umask)  # mkdtemp made it private
        try:
            building.rename(root)  # atomic; fails on a non-empty folder that appeared since
        except OSError as error:
            if error.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                raise FileExistsError(f"{root} already exists") from None
            raise
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return root
