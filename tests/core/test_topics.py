"""The topic grammar and the trie index, checked against a direct reference matcher."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jira_orchestrator import InvalidTopic
from jira_orchestrator._core.topics import (
    TopicIndex,
    normalize_pattern,
    normalize_topic,
    pattern_matches,
)


@pytest.mark.parametrize(
    ("topic", "canonical"),
    [
        ("plugin/x/request", "plugin/x/request"),
        ("plugin.x.request", "plugin/x/request"),
        ("plugin.x/request", "plugin/x/request"),
        ("system", "system"),
        ("state/fastapi-backend/sync", "state/fastapi-backend/sync"),
        ("a_b:c@d~e+f=g", "a_b:c@d~e+f=g"),
    ],
)
def test_topics_are_normalised_to_slashes(topic: str, canonical: str) -> None:
    assert normalize_topic(topic) == canonical


@pytest.mark.parametrize(
    ("topic", "position", "reason"),
    [
        ("", 0, "empty"),
        ("a//b", 2, "empty segment"),
        ("a/", 2, "empty segment"),
        (".a", 0, "empty segment"),
        ("a/b c", 3, "' '"),
        ("a/é", 2, "'é'"),
        ("a/*", 2, "wildcards"),
        ("a" * 600, 512, "longer"),
    ],
)
def test_malformed_topics_name_the_position(topic: str, position: int, reason: str) -> None:
    with pytest.raises(InvalidTopic) as caught:
        normalize_topic(topic)
    assert caught.value.position == position
    assert reason in caught.value.reason
    assert isinstance(caught.value, ValueError)


def test_a_topic_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(InvalidTopic, match="string"):
        normalize_topic(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pattern", "position"),
    [("a/**/b", 2), ("**/a", 0), ("a/b*", 3), ("a/*b", 2), ("a/***", 2)],
)
def test_wildcards_must_be_whole_segments_and_double_star_last(pattern: str, position: int) -> None:
    with pytest.raises(InvalidTopic) as caught:
        normalize_pattern(pattern)
    assert caught.value.position == position


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("plugin/**", "plugin/a/request", True),
        ("plugin/**", "plugin/a", True),
        ("plugin/**", "plugin", False),
        ("plugin/*", "plugin/a/request", False),
        ("plugin/*/request", "plugin/a/request", True),
        ("*/*/request", "plugin/a/request", True),
        ("**", "anything/at/all", True),
        ("a/b", "a/b", True),
        ("a/b", "a/b/c", False),
    ],
)
def test_pattern_semantics(pattern: str, topic: str, expected: bool) -> None:
    assert pattern_matches(pattern, topic) is expected
    index: TopicIndex[str] = TopicIndex()
    index.add(pattern, "entry")
    assert (index.match(topic) == ("entry",)) is expected


SEGMENTS = st.sampled_from(["a", "b", "c", "plugin", "x-y"])
TOPICS = st.lists(SEGMENTS, min_size=1, max_size=5).map("/".join)
PATTERNS = st.lists(
    st.sampled_from(["a", "b", "c", "plugin", "x-y", "*"]), min_size=1, max_size=5
).flatmap(lambda segments: st.sampled_from(["/".join(segments), "/".join([*segments, "**"])]))


@given(patterns=st.lists(PATTERNS, max_size=30), topics=st.lists(TOPICS, min_size=1, max_size=10))
def test_index_agrees_with_the_reference_matcher(patterns: list[str], topics: list[str]) -> None:
    index: TopicIndex[int] = TopicIndex()
    for number, pattern in enumerate(patterns):
        index.add(pattern, number)
    for topic in topics:
        expected = {n for n, p in enumerate(patterns) if pattern_matches(p, topic)}
        got = index.match(topic)
        assert len(got) == len(set(got)), "an entry was returned twice"
        assert set(got) == expected


@given(
    patterns=st.lists(PATTERNS, min_size=1, max_size=20),
    removals=st.lists(st.integers(min_value=0, max_value=19), max_size=20),
    topic=TOPICS,
)
def test_removal_keeps_the_index_exact(
    patterns: list[str], removals: list[int], topic: str
) -> None:
    index: TopicIndex[int] = TopicIndex()
    for number, pattern in enumerate(patterns):
        index.add(pattern, number)
    index.match(topic)  # fill the cache, so removal must invalidate it
    gone = set()
    for number in removals:
        index.remove(number)
        gone.add(number)
    expected = {n for n, p in enumerate(patterns) if n not in gone and pattern_matches(p, topic)}
    assert set(index.match(topic)) == expected
    assert len(index) == len(patterns) - len(gone & set(range(len(patterns))))


def test_removing_everything_prunes_the_trie() -> None:
    index: TopicIndex[int] = TopicIndex()
    for number in range(100):
        index.add(f"plugin/p{number}/request", number)
        index.add(f"plugin/p{number}/*", 1000 + number)
    for number in range(100):
        index.remove(number)
        index.remove(1000 + number)
    assert index._root.children == {}
    assert len(index) == 0


def test_the_same_entry_cannot_be_indexed_twice() -> None:
    index: TopicIndex[str] = TopicIndex()
    index.add("a/b", "entry")
    with pytest.raises(ValueError, match="already"):
        index.add("a/c", "entry")
