"""Timestamps: the cached formatting and parsing agree with `datetime` everywhere."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jira_orchestrator._core.clock import format_timestamp, parse_timestamp


def reference_format(seconds: float) -> str:
    ms = int(seconds * 1000)
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{ms % 1000:03d}Z"
    )


def reference_parse(text: str) -> float:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@given(st.floats(min_value=0, max_value=4e9) | st.integers(0, 4_000_000_000).map(float))
def test_format_and_parse_agree_with_datetime(seconds: float) -> None:
    text = format_timestamp(seconds)
    assert text == reference_format(seconds)
    assert parse_timestamp(text) == pytest.approx(reference_parse(text), abs=1e-6)
    assert parse_timestamp(text) == parse_timestamp(text[:-1] + "Z")  # an equal string


def test_alternating_seconds_format_the_same() -> None:
    now = 1_800_000_000.4
    for _ in range(3):
        assert format_timestamp(now) == "2027-01-15T08:00:00.400Z"
        assert format_timestamp(now + 30) == "2027-01-15T08:00:30.400Z"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "x" * 23 + "Z",
        "2026-12-03T16:55:2a.123Z",
        "2026-12-03T16:55:21.12aZ",
        "2026-12-03T16:55:21.+12Z",
        "2026-13-03T16:55:21.123Z",
        "２026-12-03T16:55:21.123Z",
    ],
)
def test_malformed_timestamps_raise_value_error(bad: str) -> None:
    parse_timestamp(format_timestamp(1_800_000_000.0))  # a parse before, cached
    with pytest.raises(ValueError):  # noqa: PT011 - datetime's own message
        parse_timestamp(bad)


def test_other_iso_forms_still_parse() -> None:
    assert parse_timestamp("2026-12-03T16:55:21Z") == reference_parse("2026-12-03T16:55:21Z")
    assert parse_timestamp("2026-12-03T17:55:21.5+01:00") == reference_parse(
        "2026-12-03T16:55:21.500Z"
    )
    assert parse_timestamp("2026-12-03T16:55:21") == reference_parse("2026-12-03T16:55:21Z")
