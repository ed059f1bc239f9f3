"""File names from outside input stay inside the plugin's folder, whatever they hold."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from jira_orchestrator.cli import app
from jira_orchestrator.plugins import Issue, PathOutsideFolder, confined, safe_name

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plugins"
SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
HOSTILE = [
    "../../../../PWNED",
    "/etc/passwd",
    "..\\..\\windows\\system32",
    "C:\\Users\\x",
    "a\x00b",
    "..",
    ".",
    "",
    "CON",
    "nul.txt",
    "~/.ssh/id_rsa",
    "x" * 1000,
    "\u202egnp.exe",
    "%2e%2e%2f",
]


@given(st.text())
def test_a_safe_name_is_one_harmless_segment(text: str) -> None:
    name = safe_name(text)
    assert SAFE.match(name), name
    assert len(name) <= 100
    assert name not in (".", "..")
    assert name.split(".")[0].lower() not in ("con", "nul", "prn", "aux")


@given(st.lists(st.text(), min_size=1, max_size=4))
def test_confined_paths_never_leave_the_folder(parts: list[str]) -> None:
    root = Path("/tmp/jo-confined-root")
    assert confined(root, *parts).is_relative_to(root.resolve())


@pytest.mark.parametrize("key", HOSTILE)
def test_every_traversal_form_stays_inside(key: str, tmp_path: Path) -> None:
    path = confined(tmp_path, "plans", f"{Issue(key=key, summary='s').slug}.md")
    assert path.parent == tmp_path / "plans"


def test_a_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "escape").symlink_to(outside)
    with pytest.raises(PathOutsideFolder):
        confined(root, "escape", "x.md")


def test_a_jira_key_cannot_make_a_plugin_write_outside_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    issues = tmp_path / "trav.json"
    issues.write_text(
        json.dumps(
            [
                {
                    "key": key,
                    "fields": {
                        "summary": "Automate the monthly invoice close checklist",
                        "description": "1. export ledger",
                    },
                }
                for key in ("../../../../PWNED", "/tmp/abs-PWNED", "..\\..\\WIN")
            ]
        )
    )
    output = tmp_path / "deep" / "er" / "out"
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app, ["demo", "--plugins", str(EXAMPLES), "--issues", str(issues), "--output", str(output)]
    )
    assert result.exit_code == 0, result.output
    written = [p for p in tmp_path.rglob("*") if "pwned" in p.name.lower() or "win" in p.name]
    assert written, "the plans were written"
    assert all(p.is_relative_to(output) for p in written), written
    assert not Path("/tmp/abs-PWNED.md").exists()
