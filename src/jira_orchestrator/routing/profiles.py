"""Plugin profiles: everything a plugin declares, as weighted fields of terms.

A profile has two levels, because plugins differ wildly in size (one skill, or 140
agents and commands) and a request is usually about one thing a plugin does:

- the plugin's own **meta** fields: name, keywords (with ``routing.keywords``, context
  tags, categories), capabilities, description (with the context summary);
- one **document per component** (agent, command, skill): its name, its tags and
  keywords, its description, and the start of its Markdown body (code blocks left out).

Field weights (`FieldWeights`) say how much a word counts in each field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from jira_orchestrator.plugins import Component, PluginInfo
from jira_orchestrator.plugins.text import compounds, phrases, words
from jira_orchestrator.routing.classifier import domains_of

__all__ = ["ComponentDoc", "FieldWeights", "PluginProfile", "build_profile"]

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_FRONT = re.compile(r"\A---\s*\n.*?\n(---|\.\.\.)\s*\n", re.DOTALL)
_GENERIC_TAGS = frozenset(["agent", "command", "skill"])


@dataclass(frozen=True, slots=True)
class FieldWeights:
    """How much a term counts in each field (BM25F field weights)."""

    name: float = 3.0
    keywords: float = 2.5
    capabilities: float = 2.0
    description: float = 2.0
    component_name: float = 2.5
    component_keywords: float = 2.0
    component_description: float = 2.0
    component_body: float = 0.6
    body_words: int = 400
    """How many words of a component's Markdown body are read (0: none)."""


@dataclass(frozen=True, slots=True)
class ComponentDoc:
    """One agent, command or skill as a bag of terms per field."""

    kind: str
    name: str
    description: str
    fields: Mapping[str, Mapping[str, int]]
    lengths: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class PluginProfile:
    """A plugin as the router sees it."""

    name: str
    description: str
    meta: Mapping[str, Mapping[str, int]]
    meta_lengths: Mapping[str, int]
    components: tuple[ComponentDoc, ...]
    domains: tuple[str, ...]
    capability_domains: frozenset[str]
    capability_contexts: frozenset[str]
    capability_patterns: frozenset[str]
    context_patterns: tuple[str, ...]
    priority: int
    accepts_routing_from: tuple[str, ...]

    @property
    def has_capabilities(self) -> bool:
        """Whether the manifest declares capability domains, contexts or patterns."""
        return bool(self.capability_domains or self.capability_contexts or self.capability_patterns)


def _bag(texts: Iterable[str], with_phrases: bool = True) -> dict[str, int]:
    bag: dict[str, int] = {}
    for text in texts:
        tokens = words(text)
        extra = compounds(text, hyphenated_only=True)
        for term in tokens + (phrases(tokens) if with_phrases else []) + extra:
            bag[term] = bag.get(term, 0) + 1
    return bag


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _body(root: Path, component: Component, limit: int) -> str:
    if limit <= 0:
        return ""
    try:
        text = (root / component.path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    text = _FRONT.sub("", text, count=1)
    text = _FENCE.sub(" ", text)
    # Stop early: the start of a file says what it is for; the rest is examples.
    return " ".join(text.split()[: limit * 2])


def _component_doc(plugin: PluginInfo, component: Component, weights: FieldWeights) -> ComponentDoc:
    name = component.name.split(":")[-1]
    skip = {plugin.name.lower(), name.lower(), *_GENERIC_TAGS}
    tags = [t for t in (*component.tags, *component.keywords) if t.lower() not in skip]
    tags += list(component.capabilities)
    if component.category:
        tags.append(component.category)
    body_text = _body(plugin.root, component, weights.body_words)
    body_tokens = words(body_text)[: weights.body_words]
    body: dict[str, int] = {}
    for term in body_tokens + phrases(body_tokens) + compounds(body_text, hyphenated_only=True):
        body[term] = body.get(term, 0) + 1
    description = " ".join(dict.fromkeys(filter(None, [component.intent, component.description])))
    fields = {
        "name": _bag([name]),
        "keywords": _bag(tags),
        "description": _bag([description]),
        "body": body,
    }
    return ComponentDoc(
        kind=component.kind,
        name=component.name,
        description=component.description,
        fields=fields,
        lengths={key: sum(bag.values()) for key, bag in fields.items()},
    )


def build_profile(plugin: PluginInfo, weights: FieldWeights | None = None) -> PluginProfile:
    """The profile of a loaded plugin (reads the start of each component's body)."""
    weights = weights or FieldWeights()
    manifest = plugin.manifest
    extra = manifest.extra
    context = extra.get("context")
    context = context if isinstance(context, Mapping) else {}
    keywords = [
        *manifest.keywords,
        *manifest.routing.keywords,
        *_strings(context.get("tags")),
        *_strings(extra.get("tags")),
        *_strings(extra.get("category")),
        *_strings(extra.get("categories")),
    ]
    capabilities = manifest.capabilities
    capability_terms = [*capabilities.all_terms(), *capabilities.requires]
    description = " ".join(
        filter(
            None,
            [
                manifest.description,
                *_strings(context.get("title")),
                *_strings(context.get("summary")),
            ],
        )
    )
    meta = {
        "name": _bag([plugin.name]),
        "keywords": _bag(keywords),
        "capabilities": _bag([c.replace(".", " ") for c in capability_terms]),
        "description": _bag([description]),
    }
    components = tuple(
        _component_doc(plugin, component, weights)
        for component in (*plugin.agents, *plugin.commands, *plugin.skills)
    )
    declared = [*keywords, *capability_terms, plugin.name, description]
    declared += [c.name + " " + c.description for c in components]
    domain_counts = domains_of(t for text in declared for t in words(text))
    domains = tuple(
        name
        for name, count in sorted(domain_counts.items(), key=lambda item: (-item[1], item[0]))
        if count >= 2
    )
    globs = [
        *manifest.routing.context_patterns,
        *(
            g
            for c in (*plugin.agents, *plugin.commands, *plugin.skills)
            for g in c.context_patterns
        ),
    ]
    return PluginProfile(
        name=plugin.name,
        description=manifest.description,
        meta=meta,
        meta_lengths={key: sum(bag.values()) for key, bag in meta.items()},
        components=components,
        domains=domains,
        capability_domains=frozenset(" ".join(words(d)) for d in capabilities.domains),
        capability_contexts=frozenset(" ".join(words(c)) for c in capabilities.contexts),
        capability_patterns=frozenset(" ".join(words(p)) for p in capabilities.patterns),
        context_patterns=tuple(dict.fromkeys(globs)),
        priority=manifest.routing.priority,
        accepts_routing_from=tuple(manifest.routing.accepts_routing_from),
    )
