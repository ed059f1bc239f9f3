"""What the CLI prints from data: control characters shown as escapes, cells cut."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from jira_orchestrator.cli._text import cell, escape_control

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


@given(st.text())
def test_no_control_character_reaches_the_terminal(text: str) -> None:
    shown = escape_control(text)
    assert not _UNSAFE.search(shown)
    assert not _UNSAFE.search(cell(text, 1000, markup=False))
    if not _UNSAFE.search(text):
        assert shown == text  # ordinary text is left as it is


def test_escape_sequences_are_written_out() -> None:
    assert escape_control("\x1b[2Jclear") == "\\x1b[2Jclear"
    assert escape_control("title\x1b]0;pwned\x07") == "title\\x1b]0;pwned\\x07"
    assert escape_control("a\nb\u202e") == "a\\x0ab\\u202e"
