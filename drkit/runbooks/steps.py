"""Which step of a runbook's notebook is executing, read from papermill's output notebook.

papermill saves the output notebook as each cell starts, marking it ``running`` in the cell's
metadata; the step is the markdown heading above that cell (the notebooks are written as
numbered steps under headings, so the heading is what a person watching wants to see).
"""

from __future__ import annotations

import json
import re
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


def running_step(notebook: Path) -> Step | None:
    """The step running now; None before the first cell, after the last, or while papermill
    is writing the file (a half-written notebook is read again on the next call)."""
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return None
    heading, number = "", 0
    code_cells = sum(1 for cell in cells if cell.get("cell_type") == "code")
    for cell in cells:
        source = "".join(cell.get("source", ""))
        if cell.get("cell_type") == "markdown":
            headings = _HEADING.findall(source)
            heading = headings[-1] if headings else heading
            continue
        if cell.get("cell_type") != "code":
            continue
        number += 1
        if cell.get("metadata", {}).get("papermill", {}).get("status") == "running":
            return Step(heading or "parameters", number, code_cells)
    return None
