"""``jira-orchestrator asyncapi``: an AsyncAPI 3.0 document of the protocol, valid against
the official JSON Schema (npm ``@asyncapi/specs``, pinned in tests/asyncapi/)."""

from __future__ import annotations

import copy
import fcntl
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from jira_orchestrator._core.protocol import RESERVED_TOPICS
from jira_orchestrator.cli import app

HERE = Path(__file__).resolve().parent.parent / "asyncapi"
SCHEMA = HERE / "node_modules" / "@asyncapi" / "specs" / "schemas" / "3.0.0-without-$id.json"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plugins"


@pytest.fixture(scope="session")
def validator() -> jsonschema.protocols.Validator:
    """The official AsyncAPI 3.0.0 schema, installed from the lock file when missing."""
    with (HERE / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # pytest-xdist workers install once
        if not SCHEMA.is_file():
            npm = shutil.which("npm")
            if npm is None:
                pytest.skip("npm is needed to install @asyncapi/specs (see .ci/run)")
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--prefix", str(HERE)],
                check=True,
                capture_output=True,
                timeout=300,
            )
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def generate(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["asyncapi", *args])
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def problems(validator: jsonschema.protocols.Validator, document: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message[:200]}"
        for error in validator.iter_errors(document)
    ]


def test_the_protocol_document_is_valid_asyncapi_3(validator: Any) -> None:
    document = generate()
    assert document["asyncapi"] == "3.0.0"
    assert problems(validator, document) == []
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {row.topic.replace("/", ".") for row in RESERVED_TOPICS}


def test_with_plugins_each_has_its_request_rpc_and_status_channels(validator: Any) -> None:
    document = generate("--plugins", str(EXAMPLES))
    assert problems(validator, document) == []
    channels = document["channels"]
    for plugin in sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()):
        key = plugin.replace(".", "_")
        for kind in ("request", "rpc", "status"):
            assert channels[f"{key}_{kind}"]["address"] == f"plugin.{plugin}.{kind}"
    schemas = document["components"]["schemas"]
    assert set(schemas["CommandRequest"]["properties"]) == {"command", "parameters"}
    assert {"status", "result", "error", "errorType", "callerError"} <= set(
        schemas["CommandReply"]["properties"]
    )
    rpc = document["components"]["messages"]["fastapi-backend-rpc"]["payload"]
    methods = rpc["allOf"][1]["properties"]["payload"]["allOf"][1]["properties"]["method"]
    assert {"create_endpoint", "health_check", "rpc.discover"} <= set(methods["enum"])
    request = document["operations"]["on_fastapi-backend_request"]
    assert request["action"] == "send"
    assert request["reply"]["messages"]


def test_the_validator_refuses_a_broken_document(validator: Any) -> None:
    document = copy.deepcopy(generate())
    del document["info"]["title"]
    first = next(iter(document["channels"].values()))
    first["messages"] = "not a map"
    found = problems(validator, document)
    assert any("title" in problem for problem in found)
    assert len(found) >= 2


def test_yaml_is_the_same_document(tmp_path: Path) -> None:
    out = tmp_path / "asyncapi.yaml"
    result = CliRunner().invoke(app, ["asyncapi", "--format", "yaml", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(out.read_text()) == generate()


def test_a_bad_manifest_is_named_and_nothing_is_printed(tmp_path: Path) -> None:
    folder = tmp_path / "plugins" / "broken" / ".claude-plugin"
    folder.mkdir(parents=True)
    (folder / "plugin.json").write_text('{"name": "Bad Id"}')
    result = CliRunner().invoke(app, ["asyncapi", "--plugins", str(tmp_path / "plugins")])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "plugin.json" in result.stderr
    assert "name" in result.stderr
