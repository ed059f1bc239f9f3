"""Layer 2: the message bus (pub/sub, request/response, dead letters) and RPC.

The seed's ``@jira-orchestrator/messagebus`` in Python spelling::

    bus = get_message_bus("your-plugin")
    bus.subscribe("plugin/your-plugin/request", handler)
    await bus.publish(topic="plugin/your-plugin/events", payload={...})
    result = await bus.request(destination="other", topic="plugin/other/request", payload={...})
"""

from jira_orchestrator._core.message import Message, MessageMetadata, MessageType
from jira_orchestrator.messagebus._bus import MessageBus, current_message, remaining_time
from jira_orchestrator.messagebus._config import DEAD_LETTER_TOPIC, BusConfig, BusStats
from jira_orchestrator.messagebus._registry import (
    close_message_bus,
    get_message_bus,
    reset_message_bus,
)
from jira_orchestrator.messagebus._subscription import (
    Handler,
    MessageFilter,
    Overflow,
    Subscription,
    SubscriptionStats,
)
from jira_orchestrator.messagebus.rpc import (
    RPCClient,
    RPCMethod,
    RPCServer,
    current_caller,
    parse_endpoint,
)

__all__ = [
    "DEAD_LETTER_TOPIC",
    "BusConfig",
    "BusStats",
    "Handler",
    "Message",
    "MessageBus",
    "MessageFilter",
    "MessageMetadata",
    "MessageType",
    "Overflow",
    "RPCClient",
    "RPCMethod",
    "RPCServer",
    "Subscription",
    "SubscriptionStats",
    "close_message_bus",
    "current_caller",
    "current_message",
    "get_message_bus",
    "parse_endpoint",
    "remaining_time",
    "reset_message_bus",
]
