"""A notebook a person ran by hand (the failover in JupyterLab), examined before it becomes an
audit record: was it run at all, completely, when, and has it been published already.

An audit record must not claim more than the notebook shows: a notebook never executed is
refused; one with code cells left unrun is recorded as failed, saying how many; the start
and end are the cells' own execution times (JupyterLab records them), not the file's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from drkit.errors import AuditRefusedError, ParameterError

# Cell metadata JupyterLab and papermill write when a cell runs.
_STARTS = ("iopub.execute_input", "shell.execute_reply.started")
_ENDS = ("shell.execute_reply",)


@dataclass
class HandRun:
    notebook_sha256: str
    code_cells: int
    unexecuted: int
    started: datetime | None
    ended: datetime | None


def notebook_identity(cells: list[dict]) -> str:
    """A notebook's run, whatever the file's formatting or metadata: the SHA-256 of each
    cell's type, source, execution count and outputs. Saving it again does not change it."""
    canonical = [[c.get("cell_type"), "".join(c.get("source", "")), c.get("execution_count"),
                  c.get("outputs", [])] for c in cells]
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def examine(notebook: Path) -> HandRun:
    """What the saved notebook shows of its run; AuditRefusedError if it never ran."""
    data = notebook.read_bytes()
    try:
        cells = json.loads(data)["cells"]
    except (ValueError, KeyError, TypeError):
        raise ParameterError(f"{notebook} is not a Jupyter notebook.",
                             "Publish the .ipynb file JupyterLab saved.") from None
    code = [c for c in cells if c.get("cell_type") == "code" and "".join(c.get("source", ""))
            .strip()]
    executed = [c for c in code if c.get("execution_count") is not None or c.get("outputs")]
    if code and not executed:
        raise AuditRefusedError(
            f"{notebook} was never executed: none of its {len(code)} code cells ran, so it "
            "is no record of anything.", "Run it in JupyterLab, save it, then publish it.")
    times = [c.get("metadata", {}).get("execution", {}) for c in executed]
    return HandRun(
        notebook_sha256=notebook_identity(cells),
        code_cells=len(code),
        unexecuted=len(code) - len(executed),
        started=_first(t.get(k) for t in times for k in _STARTS),
        ended=_last(t.get(k) for t in times for k in _ENDS),
    )


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _first(values) -> datetime | None:
    moments = [m for m in map(_parse, values) if m is not None]
    return min(moments) if moments else None


def _last(values) -> datetime | None:
    moments = [m for m in map(_parse, values) if m is not None]
    return max(moments) if moments else None
