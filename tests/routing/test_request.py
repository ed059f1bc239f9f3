"""Requests: free text, Jira issues, ADF descriptions, and bad input."""

from __future__ import annotations

from typing import Any

import pytest

from jira_orchestrator.routing import InvalidRequest, RoutingRequest, adf_to_text

ADF: dict[str, Any] = {
    "type": "doc",
    "version": 1,
    "content": [
        {"type": "heading", "attrs": {"level": 2}, "content": [{"type": "text", "text": "Steps"}]},
        {
            "type": "paragraph",
            "content": [
                {"type": "text", "text": "The grid "},
                {"type": "text", "text": "freezes", "marks": [{"type": "strong"}]},
                {"type": "hardBreak"},
                {"type": "mention", "attrs": {"id": "1", "text": "@ana"}},
            ],
        },
        {
            "type": "bulletList",
            "content": [
                {
                    "type": "listItem",
                    "content": [
                        {"type": "paragraph", "content": [{"type": "text", "text": "one"}]}
                    ],
                }
            ],
        },
        {"type": "codeBlock", "content": [{"type": "text", "text": "kubectl get pods"}]},
    ],
}


def test_adf_becomes_one_line_per_block() -> None:
    assert adf_to_text(ADF).splitlines() == [
        "Steps",
        "The grid freezes",
        "@ana",
        "one",
        "kubectl get pods",
    ]


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ({"type": "doc", "content": "text"}, "description: $.content"),
        ({"type": "doc", "content": [{"text": "x"}]}, "description: content[0]"),
        (
            {"type": "doc", "content": [{"type": "paragraph", "content": [7]}]},
            "description: content[0].content[0]",
        ),
        ({"type": "doc", "content": [{"type": "text", "text": 3}]}, "description: content[0].text"),
        ([], "description: $"),
    ],
)
def test_malformed_adf_names_the_node(document: Any, where: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        adf_to_text(document)
    assert caught.value.where == where


def test_a_jira_issue_from_the_rest_api() -> None:
    issue = {
        "key": "SHOP-12",
        "fields": {
            "summary": "Orders grid is slow",
            "description": ADF,
            "labels": ["blazor", "perf"],
            "components": [{"name": "Web"}],
            "issuetype": {"name": "Bug"},
        },
    }
    request = RoutingRequest.from_jira(issue, files=["Pages/Orders.razor"])
    assert request.request_id == "SHOP-12"
    assert request.text.startswith("Orders grid is slow\nSteps\nThe grid freezes")
    assert request.labels == ("blazor", "perf")
    assert request.components == ("Web",)
    assert request.issue_type == "Bug"
    assert request.files == ("Pages/Orders.razor",)


def test_a_jira_issue_with_malformed_adf_says_where() -> None:
    issue = {"key": "X-1", "fields": {"summary": "s", "description": {"type": "doc", "content": 1}}}
    with pytest.raises(InvalidRequest, match=r"fields\.description: \$\.content"):
        RoutingRequest.from_jira(issue)


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_text_without_files_is_refused(text: str) -> None:
    with pytest.raises(InvalidRequest, match="empty request"):
        RoutingRequest.from_text(text)


def test_files_alone_are_a_request() -> None:
    assert RoutingRequest.from_text("", files=["Chart.yaml"]).files == ("Chart.yaml",)


def test_batch_mapping_fields_are_checked() -> None:
    with pytest.raises(InvalidRequest, match=r"line 3: files\[1\]: expected a string"):
        RoutingRequest.from_mapping({"text": "x", "files": ["a.py", 2]}, where="line 3")
    with pytest.raises(InvalidRequest, match="line 4: text: expected text"):
        RoutingRequest.from_mapping({"text": ["x"]}, where="line 4")
    request = RoutingRequest.from_mapping({"id": 7, "text": "x", "labels": "a, b"})
    assert (request.request_id, request.labels) == ("7", ("a", "b"))
