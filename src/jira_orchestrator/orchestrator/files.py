"""Where the orchestrator of ``demo`` and ``up`` keeps its databases: one place, so that
``dlq`` and ``tasks`` read by default what those commands write.

Under an output folder (``output`` by default, relative to the working directory):
``.orchestrator/tasks.db``, ``.orchestrator/decisions.db`` and
``.orchestrator/dead-letters.db``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_OUTPUT", "STORES_DIR", "OrchestratorFiles"]

DEFAULT_OUTPUT = Path("output")
"""The output folder of ``demo`` and ``up`` when ``--output`` is not given."""

STORES_DIR = ".orchestrator"
"""The folder, under the output folder, of the orchestrator's databases."""


@dataclass(frozen=True)
class OrchestratorFiles:
    """The databases of an orchestrator whose output folder is ``output``."""

    output: Path = DEFAULT_OUTPUT

    @classmethod
    def of(cls, output: str | os.PathLike[str]) -> OrchestratorFiles:
        return cls(Path(output))

    @property
    def folder(self) -> Path:
        return self.output / STORES_DIR

    @property
    def tasks(self) -> Path:
        return self.folder / "tasks.db"

    @property
    def decisions(self) -> Path:
        return self.folder / "decisions.db"

    @property
    def dead_letters(self) -> Path:
        return self.folder / "dead-letters.db"
