"""How a runbook run ended, read from its executed notebook and papermill's stderr.

A cell that raised one of drkit's errors gives that error's exit code, any other cell error
40, a papermill or kernel failure (kernel missing or dead, timeout) 41.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from drkit import errors
from drkit.errors import DrkitError, RunbookEngineError, RunbookStepError
from drkit.exitstatus import ExitStatus
from drkit.runbooks.runbook import Runbook
from drkit.runbooks.steps import code_cells

KERNEL = "drkit"


@dataclass
class FailedCell:
    index: int
    step: str
    ename: str
    evalue: str
    execution_count: int | None = None  # the "In [N]" the record shows beside the cell


def failed_cell(notebook: Path) -> FailedCell | None:
    """The first cell with an error output, and the step (heading) it belongs to."""
    if not notebook.exists():
        return None
    for index, step, cell in code_cells(json.loads(notebook.read_text())["cells"]):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return FailedCell(index=index, step=step, ename=output.get("ename", ""),
                                  evalue=output.get("evalue", ""),
                                  execution_count=cell.get("execution_count"))
    return None


def outcome(runbook: Runbook, code: int, stderr: str,
             failed: FailedCell | None) -> tuple[int, str]:
    if code == 0 and failed is None:
        return ExitStatus.OK, f"{runbook.name} completed"
    if failed is not None and failed.ename not in ("CellTimeoutError", "DeadKernelError"):
        error_class = getattr(errors, failed.ename, None)
        exit_code = error_class.exit_code if isinstance(error_class, type) and issubclass(
            error_class, DrkitError) else RunbookStepError.exit_code
        where = (f"In [{failed.execution_count}]" if failed.execution_count
                 else f"cell {failed.index}")
        # A drkit error is its sentence; anything else (a bug) keeps its class name.
        known = exit_code != RunbookStepError.exit_code
        return exit_code, (f"failed at step '{failed.step}' ({where}): "
                           + ("" if known else f"{failed.ename}: ") + failed.evalue)
    return RunbookEngineError.exit_code, f"{runbook.name} could not run: {_engine_cause(stderr)}"


def _engine_cause(stderr: str) -> str:
    causes = {
        "No such kernel": f"the Jupyter kernel '{KERNEL}' was not found",
        "TOTAL TIMEOUT": "the run exceeded the runbook's total timeout and was stopped",
        "CellTimeoutError": "a step exceeded the runbook's per-cell timeout",
        "DeadKernelError": "the kernel died (out of memory, or killed)",
        "Kernel died": "the kernel died (out of memory, or killed)",
    }
    for marker, cause in causes.items():
        if marker in stderr:
            return cause
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return f"papermill failed ({lines[-1][:300] if lines else 'no message'})"
