"""What a figure reports (a table, its data, its targets met or not) and how it is printed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Target:
    """One target of the issue and whether this run met it."""

    name: str
    met: bool
    measured: str

    def to_json(self) -> dict[str, Any]:
        """The target as JSON."""
        return {"name": self.name, "met": self.met, "measured": self.measured}


@dataclass
class Figure:
    """One of the five figures: a table for people, data for machines, targets, notes."""

    key: str
    title: str
    headers: list[str]
    table: list[list[str]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float | None = None  # how long measuring it took

    def to_json(self) -> dict[str, Any]:
        """The figure as JSON."""
        return {
            "title": self.title,
            "table": {"headers": self.headers, "rows": self.table},
            "data": self.data,
            "targets": [t.to_json() for t in self.targets],
            "notes": self.notes,
            "seconds": None if self.seconds is None else round(self.seconds, 1),
        }


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table with aligned columns (readable in a terminal and in the README)."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def render(figures: Sequence[Figure]) -> str:
    """Every figure: its table, each target met or not, and its notes."""
    parts: list[str] = []
    for number, figure in enumerate(figures, start=1):
        parts.append(f"### {number}. {figure.title}\n")
        parts.append(markdown_table(figure.headers, figure.table) + "\n")
        for target in figure.targets:
            verdict = "met" if target.met else "NOT MET"
            parts.append(f"- Target {target.name}: **{verdict}** ({target.measured})")
        for note in figure.notes:
            parts.append(f"- {note}")
        if figure.seconds is not None:
            parts.append(f"- Measured in {figure.seconds:.0f} s.")
        parts.append("")
    return "\n".join(parts)


def summary(figures: Sequence[Figure]) -> str:
    """One line per target, for the end of the output."""
    lines = []
    for figure in figures:
        for target in figure.targets:
            verdict = "met    " if target.met else "NOT MET"
            lines.append(f"{verdict}  {figure.title}: {target.name} ({target.measured})")
    return "\n".join(lines)
