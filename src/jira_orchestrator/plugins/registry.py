"""The agent registry: every agent of every loaded plugin, searchable with `find_agents`.

Ranking is a weighted term match over the router's words (`plugins.text`: the same
tokenizer and stemmer, so "deployments", "deploying" and "deployed" are one word, and
``k8s`` is ``kubernetes``, on both sides). Each agent is indexed under the words of its name, tags,
keywords and capabilities (weight 3), of its intent and description (1.5), and of its
plugin's name, keywords, capabilities and context tags (1). A query word scores its best
weight in the agent (plus 0.3 of the weight of every other field holding it) times its
rarity across all agents (inverse document frequency), so "helm" counts for more than
"deployment"; the sum is scaled by the share of query words the agent matches.

Criteria add bonuses: a category equal to the agent's (4) or among its tags or its
plugin's categories (2); a capability equal to one the agent declares (3) or its plugin
provides (2); a context file matched by the agent's globs (3) or its plugin's
``routing.contextPatterns`` and skill globs (1.5). Ties are broken by plugin name, then
agent name, so results are deterministic.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from jira_orchestrator.plugins.components import AgentSpec
from jira_orchestrator.plugins.discovery import PluginInfo, discover_plugins
from jira_orchestrator.plugins.text import written_words

__all__ = ["AgentCriteria", "AgentMatch", "AgentRegistry", "glob_matches"]

_W_OWN = 3.0
_W_TEXT = 1.5
_W_PLUGIN = 1.0
_CATEGORY_OWN = 4.0
_CATEGORY_NEAR = 2.0
_CAPABILITY_OWN = 3.0
_CAPABILITY_PLUGIN = 2.0
_CONTEXT_OWN = 3.0
_CONTEXT_PLUGIN = 1.5
_PHRASE_BONUS = 1.0
_W_ALSO = 0.3

_WORD = re.compile(r"[a-z0-9][a-z0-9+#]*")
# Words of every agent file that say nothing about what an agent does, beside the
# shared stop words of `text`.
_FILLER = frozenset(["agent", "plugin"])


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


Terms = Annotated[list[Annotated[str, Field(min_length=1)]], BeforeValidator(_as_list)]


class AgentCriteria(BaseModel):
    """What to look for. Every criterion adds to the score; only ``plugins`` filters.

    Keys are snake_case or camelCase; a single string is accepted where a list is expected.
    With no query, keywords, capabilities, category or context, every agent is listed.
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    query: str = Field(default="", description="free text, e.g. the request or issue summary")
    keywords: Terms = Field(default_factory=list)
    capabilities: Terms = Field(default_factory=list)
    category: str | None = None
    context: Terms = Field(
        default_factory=list, description="file paths in the request's context, e.g. api/x.py"
    )
    plugins: Terms = Field(default_factory=list, description="only agents of these plugins")
    limit: int = Field(default=10, ge=1, le=10_000)
    min_score: float = Field(default=0.0, ge=0, description="matches must score above this")

    def is_listing(self) -> bool:
        """Whether nothing here scores, so every agent is listed."""
        return not (
            _tokens(self.query)
            or self.keywords
            or self.capabilities
            or self.category
            or self.context
        )


class AgentMatch(BaseModel):
    """One ranked result: the agent, its score and why it scored."""

    model_config = ConfigDict(frozen=True)

    agent: AgentSpec
    score: float
    reasons: tuple[str, ...] = ()

    @property
    def plugin(self) -> str:
        """The agent's plugin id."""
        return self.agent.plugin

    @property
    def name(self) -> str:
        """The agent's name within its plugin."""
        return self.agent.name

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form (what the ``query_agents`` RPC method answers)."""
        agent = self.agent
        return {
            "plugin": agent.plugin,
            "name": agent.name,
            "qualifiedName": agent.qualified_name,
            "description": agent.description,
            "category": agent.category,
            "model": agent.model,
            "tags": list(agent.tags),
            "path": agent.path,
            "score": self.score,
            "reasons": list(self.reasons),
        }


@dataclass(slots=True)
class _Entry:
    agent: AgentSpec
    terms: dict[str, tuple[float, str]]  # term -> (weight, where it was found)
    phrases: dict[str, str]  # whole tag/keyword/capability (normalised) -> where
    categories: dict[str, float]
    capabilities: dict[str, float]
    own_globs: tuple[str, ...]
    plugin_globs: tuple[str, ...]


class AgentRegistry:
    """Agents across plugins, with `find_agents`. Build it from loaded plugins.

    Not thread-safe for writes: add or remove plugins from one thread (searches may run
    concurrently with each other).
    """

    __slots__ = ("_by_name", "_by_plugin", "_document_frequency", "_entries", "_plugins")

    def __init__(self, plugins: Iterable[PluginInfo] = ()) -> None:
        self._plugins: dict[str, PluginInfo] = {}
        self._entries: list[_Entry] = []
        self._document_frequency: Counter[str] = Counter()
        self._by_name: dict[str, AgentSpec] = {}
        for plugin in plugins:
            self._plugins[plugin.name] = plugin
        self._reindex()

    @classmethod
    def from_directory(cls, root: str | os.PathLike[str]) -> AgentRegistry:
        """Discover the plugins under ``root`` and index their agents (problems are dropped;
        use `discover_plugins` to see them)."""
        return cls(discover_plugins(root).plugins)

    def add_plugin(self, plugin: PluginInfo) -> None:
        """Add or replace a plugin (by name) and its agents."""
        self._plugins[plugin.name] = plugin
        self._reindex()

    def remove_plugin(self, name: str) -> bool:
        """Drop a plugin and its agents; whether it was there."""
        if self._plugins.pop(name, None) is None:
            return False
        self._reindex()
        return True

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[AgentSpec]:
        return (entry.agent for entry in self._entries)

    @property
    def plugins(self) -> tuple[str, ...]:
        """The indexed plugin ids, sorted."""
        return tuple(sorted(self._plugins))

    def get(self, qualified_name: str) -> AgentSpec | None:
        """The agent ``<plugin>:<name>``, or None."""
        return self._by_name.get(qualified_name)

    def find_agents(
        self, criteria: AgentCriteria | Mapping[str, Any] | None = None, /, **more: Any
    ) -> list[AgentMatch]:
        """Agents ranked by how well they fit ``criteria`` (best first, at most ``limit``).

        ``criteria`` is an `AgentCriteria`, a mapping of its fields (as the ``query_agents``
        RPC method receives it), or keyword arguments. Raises `ValueError` naming every
        bad field.
        """
        wanted = _criteria(criteria, more)
        entries = (
            [e for plugin in sorted(set(wanted.plugins)) for e in self._by_plugin.get(plugin, ())]
            if wanted.plugins
            else self._entries
        )
        if wanted.is_listing():
            ordered = sorted(entries, key=lambda e: (e.agent.plugin, e.agent.name, e.agent.path))
            return [AgentMatch(agent=e.agent, score=0.0) for e in ordered[: wanted.limit]]
        terms = _query_terms(wanted)
        weights = {term: self._idf(term) for term in terms}
        matches: list[AgentMatch] = []
        for entry in entries:
            score, reasons = _score(entry, wanted, terms, weights)
            if score > wanted.min_score:
                matches.append(AgentMatch(agent=entry.agent, score=score, reasons=reasons))
        matches.sort(key=lambda m: (-m.score, m.agent.plugin, m.agent.name, m.agent.path))
        return matches[: wanted.limit]

    def query_agents(self, criteria: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """`find_agents` with JSON in and out: the body of the ``query_agents`` RPC method."""
        return [match.to_dict() for match in self.find_agents(criteria)]

    def _idf(self, term: str) -> float:
        total = len(self._entries)
        return math.log((total + 1) / (self._document_frequency.get(term, 0) + 0.5))

    def _reindex(self) -> None:
        self._entries = [
            _index(agent, plugin)
            for plugin in sorted(self._plugins.values(), key=lambda p: p.name)
            for agent in plugin.agents
        ]
        self._document_frequency = Counter(term for e in self._entries for term in e.terms)
        # Filtering by plugin must not cost a scan of every agent of a large ecosystem.
        self._by_plugin: dict[str, list[_Entry]] = {}
        for entry in self._entries:
            self._by_plugin.setdefault(entry.agent.plugin, []).append(entry)
        self._by_name = {}
        for entry in self._entries:  # the first of a duplicated name wins, as in the files
            self._by_name.setdefault(entry.agent.qualified_name, entry.agent)


def _criteria(
    criteria: AgentCriteria | Mapping[str, Any] | None, more: Mapping[str, Any]
) -> AgentCriteria:
    if isinstance(criteria, AgentCriteria) and not more:
        return criteria
    if criteria is None:
        data: dict[str, Any] = {}
    elif isinstance(criteria, AgentCriteria):
        data = criteria.model_dump()
    elif isinstance(criteria, Mapping):
        data = dict(criteria)
    else:
        raise ValueError(f"criteria: expected a mapping, not {type(criteria).__name__}")
    data.update(more)
    try:
        return AgentCriteria.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"criteria.{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        ]
        raise ValueError("; ".join(problems)) from None


def _index(agent: AgentSpec, plugin: PluginInfo) -> _Entry:
    found: dict[str, dict[str, float]] = {}  # term -> {where: weight}

    def add(texts: Iterable[str], weight: float, where: str) -> None:
        for text in texts:
            for term in _tokens(text):
                fields = found.setdefault(term, {})
                fields[where] = max(weight, fields.get(where, 0.0))

    manifest = plugin.manifest
    context = manifest.extra.get("context")
    context_tags = _string_list(context.get("tags")) if isinstance(context, Mapping) else []
    plugin_capabilities = manifest.capabilities.all_terms()
    plugin_categories = _string_list(manifest.extra.get("categories")) + _string_list(
        manifest.extra.get("category")
    )
    # Generated files tag every agent with its plugin's name: that says nothing about
    # the agent itself, so it weighs as the plugin does.
    own_tags = [tag for tag in agent.tags if _phrase(tag) not in (_phrase(plugin.name), "agent")]
    add([plugin.name], _W_PLUGIN, "plugin name")
    add(manifest.keywords, _W_PLUGIN, "plugin keywords")
    add(context_tags, _W_PLUGIN, "plugin tags")
    add(plugin_capabilities, _W_PLUGIN, "plugin capabilities")
    add(manifest.routing.keywords, _W_PLUGIN, "plugin routing keywords")
    add([agent.intent or "", agent.description], _W_TEXT, "description")
    add([agent.name], _W_OWN, "name")
    add(own_tags, _W_OWN, "tags")
    add(agent.keywords, _W_OWN, "keywords")
    add(agent.capabilities, _W_OWN, "capabilities")
    terms: dict[str, tuple[float, str]] = {}
    for term, fields in found.items():
        # The best field counts fully, every other field a little: a word in both the
        # name and the description beats a word in the name alone.
        where, best = max(fields.items(), key=lambda item: (item[1], item[0]))
        terms[term] = (best + _W_ALSO * (sum(fields.values()) - best), where)

    phrases: dict[str, str] = {}
    for where, group in (
        ("plugin keywords", [*manifest.keywords, *context_tags]),
        ("tags", [*own_tags, *agent.keywords]),
    ):
        phrases.update((_phrase(text), where) for text in group)
    categories: dict[str, float] = {_phrase(c): _CATEGORY_NEAR for c in agent.tags}
    categories.update((_phrase(c), _CATEGORY_NEAR) for c in plugin_categories)
    if agent.category:
        categories[_phrase(agent.category)] = _CATEGORY_OWN
    capabilities = {_phrase(c): _CAPABILITY_PLUGIN for c in plugin_capabilities}
    capabilities.update((_phrase(c), _CAPABILITY_OWN) for c in agent.capabilities)
    plugin_globs = tuple(
        dict.fromkeys(
            [
                *manifest.routing.context_patterns,
                *(glob for skill in plugin.skills for glob in skill.context_patterns),
            ]
        )
    )
    return _Entry(
        agent=agent,
        terms=terms,
        phrases=phrases,
        categories=categories,
        capabilities=capabilities,
        own_globs=agent.context_patterns,
        plugin_globs=plugin_globs,
    )


def _query_terms(criteria: AgentCriteria) -> dict[str, str]:
    """The query's index terms, each with the word the caller wrote."""
    texts = [criteria.query, *criteria.keywords, *criteria.capabilities, criteria.category or ""]
    terms: dict[str, str] = {}
    for text in texts:
        for term, written in _words(text):
            terms.setdefault(term, written)
    return terms


def _score(
    entry: _Entry, criteria: AgentCriteria, terms: Mapping[str, str], idf: Mapping[str, float]
) -> tuple[float, tuple[str, ...]]:
    score = 0.0
    reasons: list[str] = []
    matched = 0
    for term, written in terms.items():
        hit = entry.terms.get(term)
        if hit is not None:
            matched += 1
            score += hit[0] * idf[term]
            reasons.append(f"{written!r} in {hit[1]}")
    if terms:
        # Coverage: an agent that fits three words of the query beats one that fits one
        # rare word very well.
        score *= matched / len(terms)
    for keyword in criteria.keywords:
        where = entry.phrases.get(_phrase(keyword))
        if where is not None:
            score += _PHRASE_BONUS
            reasons.append(f"keyword {keyword!r} is one of the {where}")
    if criteria.category:
        bonus = entry.categories.get(_phrase(criteria.category), 0.0)
        if bonus:
            score += bonus
            reasons.append(f"category {criteria.category!r}")
    for capability in criteria.capabilities:
        bonus = entry.capabilities.get(_phrase(capability), 0.0)
        if bonus:
            score += bonus
            owner = "agent" if bonus == _CAPABILITY_OWN else "plugin"
            reasons.append(f"capability {capability!r} of the {owner}")
    for path in criteria.context:
        own = next((g for g in entry.own_globs if glob_matches(g, path)), None)
        near = own or next((g for g in entry.plugin_globs if glob_matches(g, path)), None)
        if near is not None:
            score += _CONTEXT_OWN if own else _CONTEXT_PLUGIN
            reasons.append(f"{path!r} matches {near!r}")
    return round(score, 4), tuple(reasons)


def _tokens(text: str) -> list[str]:
    return [stem for stem, _ in _words(text)]


def _words(text: str) -> list[tuple[str, str]]:
    """(index term, word as written) pairs: the router's words (`text.written_words`:
    lower case, spellings and aliases unified, stop words dropped, stemmed), less the
    filler of agent files."""
    return [(term, raw) for term, raw in written_words(text) if term not in _FILLER]


def _phrase(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def _string_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def glob_matches(pattern: str, path: str) -> bool:
    """Whether a file glob matches a path: ``**`` spans folders, ``*`` and ``?`` do not,
    ``{a,b}`` is either; a pattern without ``/`` also matches the file name alone."""
    normalized = path.replace("\\", "/").removeprefix("./")
    regex = _glob_regex(pattern.removeprefix("./"))
    if regex.fullmatch(normalized):
        return True
    return "/" not in pattern and regex.fullmatch(normalized.rsplit("/", 1)[-1]) is not None


@lru_cache(maxsize=1024)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    index = 0
    depth = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
            continue
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "{":
            out.append("(?:")
            depth += 1
        elif char == "}" and depth:
            out.append(")")
            depth -= 1
        elif char == "," and depth:
            out.append("|")
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[index + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                index = end
        else:
            out.append(re.escape(char))
        index += 1
    out.append(")" * depth)
    return re.compile("".join(out), re.IGNORECASE if os.name == "nt" else 0)
