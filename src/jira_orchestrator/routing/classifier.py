"""The classifier: what a request is about, read from its text, labels and files.

- **terms**: the words and phrases of the text (see `text`), weighted; labels and
  components count as text.
- **technologies** from file paths: extensions (``.razor``, ``.tf``, ``.bicep``) and
  well-known files (``Chart.yaml``, ``Dockerfile``, ``.github/workflows/*``).
- **everyday words** (``slow``, ``sign in``, ``picture``) add the technical word a plugin
  would use (``performance``, ``authentication``, ``diagram``), at a lower weight. The
  table is general software vocabulary, not a rule per plugin.

The tables (extensions, file names, folders, everyday words, domains, artefact words) are
data: ``vocabulary.json`` beside this module, read once at import.
- **domains** (frontend, backend, infrastructure, ...) and a rough **complexity**.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import PurePosixPath
from typing import Any, Literal

from jira_orchestrator.plugins.text import (
    STOPWORDS,
    compounds,
    phrases,
    raw_stems,
    stem,
    words,
    written_words,
)
from jira_orchestrator.routing.request import RoutingRequest

__all__ = [
    "DOMAINS",
    "Classification",
    "Complexity",
    "classify",
    "domains_of",
    "names_in",
    "technologies_of",
]

Complexity = Literal["low", "medium", "high"]


def _load_tables() -> dict[str, Any]:
    """The vocabulary tables (``vocabulary.json`` beside this module): data, not code, so
    that they can be read, reviewed and extended without touching the classifier."""
    data = json.loads(resources.files(__package__).joinpath(_DATA).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise RuntimeError(f"{_DATA}: not a {_FORMAT} file")
    return data


def _mapping(data: Mapping[str, Any], key: str) -> dict[str, tuple[str, ...]]:
    table = data[key]
    return {name: tuple(values) for name, values in table.items()}


_DATA = "vocabulary.json"
_FORMAT = "jira-orchestrator/routing-vocabulary"
_TABLES = _load_tables()
_EXTENSIONS = _mapping(_TABLES, "extensions")
"""Extension -> technologies (as words the plugins write)."""
_FILES = _mapping(_TABLES, "files")
"""A whole file name (lower case) -> technologies."""
_FOLDERS = _mapping(_TABLES, "folders")
"""A folder in the path -> technologies."""
VOCABULARY: dict[str, tuple[str, ...]] = _mapping(_TABLES, "vocabulary")
"""Everyday words of issue reporters -> the words plugins use for the same thing."""
DOMAINS: dict[str, list[str]] = {name: list(seeds) for name, seeds in _TABLES["domains"].items()}
"""Each domain's words."""
_DOMAIN_TERMS: dict[str, frozenset[str]] = {
    name: frozenset(term for seed in seeds for term in words(seed))
    for name, seeds in DOMAINS.items()
}
_COMPLEX = frozenset(words(_TABLES["complex"]))
_WEIGHT_TEXT = 1.0
_WEIGHT_LABEL = 1.5
_WEIGHT_TECH = 1.0
_WEIGHT_PATH = 0.35
_WEIGHT_VOCAB = 0.45
_WEIGHT_COMPOUND = 0.7
_SPLIT_PATH = re.compile(r"[\\/]+")
# Names written in the text: a service or repository named the Jira way ("billing-api",
# "orders_service", "search-indexer-v2"), or a file path ("charts/orders/values.yaml").
# Their words say what something is called, not what the request is about: they count
# like the words of an attached path, and not for domains or capability bonuses.
_NAMED = re.compile(r"(?<![\w./-])[a-z][a-z0-9]*(?:[-_][a-z0-9]+)+(?![\w/-]|\.\w)")
_PATH_IN_TEXT = re.compile(r"(?<![\w./-])(?:[\w.-]+/)+(?:[\w.-]*\w)?")
# The last word of a service's name says what kind of artefact it is (``-api``,
# ``-service``, ``-worker``): general software naming, not a rule per plugin.
_ARTEFACTS = frozenset(_TABLES["artefacts"])
# A file named in the text ("see Orders.razor", "bump charts/api/Chart.yaml").
_MENTIONED = re.compile(
    r"(?<![\w./-])((?:[\w.-]+/)*(?:[\w-]+(?:\.[\w-]+)*\.[A-Za-z0-9]{1,10}|Dockerfile|Jenkinsfile))"
    r"(?![\w/-])"
)


@dataclass(frozen=True, slots=True)
class Classification:
    """What the classifier found: weighted query terms and the evidence behind them."""

    terms: Mapping[str, float]
    words: tuple[str, ...]
    technologies: tuple[str, ...] = ()
    file_technologies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    domains: tuple[str, ...] = ()
    principal_domains: tuple[str, ...] = ()
    """The domains with at least half the hits of the strongest: what the request is
    mainly about (a side mention, "the account page" in an API story, is not)."""
    complexity: Complexity = "low"
    expansions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    written: Mapping[str, str] = field(default_factory=dict)
    """Index term -> the words the request wrote (for explanations)."""
    names: tuple[str, ...] = ()
    """Paths and service names of the text, read apart (see `names_in`)."""

    def shown(self, term: str) -> str:
        """How to show an index term: as the request wrote it, when it did."""
        return self.written.get(term, term)

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly (camelCase) summary for the decision."""
        return {
            "technologies": list(self.technologies),
            "domains": list(self.domains),
            "complexity": self.complexity,
            "files": {path: list(tech) for path, tech in self.file_technologies.items()},
            "names": list(self.names),
        }


def technologies_of(path: str) -> tuple[str, ...]:
    """Technologies a file path points to (``charts/api/Chart.yaml``: helm, chart, ...)."""
    normalized = path.replace("\\", "/").removeprefix("./")
    pure = PurePosixPath(normalized)
    name = pure.name.lower()
    found: list[str] = []
    found += _FILES.get(name, ())
    if name.startswith(".env"):
        found += _FILES[".env"]
    if name.startswith("dockerfile"):
        found += _FILES["dockerfile"]
    suffixes = [s.lower() for s in pure.suffixes]
    for suffix in suffixes[-2:]:
        found += _EXTENSIONS.get(suffix, ())
    lowered = normalized.lower()
    for folder, techs in _FOLDERS.items():
        if f"/{folder}/" in f"/{lowered}" and (
            "/" in folder or folder in [part.lower() for part in pure.parts[:-1]]
        ):
            found += techs
    return tuple(dict.fromkeys(found))


def domains_of(tokens: Iterable[str]) -> dict[str, int]:
    """How many tokens hit each domain's vocabulary."""
    counts: dict[str, int] = {}
    for token in tokens:
        for name, vocabulary in _DOMAIN_TERMS.items():
            if token in vocabulary:
                counts[name] = counts.get(name, 0) + 1
    return counts


def _expand(texts: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Everyday words and phrases of ``texts`` with the technical words they stand for."""
    found: dict[str, tuple[str, ...]] = {}
    for text in texts:
        tokens = raw_stems(text)
        for size in (1, 2, 3):
            for start in range(len(tokens) - size + 1):
                key = " ".join(tokens[start : start + size])
                extra = _VOCABULARY.get(key)
                if extra:
                    found[key] = extra
    return found


def names_in(text: str, known: Callable[[str], bool] | None = None) -> list[str]:
    """The names written in ``text``: file paths and Jira-style service names.

    A path has two slashes, ends with one, or ends with a file name (``app/main.py``);
    ``ci/cd`` and ``and/or`` are not paths. A service name is lower case, joined by
    ``-`` or ``_``, ends with an artefact word (``billing-api``, ``orders-service``) or
    holds a number (``orders-v2``), and has no stop word inside (``end-to-end`` is
    English). A compound the plugins write joined (``sign-off`` when they say
    ``signoff``) is a word, not a name.
    """
    found: list[str] = []
    rest = text
    if "/" in text:
        for match in _PATH_IN_TEXT.finditer(text):
            span = match.group(0)
            if span.count("/") >= 2 or span.endswith("/") or _MENTIONED.fullmatch(span):
                found.append(span)
        rest = _PATH_IN_TEXT.sub(" ", text)
    if "-" not in rest and "_" not in rest:
        return found
    for match in _NAMED.finditer(rest):
        name = match.group(0)
        parts = re.split(r"[-_]", name)
        if any(part in STOPWORDS for part in parts[1:-1]):
            continue
        if not (parts[-1] in _ARTEFACTS or any(c.isdigit() for c in name)):
            continue
        if known is not None and known(stem("".join(parts))):
            continue
        found.append(name)
    return found


def _add(bag: dict[str, float], tokens: list[str], weight: float) -> None:
    for token in tokens:
        bag[token] = bag.get(token, 0.0) + weight
    for pair in phrases(tokens):
        bag[pair] = bag.get(pair, 0.0) + weight


def classify(request: RoutingRequest, known: Callable[[str], bool] | None = None) -> Classification:
    """Classify a request: weighted terms, technologies, domains and complexity.

    ``known`` says whether a term is in the plugins' vocabulary; with it, words a
    request splits (``roll back``) are also tried as one (``rollback``).
    """
    names = names_in(request.text, known)
    text = request.text
    for name in names:  # read apart from the prose: see `names_in`
        text = text.replace(name, " ")
    pairs = written_words(text)
    text_tokens = [term for term, _ in pairs]
    written: dict[str, str] = {}
    for index, (term, raw) in enumerate(pairs):
        written.setdefault(term, raw)
        if index + 1 < len(pairs) and pairs[index + 1][0] != term:
            following, following_raw = pairs[index + 1]
            written.setdefault(f"{term} {following}", f"{raw} {following_raw}")
    bag: dict[str, float] = {}
    _add(bag, text_tokens, _WEIGHT_TEXT)
    if known is not None:
        for joined in compounds(request.text):
            if joined not in bag and known(joined):
                bag[joined] = _WEIGHT_COMPOUND
    label_tokens: list[str] = []
    for label in (*request.labels, *request.components):
        tokens = words(label)
        label_tokens += tokens
        _add(bag, tokens, _WEIGHT_LABEL)
    if request.issue_type:
        _add(bag, words(request.issue_type), _WEIGHT_PATH)
    technologies: list[str] = []
    per_file: dict[str, tuple[str, ...]] = {}
    for path in request.files:
        techs = technologies_of(path)
        per_file[path] = techs
        technologies += techs
        parts = [p for p in _SPLIT_PATH.split(path) if p not in ("", ".", "..")]
        stems = [PurePosixPath(p).stem for p in parts]
        for token in {t for part in stems for t in words(part)}:
            bag[token] = bag.get(token, 0.0) + _WEIGHT_PATH
    for name in names:
        for term, raw in written_words(name):
            written.setdefault(term, raw)
            bag[term] = bag.get(term, 0.0) + _WEIGHT_PATH
    # Reporters name files in the text too; they say as much as attached ones.
    for mentioned in _MENTIONED.findall(request.text):
        if mentioned not in per_file and not mentioned.startswith(("http", "www.")):
            technologies += technologies_of(mentioned)
    technologies = list(dict.fromkeys(technologies))
    for tech in technologies:
        tokens = words(tech)
        _add(bag, tokens, _WEIGHT_TECH)
        written.setdefault(" ".join(tokens), tech)
        for token, (_, raw) in zip(tokens, written_words(tech), strict=True):
            written.setdefault(token, raw)
    expansions = _expand([text, *request.labels, *request.components])
    for extras in expansions.values():
        for extra in extras:
            tokens = words(extra)
            written.setdefault(" ".join(tokens), extra)
            for token, (_, raw) in zip(tokens, written_words(extra), strict=True):
                written.setdefault(token, raw)
            for token in (*tokens, *phrases(tokens)):
                bag[token] = max(bag.get(token, 0.0), _WEIGHT_VOCAB)
    tech_tokens = [t for tech in technologies for t in words(tech)]
    domain_counts = domains_of(text_tokens + label_tokens + tech_tokens)
    domains = tuple(
        name for name, _ in sorted(domain_counts.items(), key=lambda item: (-item[1], item[0]))
    )
    return Classification(
        terms=bag,
        words=tuple(text_tokens),
        technologies=tuple(technologies),
        file_technologies=per_file,
        domains=domains,
        principal_domains=tuple(
            name for name in domains if 2 * domain_counts[name] >= max(domain_counts.values())
        ),
        complexity=_complexity(text_tokens, request.files, domain_counts),
        expansions=expansions,
        written=written,
        names=tuple(names),
    )


def _complexity(
    tokens: list[str], files: tuple[str, ...], domains: Mapping[str, int]
) -> Complexity:
    strong = [name for name, count in domains.items() if count >= 2]
    if len(strong) >= 3 or len(files) >= 6 or len(tokens) > 80 or _COMPLEX & set(tokens):
        return "high"
    if len(tokens) <= 12 and len(files) <= 1 and len(domains) <= 1:
        return "low"
    return "medium"


_VOCABULARY: dict[str, tuple[str, ...]] = {
    " ".join(raw_stems(key)): extras for key, extras in VOCABULARY.items()
}
