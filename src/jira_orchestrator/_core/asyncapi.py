"""An AsyncAPI 3.0 document of the wire protocol, generated from `_core.protocol`.

Channels are NATS subjects (a topic with ``.`` for ``/``); a reserved topic of every plugin
has a ``{id}`` parameter. Each message is the envelope, its ``payload`` the protocol's model
for that channel (pydantic models give the JSON Schemas). Given plugins, the document also
has each one's own request, RPC and status channels.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from jira_orchestrator._core import protocol

__all__ = ["ASYNCAPI_VERSION", "PluginChannels", "asyncapi_document"]

ASYNCAPI_VERSION = "3.0.0"

_MODELS: dict[str, type[BaseModel]] = {
    "`CommandRequest`": protocol.CommandRequest,
    "`StatusEvent`": protocol.StatusEvent,
    "`BreakerEvent`": protocol.BreakerEvent,
    "`DeadLetterPayload`": protocol.DeadLetterPayload,
    "JSON-RPC 2.0 request": protocol.RpcRequest,
    "response": protocol.CommandReply,
}
_REPLIES: dict[str, type[BaseModel]] = {
    "`CommandRequest`": protocol.CommandReply,
    "JSON-RPC 2.0 request": protocol.RpcResponse,
}
_SCHEMAS: list[type[BaseModel]] = [
    protocol.CommandRequest,
    protocol.CommandReply,
    protocol.StatusEvent,
    protocol.BreakerEvent,
    protocol.DeadLetterPayload,
    protocol.RpcRequest,
    protocol.RpcResponse,
    protocol.ErrorResponse,
]
_REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class PluginChannels:
    """What the document says of one plugin (from its manifest)."""

    id: str
    description: str = ""
    commands: tuple[str, ...] = ()
    """Command names worth listing as examples (the protocol does not restrict them)."""
    methods: tuple[str, ...] | None = ()
    """Its RPC methods; None when it serves no RPC endpoint."""


def _key(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def _subject(topic: str) -> str:
    return topic.replace("/", ".")


def _message(name: str, summary: str, payload: dict[str, Any] | None) -> dict[str, Any]:
    envelope = {"$ref": _REF.format(model="Envelope")}
    schema = (
        envelope
        if payload is None
        else {"allOf": [envelope, {"type": "object", "properties": {"payload": payload}}]}
    )
    return {"name": name, "title": name, "summary": summary, "payload": schema}


def _schemas() -> dict[str, Any]:
    mode: Literal["validation"] = "validation"
    _, top = models_json_schema(
        [(model, mode) for model in _SCHEMAS], by_alias=True, ref_template=_REF
    )
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    schemas["Envelope"] = protocol.ENVELOPE_SCHEMA
    return schemas


def asyncapi_document(
    plugins: Sequence[PluginChannels] = (), *, version: str = "0.0.0"
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document (a JSON-able dict) of the protocol, and of ``plugins``."""
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}

    def payload_of(model: type[BaseModel] | None) -> dict[str, Any] | None:
        return None if model is None else {"$ref": _REF.format(model=model.__name__)}

    def add(
        key: str,
        topic: str,
        description: str,
        message: str,
        model: type[BaseModel] | None,
        reply: type[BaseModel] | None,
        parameters: dict[str, Any] | None = None,
        payload: dict[str, Any] | None = None,
    ) -> None:
        if message not in messages:
            messages[message] = _message(message, description, payload or payload_of(model))
        channel: dict[str, Any] = {
            "address": _subject(topic),
            "description": description,
            "messages": {message: {"$ref": f"#/components/messages/{message}"}},
        }
        if parameters:
            channel["parameters"] = parameters
        channels[key] = channel
        operation: dict[str, Any] = {
            "action": "send" if reply is not None else "receive",
            "channel": {"$ref": f"#/channels/{key}"},
            "messages": [{"$ref": f"#/channels/{key}/messages/{message}"}],
        }
        if reply is not None:
            answer = f"{message}Reply"
            if answer not in messages:
                messages[answer] = _message(answer, f"the answer to {message}", payload_of(reply))
            operation["reply"] = {
                "address": {
                    "description": "the request's NATS reply subject; for a durable request "
                    "the subject in its Jo-Reply-To header",
                    "location": "$message.header#/Jo-Reply-To",
                },
                "messages": [{"$ref": f"#/components/messages/{answer}"}],
            }
        operations[f"on_{key}"] = operation

    for row in protocol.RESERVED_TOPICS:
        plugin = "{id}" in row.topic
        description = f"{row.topic}: published by {row.publisher.replace('`', '')}"
        if row.durable:
            description += "; durable on NATS (stored under _jo.durable.)"
        add(
            _key(row.topic.replace("{id}", "id")),
            row.topic,
            description,
            _key(row.topic.replace("{id}/", "").replace("/", "-")),
            _MODELS.get(row.payload),
            _REPLIES.get(row.payload),
            {"id": {"description": "a plugin id"}} if plugin else None,
        )
    for item in plugins:
        pid = _key(item.id)
        summary = f" ({item.description})" if item.description else ""
        command: dict[str, Any] = {"$ref": _REF.format(model="CommandRequest")}
        if item.commands:
            command = {
                "allOf": [
                    command,
                    {
                        "properties": {
                            "command": {"type": "string", "examples": list(item.commands)}
                        }
                    },
                ]
            }
        add(
            f"{pid}_request",
            protocol.plugin_request(item.id),
            f"work for {item.id}{summary}",
            f"{pid}-request",
            protocol.CommandRequest,
            protocol.CommandReply,
            payload=command,
        )
        if item.methods is not None:
            methods = sorted({*item.methods, "rpc.discover"})
            add(
                f"{pid}_rpc",
                protocol.plugin_rpc(item.id),
                f"JSON-RPC 2.0 calls to {item.id}",
                f"{pid}-rpc",
                protocol.RpcRequest,
                protocol.RpcResponse,
                payload={
                    "allOf": [
                        {"$ref": _REF.format(model="RpcRequest")},
                        {"properties": {"method": {"type": "string", "enum": methods}}},
                    ]
                },
            )
        add(
            f"{pid}_status",
            protocol.plugin_status(item.id),
            f"the lifecycle of {item.id}",
            f"{pid}-status",
            protocol.StatusEvent,
            None,
        )
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "jira-orchestrator wire protocol",
            "version": version,
            "description": "Messages between jira-orchestrator and plugins in any language "
            "(docs/protocol.md). Every message is the JSON envelope; its payload depends on "
            "the channel.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "nats": {
                "host": "localhost:4222",
                "protocol": "nats",
                "description": "the bus: nats://<plugin id>:<password>@host:port under `up`",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": _schemas(), "messages": messages},
    }
