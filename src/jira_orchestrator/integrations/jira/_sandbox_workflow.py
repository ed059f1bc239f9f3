"""The sandbox's workflow: statuses, and the transitions that move an issue between them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DEFAULT_WORKFLOW", "Status", "Transition", "Workflow"]

Category = Literal["new", "indeterminate", "done"]

# Jira's three status categories: (id, colour, display name).
CATEGORIES: dict[str, tuple[int, str, str]] = {
    "new": (2, "blue-gray", "To Do"),
    "indeterminate": (4, "yellow", "In Progress"),
    "done": (3, "green", "Done"),
}


@dataclass(frozen=True)
class Status:
    """A workflow status: its name, its id (a string, as Jira writes it) and category."""

    name: str
    id: str
    category: Category = "indeterminate"


@dataclass(frozen=True)
class Transition:
    """A move to status ``to``; ``sources`` are the statuses it starts from (empty: any)."""

    id: str
    name: str
    to: str
    sources: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Workflow:
    """The statuses an issue goes through and the transitions between them.

    ``initial`` is the status of a new issue. Raises ``ValueError`` when a transition names
    an unknown status or two statuses or transitions share an id.
    """

    statuses: tuple[Status, ...]
    transitions: tuple[Transition, ...]
    initial: str

    def __post_init__(self) -> None:
        names = [status.name for status in self.statuses]
        _unique(names, "status name")
        _unique([status.id for status in self.statuses], "status id")
        _unique([transition.id for transition in self.transitions], "transition id")
        if self.initial not in names:
            raise ValueError(f"workflow: initial status {self.initial!r} is not a status")
        for transition in self.transitions:
            for name in (transition.to, *transition.sources):
                if name not in names:
                    raise ValueError(
                        f"workflow: transition {transition.id} ({transition.name!r}) names "
                        f"unknown status {name!r}"
                    )

    def status(self, name: str) -> Status:
        """The status called ``name`` (case-insensitive); ``KeyError`` if there is none."""
        for status in self.statuses:
            if status.name.lower() == name.lower():
                return status
        raise KeyError(name)

    def available(self, current: str) -> list[Transition]:
        """The transitions an issue in status ``current`` can take."""
        return [
            transition
            for transition in self.transitions
            if (current in transition.sources)
            or (not transition.sources and transition.to != current)
        ]


def _unique(values: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"workflow: duplicate {what} {value!r}")
        seen.add(value)


# Jira Cloud's default for a new software project: three statuses, a global transition
# into each of them.
DEFAULT_WORKFLOW = Workflow(
    statuses=(
        Status("To Do", "10000", "new"),
        Status("In Progress", "3", "indeterminate"),
        Status("Done", "10001", "done"),
    ),
    transitions=(
        Transition("11", "To Do", "To Do"),
        Transition("21", "In Progress", "In Progress"),
        Transition("31", "Done", "Done"),
    ),
    initial="To Do",
)
