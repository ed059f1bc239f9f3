"""The classifier: technologies from files, everyday words, domains, complexity."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jira_orchestrator.plugins.text as text_module
from jira_orchestrator.plugins.text import compounds, stem, words
from jira_orchestrator.routing import RoutingRequest, classify, technologies_of


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("src/Web/Pages/Orders.razor", {"blazor", "dotnet", "csharp"}),
        ("Api/Invoices.cs", {"csharp", "dotnet"}),
        ("app/main.py", {"python"}),
        ("src/components/Card.tsx", {"react", "typescript"}),
        ("charts/api/Chart.yaml", {"helm", "kubernetes"}),
        ("deploy/values.yaml", {"helm"}),
        ("infra/main.tf", {"terraform"}),
        ("infra/main.bicep", {"bicep", "azure"}),
        ("docs/overview.drawio", {"drawio", "diagram"}),
        (".github/workflows/ci.yml", {"github actions", "cicd"}),
        ("Dockerfile", {"docker"}),
        (".env.staging", {"environment"}),
        ("C:\\repo\\ansible\\site.yml", {"ansible"}),
    ],
)
def test_technologies_from_file_paths(path: str, expected: set[str]) -> None:
    assert expected <= set(technologies_of(path))


def test_unknown_files_point_nowhere() -> None:
    assert technologies_of("notes/todo.unknownext") == ()


def test_words_are_normalised_the_same_on_both_sides() -> None:
    assert words("Deployments deploying deployed") == ["deploy"] * 3
    assert words("ASP.NET Core, C#, draw.io, k8s") == [
        "aspnet",
        "core",
        "csharp",
        "drawio",
        "kubernet",
    ]
    assert words("InvoiceEndpoints") == ["invoic", "endpoint"]
    assert "rollback" in compounds("roll back the release")
    assert compounds("a sign-off gate", hyphenated_only=True) == [stem("signoff")]


def test_file_technologies_and_everyday_words_become_terms() -> None:
    request = RoutingRequest.from_text(
        "The page is slow when I sign in", files=["src/Pages/Login.razor"]
    )
    found = classify(request)
    assert {"blazor", "dotnet"} <= set(found.terms)
    assert found.terms["performanc"] < found.terms["slow"]  # an expansion weighs less
    assert "frontend" in found.domains
    assert found.file_technologies["src/Pages/Login.razor"][0] == "blazor"


def test_labels_and_components_count_more_than_text() -> None:
    found = classify(RoutingRequest.from_text("fix it", labels=["terraform"]))
    assert found.terms["terraform"] > 1.0


def test_complexity_grows_with_domains_and_files() -> None:
    small = classify(RoutingRequest.from_text("Rename the button"))
    big = classify(
        RoutingRequest.from_text(
            "Migrate the whole API, the React frontend and the Terraform infrastructure",
            files=[f"f{n}.py" for n in range(7)],
        )
    )
    assert (small.complexity, big.complexity) == ("low", "high")


def test_files_named_in_the_text_count_too() -> None:
    found = classify(RoutingRequest.from_text("Bump the tag in charts/api/values.yaml"))
    assert "helm" in found.technologies
    assert "helm" in found.terms
    assert classify(RoutingRequest.from_text("see https://example.io/x.py")).technologies == ()


def _spelled_one_by_one(text: str) -> str:
    """The spellings applied one after the other, as the table reads."""
    for pattern, replacement in text_module._SPELLINGS:
        text = pattern.sub(replacement, text)
    return text


@given(
    st.lists(
        st.sampled_from(
            [
                ".net",
                "asp.net",
                "c#",
                "f#",
                "c++",
                "draw.io",
                "diagrams.net",
                "node.js",
                "react.js",
                "d3.js",
                "ci/cd",
                "ci / cd",
                "e&o",
                "e & o",
                "m365",
                "o365",
                "x",
                "a",
                "net",
                ".",
                "/",
                "#",
                "+",
                " ",
                "-",
                "3",
                "node",
                "js",
                "asp",
                "ci",
                "cd",
            ]
        ),
        max_size=12,
    ).map("".join)
)
@settings(max_examples=400, deadline=None)
def test_the_spellings_in_one_scan_read_as_one_after_the_other(text: str) -> None:
    assert text_module._ONE_SPELLING.sub(text_module._spelled, text) == _spelled_one_by_one(text)


def test_the_spellings_in_one_scan_on_the_corpus_files(corpus: Path) -> None:
    for path in sorted(corpus.rglob("*.md"))[::7]:
        text = path.read_text(encoding="utf-8", errors="replace").lower()
        assert text_module._ONE_SPELLING.sub(text_module._spelled, text) == (
            _spelled_one_by_one(text)
        ), path
