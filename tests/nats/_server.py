"""The tests' private nats-server is the library's (`jira_orchestrator.transports.nats_server`)."""

from jira_orchestrator.transports.nats_server import NatsServer, free_port, server_binary

__all__ = ["NatsServer", "free_port", "server_binary"]
