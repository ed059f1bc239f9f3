"""Every ```python block in docs/*.md runs as a test, so the docs cannot rot.

A block runs as a script in a fresh interpreter, in a temporary working directory.
Mark a block that must not run with an HTML comment ``<!-- not-run -->`` on the line
before the fence.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
FENCE = re.compile(r"(?P<skip><!-- not-run -->\n)?```python\n(?P<code>.*?)\n```", re.DOTALL)


def _blocks() -> list[tuple[str, str]]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        for index, match in enumerate(FENCE.finditer(page.read_text(encoding="utf-8"))):
            if not match.group("skip"):
                found.append((f"{page.name}#{index + 1}", match.group("code")))
    return found


@pytest.mark.parametrize(("where", "code"), _blocks(), ids=[w for w, _ in _blocks()])
def test_doc_block_runs(where: str, code: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{where} failed:\n{result.stdout}\n{result.stderr}"
