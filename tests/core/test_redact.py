"""Passwords in bus URLs never reach a log line, an error or a repr."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jira_orchestrator import JiraOrchestratorError
from jira_orchestrator._core.redact import redact_url
from jira_orchestrator.messagebus import close_message_bus, get_message_bus, reset_message_bus

SECRET = "S3cretPassw0rd"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"nats://admin:{SECRET}@127.0.0.1:4222", "nats://admin:***@127.0.0.1:4222"),
        ("nats://token-only@host:4222", "nats://***@host:4222"),
        (
            f"nats://a:{SECRET}@h1,nats://b:{SECRET}@h2?ack_wait=3",
            "nats://a:***@h1,nats://b:***@h2?ack_wait=3",
        ),
        (f"nats://u:p@ss{SECRET}@h", "nats://u:***@h"),
        (f"nats://h:4222?password={SECRET}&ack_wait=1", "nats://h:4222?password=***&ack_wait=1"),
        ("memory://", "memory://"),
        ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
    ],
)
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@given(
    st.text(
        alphabet=st.characters(blacklist_characters="/,?#@", blacklist_categories=("Cs",)),
        min_size=1,
    ),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1),
)
def test_no_password_survives(password: str, host: str) -> None:
    url = f"nats://user:{password}XyZ@{host}:4222"
    assert f"{password}XyZ" not in redact_url(url)


async def test_a_bus_that_cannot_connect_never_shows_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("nats")
    reset_message_bus()
    url = f"nats://admin:{SECRET}@127.0.0.1:1?connect_timeout=0.5&reconnect_wait=0.05"
    bus = get_message_bus("probe", url)
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(JiraOrchestratorError) as caught:
            await bus.publish(topic="plugin/probe/events", payload={"n": 1})
        assert "admin:***@127.0.0.1:1" in str(caught.value)
        assert SECRET not in str(caught.value)
        assert SECRET not in repr(bus)
        assert SECRET not in caplog.text
    finally:
        await close_message_bus()
