"""The topic grammar and the subscription index.

A topic is a list of segments joined by ``/`` or ``.`` (``plugin/x/request`` and
``plugin.x.request`` are the same topic; the canonical form uses ``/``). A segment is one
or more of ``A-Z a-z 0-9 _ - : @ ~ + =``. A subscription pattern may also use ``*`` for
exactly one segment and, as its last segment only, ``**`` for one or more segments.

Topics and patterns whose first segment is ``_jo`` or ``_INBOX`` are refused on every
transport: those namespaces carry the transports' own traffic (NATS reply inboxes, durable
copies, presence probes), so application code that works in memory works on NATS too.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from functools import lru_cache
from typing import Generic, TypeVar

from jira_orchestrator._core.errors import InvalidTopic

__all__ = [
    "MAX_TOPIC_LENGTH",
    "RESERVED_FIRST_SEGMENTS",
    "TopicIndex",
    "is_pattern",
    "normalize_pattern",
    "normalize_topic",
    "pattern_matches",
]

MAX_TOPIC_LENGTH = 512
_SEGMENT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-:@~+=")
_SEPARATORS = "/."
RESERVED_FIRST_SEGMENTS = frozenset({"_jo", "_INBOX"})
"""First segments kept for the transports' own traffic; no topic or pattern may use them."""


def _split(text: object, *, wildcards: bool) -> tuple[str, ...]:
    kind = "pattern" if wildcards else "topic"
    if not isinstance(text, str):
        raise InvalidTopic(repr(text), 0, f"a {kind} must be a string, not {type(text).__name__}")
    if not text:
        raise InvalidTopic(text, 0, f"a {kind} cannot be empty")
    if len(text) > MAX_TOPIC_LENGTH:
        raise InvalidTopic(text, MAX_TOPIC_LENGTH, f"longer than {MAX_TOPIC_LENGTH} characters")
    segments: list[str] = []
    start = 0
    for position, char in enumerate(text):
        if char in _SEPARATORS:
            if position == start:
                raise InvalidTopic(text, position, "empty segment")
            segments.append(text[start:position])
            start = position + 1
        elif char == "*":
            if not wildcards:
                raise InvalidTopic(text, position, "wildcards are only allowed in patterns")
        elif char not in _SEGMENT_CHARS:
            raise InvalidTopic(text, position, f"character {char!r} is not allowed")
    if start == len(text):
        raise InvalidTopic(text, len(text), "empty segment")
    segments.append(text[start:])
    if segments[0] in RESERVED_FIRST_SEGMENTS:
        raise InvalidTopic(
            text, 0, f"topics starting with {segments[0]!r} are reserved for the transports"
        )
    position = 0
    for index, segment in enumerate(segments):
        if "*" in segment:
            if segment == "**":
                if index != len(segments) - 1:
                    raise InvalidTopic(text, position, "'**' is only allowed as the last segment")
            elif segment != "*":
                offset = position + segment.index("*")
                raise InvalidTopic(text, offset, "'*' must be a whole segment")
        position += len(segment) + 1
    return tuple(segments)


@lru_cache(maxsize=8192)
def normalize_topic(topic: str) -> str:
    """Return the canonical ``/`` form of a concrete topic; raise `InvalidTopic` if malformed."""
    return "/".join(_split(topic, wildcards=False))


@lru_cache(maxsize=4096)
def normalize_pattern(pattern: str) -> str:
    """Return the canonical ``/`` form of a subscription pattern; raise `InvalidTopic`."""
    return "/".join(_split(pattern, wildcards=True))


def is_pattern(pattern: str) -> bool:
    """Whether a canonical pattern holds a wildcard."""
    return "*" in pattern


def pattern_matches(pattern: str, topic: str) -> bool:
    """Whether a canonical pattern matches a canonical topic (no index; for one-off checks)."""
    want = pattern.split("/")
    have = topic.split("/")
    for index, segment in enumerate(want):
        if segment == "**":
            return len(have) > index
        if index >= len(have) or (segment != "*" and segment != have[index]):
            return False
    return len(have) == len(want)


_T = TypeVar("_T", bound=Hashable)


class _Node(Generic[_T]):
    __slots__ = ("children", "exact", "star", "tail")

    def __init__(self) -> None:
        self.children: dict[str, _Node[_T]] = {}
        self.star: _Node[_T] | None = None
        self.exact: dict[_T, None] = {}  # insertion-ordered set of entries ending here
        self.tail: dict[_T, None] = {}  # entries whose pattern ends with '**' here


class TopicIndex(Generic[_T]):
    """A segment trie from patterns to entries.

    Matching walks the topic's segments, following the literal child and the ``*`` child
    at each level, so its cost depends on the topic's depth and the wildcards that fit it,
    not on how many subscriptions exist. Results are cached per topic until the index
    changes. Each entry is returned once per match, whatever patterns it was added under.
    """

    __slots__ = ("_cache", "_patterns", "_root")

    _CACHE_LIMIT = 4096

    def __init__(self) -> None:
        self._root: _Node[_T] = _Node()
        self._cache: dict[str, tuple[_T, ...]] = {}
        self._patterns: dict[_T, str] = {}

    def __len__(self) -> int:
        return len(self._patterns)

    def add(self, pattern: str, entry: _T) -> None:
        """Index ``entry`` under a canonical pattern (see `normalize_pattern`)."""
        if entry in self._patterns:
            raise ValueError("entry is already indexed")
        node = self._root
        segments = pattern.split("/")
        for segment in segments[:-1]:
            node = self._child(node, segment)
        last = segments[-1]
        if last == "**":
            node.tail[entry] = None
        else:
            self._child(node, last).exact[entry] = None
        self._patterns[entry] = pattern
        self._cache.clear()

    def remove(self, entry: _T) -> None:
        """Remove an entry; removing one that is not indexed does nothing."""
        pattern = self._patterns.pop(entry, None)
        if pattern is None:
            return
        path: list[tuple[_Node[_T], str]] = []
        node = self._root
        segments = pattern.split("/")
        for segment in segments[:-1]:
            path.append((node, segment))
            node = self._step(node, segment)
        last = segments[-1]
        if last == "**":
            del node.tail[entry]
        else:
            path.append((node, last))
            node = self._step(node, last)
            del node.exact[entry]
        # Prune empty branches so a long-running process with churn does not grow.
        for parent, segment in reversed(path):
            child = self._step(parent, segment)
            if child.exact or child.tail or child.children or child.star is not None:
                break
            if segment == "*":
                parent.star = None
            else:
                del parent.children[segment]
        self._cache.clear()

    def match(self, topic: str) -> tuple[_T, ...]:
        """Entries whose pattern matches a canonical topic, each once."""
        found = self._cache.get(topic)
        if found is not None:
            return found
        result: dict[_T, None] = {}
        segments = topic.split("/")
        last = len(segments)
        frontier: list[tuple[_Node[_T], int]] = [(self._root, 0)]
        while frontier:
            node, depth = frontier.pop()
            if depth == last:
                result.update(node.exact)
                continue
            if node.tail:
                result.update(node.tail)
            child = node.children.get(segments[depth])
            if child is not None:
                frontier.append((child, depth + 1))
            if node.star is not None:
                frontier.append((node.star, depth + 1))
        found = tuple(result)
        if len(self._cache) >= self._CACHE_LIMIT:
            self._cache.clear()
        self._cache[topic] = found
        return found

    def entries(self) -> Iterable[tuple[str, _T]]:
        """Every (pattern, entry) pair, in insertion order."""
        return [(pattern, entry) for entry, pattern in self._patterns.items()]

    @staticmethod
    def _child(node: _Node[_T], segment: str) -> _Node[_T]:
        if segment == "*":
            if node.star is None:
                node.star = _Node()
            return node.star
        child = node.children.get(segment)
        if child is None:
            child = node.children[segment] = _Node()
        return child

    @staticmethod
    def _step(node: _Node[_T], segment: str) -> _Node[_T]:
        child = node.star if segment == "*" else node.children.get(segment)
        assert child is not None, "index out of sync with its pattern table"
        return child
