"""File names from outside input (Jira keys, payload fields), kept inside a plugin's folder.

A Jira key, a tenant name or a service name arrives from people and other programs, so it
may hold ``../``, an absolute path, a NUL byte, a Windows separator or a device name.
`safe_name` makes one path segment of it that can only name a file in the folder it is
joined to; `confined` joins segments under a root and refuses any result outside it.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from jira_orchestrator._core.errors import JiraOrchestratorError

__all__ = ["MAX_NAME", "PathOutsideFolder", "confined", "safe_name"]

MAX_NAME = 100
"""The longest name `safe_name` returns (file systems allow 255 bytes)."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", *(f"com{n}" for n in range(10)), *(f"lpt{n}" for n in range(10))}
)


class PathOutsideFolder(JiraOrchestratorError, ValueError):
    """A path that would leave the folder it must stay in."""


def safe_name(text: str, default: str = "item") -> str:
    """``text`` as one file-name segment: ``[A-Za-z0-9._-]``, no leading dot or dash, at
    most `MAX_NAME` characters, never ``.``/``..`` nor a Windows device name; ``default``
    when nothing usable is left."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    name = _UNSAFE.sub("-", folded).strip(".-_")[:MAX_NAME].rstrip(".-_")
    if not name or name.split(".")[0].lower() in _RESERVED:
        name = f"{default}-{name}" if name else default
    return name


def confined(root: str | os.PathLike[str], *parts: str) -> Path:
    """``root`` joined with ``parts``, each made a `safe_name` (an extension kept); raises
    `PathOutsideFolder` should the result still not be inside ``root``."""
    base = Path(root).resolve()
    path = base
    for part in parts:
        stem, dot, extension = part.rpartition(".")
        if dot and stem and re.fullmatch(r"[A-Za-z0-9]{1,10}", extension):
            path = path / f"{safe_name(stem)}.{extension}"
        else:
            path = path / safe_name(part)
    resolved = path.resolve()
    if not resolved.is_relative_to(base):
        raise PathOutsideFolder(f"{path} is outside {base}")
    return resolved
