"""Text analysis shared by the router (its classifier and plugin profiles) and the agent
registry: the same tokens on every side, or nothing matches.

Words are lower-cased, split on anything but letters and digits (camelCase and
snake_case too), spelled one way (``.NET`` and ``dotnet``, ``k8s`` and ``kubernetes``),
stripped of stop words and lightly stemmed (``deployments``, ``deploying``, ``deployed``:
``deploy``). Adjacent words also form phrases (``home assistant``, ``power bi``), kept as
terms of their own so that a rare pair counts for more than its two common words.
"""

from __future__ import annotations

import itertools
import re
from functools import lru_cache

__all__ = [
    "STOPWORDS",
    "compounds",
    "phrases",
    "raw_stems",
    "stem",
    "term_of",
    "terms",
    "words",
    "written_words",
]

# Spellings normalised before splitting, so "draw.io" is not "draw" + "io".
_SPELLINGS = (
    (re.compile(r"(?<![a-z0-9])\.net\b"), " dotnet "),
    (re.compile(r"\basp\.net\b"), " aspnet "),
    (re.compile(r"\bc#"), " csharp "),
    (re.compile(r"\bf#"), " fsharp "),
    (re.compile(r"\bc\+\+"), " cpp "),
    (re.compile(r"\bdraw\.io\b"), " drawio "),
    (re.compile(r"\bdiagrams\.net\b"), " drawio "),
    (re.compile(r"\b(node|next|vue|nuxt|react|three|d3)\.js\b"), r" \1js "),
    (re.compile(r"\bci\s*/\s*cd\b"), " cicd "),
    (re.compile(r"\be\s*&\s*o\b"), " eando "),
    (re.compile(r"\bm365\b"), " microsoft365 "),
    (re.compile(r"\bo365\b"), " microsoft365 "),
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD = re.compile(r"[a-z0-9]+")
_ALIASES = {
    "k8s": "kubernetes",
    "kube": "kubernetes",
    "js": "javascript",
    "ts": "typescript",
    "py": "python",
    "cs": "csharp",
    "ms": "microsoft",
    "msft": "microsoft",
    "gh": "github",
    "pr": "pullrequest",
    "prs": "pullrequest",
    "mr": "pullrequest",
    "db": "database",
    "dbs": "database",
    "repo": "repository",
    "repos": "repository",
    "env": "environment",
    "envs": "environment",
    "config": "configuration",
    "configs": "configuration",
    "auth": "authentication",
    "authn": "authentication",
    "authz": "authorization",
    "ui": "ui",
    "ux": "ux",
    "docs": "documentation",
    "doc": "documentation",
    "k6": "k6",
    "ef": "entityframework",
    "sso": "sso",
    "ha": "homeassistant",
    "cicd": "cicd",
    "ci": "ci",
    "cd": "cd",
    "microsoft365": "microsoft365",
}
# Common English plus the filler of requests ("please", "need") and of plugin files
# ("agent", "plugin", "skill", "command"), which say nothing about the domain.
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "done",
        "down",
        "during",
        "each",
        "either",
        "etc",
        "even",
        "ever",
        "every",
        "few",
        "for",
        "from",
        "further",
        "get",
        "gets",
        "getting",
        "got",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "him",
        "his",
        "how",
        "however",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "let",
        "lets",
        "like",
        "likely",
        "many",
        "may",
        "me",
        "might",
        "more",
        "most",
        "much",
        "must",
        "my",
        "need",
        "needs",
        "needed",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "one",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "out",
        "over",
        "own",
        "per",
        "please",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "thus",
        "to",
        "too",
        "under",
        "until",
        "up",
        "upon",
        "us",
        "use",
        "used",
        "uses",
        "using",
        "very",
        "via",
        "want",
        "wants",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "whether",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "within",
        "without",
        "would",
        "yet",
        "you",
        "your",
        "yours",
        "e",
        "g",
        "eg",
        "ie",
        "i.e",
        "able",
        "across",
        "already",
        "always",
        "another",
        "anything",
        "around",
        "back",
        "best",
        "better",
        "certain",
        "way",
        "ways",
        "well",
        "whole",
        "still",
        "thing",
        "things",
        "something",
        "someone",
        "lot",
        "lots",
        "make",
        "makes",
        "making",
        "go",
        "goes",
        "going",
        "keep",
        "keeps",
        "know",
        "see",
        "sure",
        "try",
        "trying",
        "tries",
        "really",
        "actually",
        "currently",
        "right",
        "new",
    ]
)


_TRIGGER = re.compile(r"[.#+/&]|[mo]365")


# The spellings as one pattern, scanned once: alternatives in the table's order, each a
# named group, the replacement looked up by the group that matched.
_ONE_SPELLING = re.compile(
    "|".join(f"(?P<s{i}>{pattern.pattern})" for i, (pattern, _) in enumerate(_SPELLINGS))
)
_GROUP_OFFSETS = tuple(
    1 + i + sum(pattern.groups for pattern, _ in _SPELLINGS[:i]) for i in range(len(_SPELLINGS))
)


def _spelled(match: re.Match[str]) -> str:
    index = int(match.lastgroup[1:]) if match.lastgroup else 0
    pattern, replacement = _SPELLINGS[index]
    inner = pattern.fullmatch(match.group(_GROUP_OFFSETS[index]))
    return inner.expand(replacement) if inner else replacement


@lru_cache(maxsize=256)
def _normalise(text: str) -> str:
    """Lower case, camelCase split, spellings unified. Cached: a plugin file is read as
    words, then as compounds, from the same text."""
    text = _CAMEL.sub(" ", text).lower()
    if _TRIGGER.search(text):  # most text has none of these: skip the scan
        text = _ONE_SPELLING.sub(_spelled, text)
    return text


# British spellings as American ones: reporters write "optimise", "colour", "centre",
# "catalogue", "modelling"; plugin files mostly "optimize", "color", "center",
# "catalog", "modeling". Applied to both sides, so a word mapped needlessly ("promise":
# "promize") still meets itself.
_BRITISH = (
    (re.compile(r"^(.{3,}[iy])s(e|ed|es|er|ers|ing|ings|ation|ations)$"), r"\1z\2"),
    (re.compile(r"^(.{2,})our(s|ed|ing|ite|ites|able)?$"), r"\1or\2"),
    (re.compile(r"^(.{3,})tre(s|d)?$"), r"\1ter\2"),
    (re.compile(r"^(.{3,})logue(s)?$"), r"\1log\2"),
    (re.compile(r"^(program)me(s)?$"), r"\1\2"),
    (re.compile(r"^(licen|defen|offen)ce(s|d)?$"), r"\1se\2"),
)
_BRITISH_HINT = re.compile(r"[iy]s|our|tre|logue|mme|nce")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light suffix stripper, the same on requests and profiles."""
    if len(word) <= 3 or word.isdigit():
        return word
    if _BRITISH_HINT.search(word):
        for pattern, replacement in _BRITISH:
            word = pattern.sub(replacement, word)
    for suffix, replacement in (
        ("ational", "ate"),
        ("ization", "ize"),
        ("isation", "ize"),
        ("ations", "ate"),
        ("ation", "ate"),
        ("ments", ""),
        ("ment", ""),
        ("ings", ""),
        ("ing", ""),
        ("ies", "y"),
        ("ied", "y"),
        ("ed", ""),
        ("es", "e"),
        ("s", ""),
    ):
        if word.endswith(suffix):
            base = word[: len(word) - len(suffix)] + replacement
            if len(base) < 3 or (suffix == "s" and word.endswith(("ss", "us", "is", "js"))):
                continue
            if suffix in ("ing", "ed", "ings") and (
                len(base) < 4 or not re.search(r"[aeiouy]", base)
            ):
                continue
            # "modelling", "controlled": one l, as "modeling" and "control" (a short
            # base keeps it: "calling" is "call")
            if (
                suffix in ("ing", "ed", "ings")
                and base[-1] == base[-2]
                and base[-1] not in "sz"
                and (base[-1] != "l" or len(base) > 4)
            ):
                base = base[:-1]
            word = base
            break
    if len(word) > 4 and word[-1] == word[-2] and word[-1] not in "sz":
        word = word[:-1]
    if len(word) > 4 and word.endswith("e"):
        word = word[:-1]
    return word


def words(text: str) -> list[str]:
    """The stemmed content words of ``text``, in order."""
    return [term for term, _ in written_words(text)]


@lru_cache(maxsize=4096)
def term_of(name: str) -> str:
    """A short name (a technology, a capability) as one index term: its words joined by
    spaces. Cached: the same few names are looked up for every plugin of every decision."""
    return " ".join(words(name))


def written_words(text: str) -> list[tuple[str, str]]:
    """(stemmed word, word as written in lower case) pairs of ``text``, in order."""
    out: list[tuple[str, str]] = []
    for raw in _WORD.findall(_normalise(text)):
        word = _ALIASES.get(raw, raw)
        if word in STOPWORDS or len(word) < 2 or (word.isdigit() and len(word) < 3):
            continue
        out.append((stem(word), raw))
    return out


_HYPHENATED = re.compile(r"\b([a-z]+)[-/]([a-z]+)\b")


def compounds(text: str, *, hyphenated_only: bool = False) -> list[str]:
    """Adjacent words written as one (``roll back``: ``rollback``, ``sign-off``: ``signoff``).

    Requests split what plugins join and the other way round; ``hyphenated_only`` reads
    only ``a-b`` and ``a/b`` pairs (for plugin files, where spaces separate real words).
    """
    normalised = _normalise(text)
    if hyphenated_only:
        pairs = _HYPHENATED.findall(normalised)
    else:
        raw = _WORD.findall(normalised)
        pairs = list(itertools.pairwise(raw))
    # Two stop words side by side ("on the", "to be") are not a word written apart.
    return [
        stem(a + b)
        for a, b in pairs
        if not (a.isdigit() or b.isdigit() or (a in STOPWORDS and b in STOPWORDS))
    ]


def raw_stems(text: str) -> list[str]:
    """Every word of ``text`` stemmed, stop words kept (for phrases like ``go up``)."""
    return [stem(_ALIASES.get(raw, raw)) for raw in _WORD.findall(_normalise(text))]


def phrases(tokens: list[str]) -> list[str]:
    """Adjacent pairs of tokens, as ``"a b"`` terms."""
    return [f"{a} {b}" for a, b in itertools.pairwise(tokens) if a != b]


def terms(text: str) -> list[str]:
    """Words and adjacent pairs of words: the terms a text is indexed and queried under."""
    tokens = words(text)
    return tokens + phrases(tokens)
