"""The router's text analysis: the words of `jira_orchestrator.plugins.text`, which the
agent registry reads as well (one tokenizer and stemmer for both)."""

from jira_orchestrator.plugins.text import (
    STOPWORDS,
    compounds,
    phrases,
    raw_stems,
    stem,
    term_of,
    terms,
    words,
    written_words,
)

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
