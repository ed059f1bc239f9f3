"""The layers of DESIGN.md, checked: a lower layer never imports a higher one.

Every import in src/ (top-level or inside a function, TYPE_CHECKING ones included) is read
with `ast`, so a new module that breaks the layering fails here, not in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "jira_orchestrator"

LAYER = {
    "_core": 0,
    "transports": 1,
    "messagebus": 2,
    "resilience": 2,
    "state": 2,
    "plugins": 3,
    "routing": 4,
    "orchestrator": 4,
    "cli": 5,
    "integrations": 5,
    "web": 5,
    "testing": 5,
}
# Siblings in layer 2 that must not know each other (DESIGN.md: resilience emits events
# through listeners and never imports the bus; the bus knows nothing of state).
FORBIDDEN = {
    ("resilience", "messagebus"),
    ("resilience", "state"),
    ("messagebus", "state"),
    ("messagebus", "resilience"),
    ("routing", "orchestrator"),
    ("integrations", "cli"),
    ("integrations", "web"),
    ("web", "cli"),
}


def _package(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "jira_orchestrator" or len(parts) < 2:
        return None
    return parts[1]


def _imports() -> list[tuple[str, str, str]]:
    """(importing package, imported package, where) for every project import."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC)
        if len(relative.parts) == 1:
            continue  # the package's __init__ re-exports errors; it is not a layer
        own = relative.parts[0].removesuffix(".py")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                target = _package(name)
                if target is not None and target != own:
                    found.append((own, target, f"{relative}:{node.lineno}"))
    return found


@pytest.mark.parametrize(("own", "target", "where"), _imports())
def test_no_lower_layer_imports_a_higher_one(own: str, target: str, where: str) -> None:
    assert own in LAYER, f"{where}: package {own!r} has no layer; add it to LAYER"
    assert target in LAYER, f"{where}: imports {target!r}, which has no layer"
    assert LAYER[target] <= LAYER[own], (
        f"{where}: {own} (layer {LAYER[own]}) imports {target} (layer {LAYER[target]})"
    )
    assert (own, target) not in FORBIDDEN, f"{where}: {own} must not import {target}"
