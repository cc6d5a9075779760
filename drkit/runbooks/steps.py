"""Which step of a runbook's notebook is executing, read from papermill's output notebook.

papermill saves the output notebook as each cell starts, marking it ``running`` in the cell's
metadata; the step is the markdown heading above that cell (the notebooks are written as
numbered steps under headings, so the heading is what a person watching wants to see).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Step:
    heading: str  # the nearest markdown heading above the running cell
    cell: int  # 1-based among code cells
    cells: int

    def __str__(self) -> str:
        return f"{self.heading} (cell {self.cell} of {self.cells})"


def code_cells(cells: list[dict]) -> Iterator[tuple[int, str, dict]]:
    """Each code cell's index in the notebook, the step it belongs to (the nearest markdown
    heading above it; "parameters" before the first) and the cell."""
    heading = "parameters"
    for index, cell in enumerate(cells):
        if cell.get("cell_type") == "markdown":
            headings = _HEADING.findall("".join(cell.get("source", "")))
            heading = headings[-1] if headings else heading
        elif cell.get("cell_type") == "code":
            yield index, heading, cell


def running_step(notebook: Path) -> Step | None:
    """The step running now; None before the first cell, after the last, or while papermill
    is writing the file (a half-written notebook is read again on the next call)."""
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return None
    walked = list(code_cells(cells))
    for number, (_, heading, cell) in enumerate(walked, 1):
        if cell.get("metadata", {}).get("papermill", {}).get("status") == "running":
            return Step(heading, number, len(walked))
    return None
