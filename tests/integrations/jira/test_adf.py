"""ADF: every body the builders make is valid against Atlassian's schema; readers render it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jira_orchestrator.integrations.jira import adf
from tests.integrations.jira.contract import JiraContract

CONTRACT = JiraContract()

words = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=20
)
urls = st.sampled_from(["https://example.com", "https://jira.example.com/browse/X-1"])


@st.composite
def inlines(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["plain", "marked", "code", "mention", "break"]))
    if kind == "plain":
        return draw(words)
    if kind == "marked":
        return adf.text(
            draw(words),
            strong=draw(st.booleans()),
            em=draw(st.booleans()),
            link=draw(st.none() | urls),
        )
    if kind == "code":
        return adf.text(draw(words), code=True, link=draw(st.none() | urls))
    if kind == "mention":
        return adf.mention(draw(words), draw(st.none() | words))
    return adf.hard_break()


@st.composite
def blocks(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["paragraph", "heading", "bullets", "ordered", "code", "rule"]))
    content = draw(st.lists(inlines(), max_size=4))
    if kind == "paragraph":
        return adf.paragraph(*content)
    if kind == "heading":
        return adf.heading(draw(st.integers(1, 6)), *content)
    if kind in ("bullets", "ordered"):
        items = draw(
            st.lists(
                words | inlines().filter(lambda node: node != adf.hard_break()),
                min_size=1,
                max_size=3,
            )
        )
        return (adf.bullet_list if kind == "bullets" else adf.ordered_list)(*items)
    if kind == "code":
        return adf.code_block(
            draw(st.text(max_size=40)), draw(st.none() | st.sampled_from(["python", "sql"]))
        )
    return adf.rule()


@given(st.lists(blocks(), max_size=5))
def test_every_built_document_is_valid_adf(content: list[Any]) -> None:
    document = adf.doc(*content)
    assert CONTRACT.adf_errors(document) == []
    assert adf.adf_problems(document) == []
    adf.adf_to_text(document)  # reads without error
    adf.wiki_from_adf(document)


@given(st.text(max_size=200))
def test_any_text_becomes_valid_adf(value: str) -> None:
    assert CONTRACT.adf_errors(adf.adf_from_text(value)) == []


BAD_DOCUMENTS = [
    "a plain string",
    "**markdown**",
    None,
    {"type": "doc", "content": []},
    {"type": "doc", "version": 2, "content": []},
    {"type": "paragraph", "version": 1, "content": []},
    adf.doc({"type": "paragraph", "content": [{"type": "text", "text": ""}]}),
    adf.doc({"type": "heading", "attrs": {"level": 7}, "content": []}),
    adf.doc({"type": "blink", "content": []}),
    adf.doc({"type": "paragraph", "content": ["loose string"]}),
    adf.doc({"type": "text", "text": "text directly in a doc"}),
    adf.doc({"type": "bulletList", "content": []}),
    adf.doc(
        adf.paragraph(
            {"type": "text", "text": "x", "marks": [{"type": "code"}, {"type": "strong"}]}
        )
    ),
    adf.doc(adf.paragraph({"type": "text", "text": "x", "marks": [{"type": "link"}]})),
    adf.doc({"type": "codeBlock", "content": [adf.text("x", strong=True)]}),
]


@pytest.mark.parametrize("document", BAD_DOCUMENTS)
def test_what_the_schema_rejects_the_sandbox_rejects(document: Any) -> None:
    assert CONTRACT.adf_errors(document), "the reference schema should reject this"
    assert adf.adf_problems(document), "the sandbox must reject what Atlassian's schema rejects"


def test_builders_refuse_what_adf_forbids() -> None:
    with pytest.raises(ValueError, match="empty"):
        adf.text("")
    with pytest.raises(ValueError, match="heading level"):
        adf.heading(7, "x")
    with pytest.raises(ValueError, match="inline code"):
        adf.text("x", code=True, strong=True)
    with pytest.raises(ValueError, match="at least one item"):
        adf.bullet_list()


def test_problems_name_the_path() -> None:
    document = adf.doc(adf.paragraph("ok", {"type": "text", "text": ""}))
    assert adf.adf_problems(document) == [
        "content[0].content[1].text: a text node needs a non-empty 'text' string"
    ]


def test_wiki_markup_as_webhooks_carry_it() -> None:
    document = adf.doc(
        adf.heading(2, "Routed to backend"),
        adf.paragraph(
            "Confidence ",
            adf.text("0.92", strong=True),
            ", see ",
            adf.text("route --explain", code=True),
            " and ",
            adf.text("the docs", link="https://example.com/docs"),
            adf.hard_break(),
            adf.mention("5b10a2844c20165700ede21g", "Ada"),
        ),
        adf.bullet_list("frontend", "infra"),
        adf.ordered_list("first"),
        adf.code_block("print(1)", "python"),
        adf.rule(),
    )
    assert adf.wiki_from_adf(document) == (
        "h2. Routed to backend\n\n"
        "Confidence *0.92*, see {{route --explain}} and [the docs|https://example.com/docs]\n"
        "[~accountid:5b10a2844c20165700ede21g]\n\n"
        "* frontend\n* infra\n\n"
        "# first\n\n"
        "{code:python}\nprint(1)\n{code}\n\n"
        "----"
    )
    assert adf.wiki_from_adf("already wiki") == "already wiki"
    assert adf.wiki_from_adf(None) == ""


def test_text_reads_adf_wiki_strings_and_null() -> None:
    document = adf.doc(adf.paragraph("Sign-up fails"), adf.bullet_list("POST /api/users"))
    assert adf.adf_to_text(document) == "Sign-up fails\nPOST /api/users"
    assert adf.adf_to_text("h1. wiki") == "h1. wiki"
    assert adf.adf_to_text(None) == ""
    with pytest.raises(ValueError, match="content"):
        adf.adf_to_text({"type": "doc", "version": 1, "content": "oops"})


def test_text_to_adf_keeps_paragraphs_lists_and_line_breaks() -> None:
    document = adf.adf_from_text("First line\nsecond line\n\n- revoke\n- issue\n\nEnd")
    assert [block["type"] for block in document["content"]] == [
        "paragraph",
        "bulletList",
        "paragraph",
    ]
    assert document["content"][0]["content"][1] == {"type": "hardBreak"}
    assert adf.adf_from_text("") == {"type": "doc", "version": 1, "content": []}
