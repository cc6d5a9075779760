"""A notebook a person ran by hand (the failover in JupyterLab), examined before it becomes an
audit record: was it run at all, completely, when, and has it been published already.

An audit record must not claim more than the notebook shows: a notebook never executed is
refused; one with code cells left unrun is recorded as failed, saying how many; the start
and end are the cells' own execution times (JupyterLab records them), not the file's.

A notebook opened by ``drkit failover open`` lies in its incident's folder beside
``incident.json`` (the run id and the incident's start) and ``results.json`` (what its steps
saved as they ran: the timeline, every gate answer, the figures): its record is built from
them, as complete as a papermill run's.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from drkit.errors import AuditRefusedError, ParameterError

# Cell metadata JupyterLab and papermill write when a cell runs.
_STARTS = ("iopub.execute_input", "shell.execute_reply.started")
_ENDS = ("shell.execute_reply",)
INCIDENT, RESULTS = "incident.json", "results.json"  # beside an incident's notebook


@dataclass
class HandRun:
    notebook_sha256: str
    code_cells: int
    unexecuted: int
    started: datetime | None
    ended: datetime | None
    run_id: str | None = None  # the incident's, from failover open
    incident_started: datetime | None = None
    results: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)


def notebook_identity(cells: list[dict]) -> str:
    """A notebook's run, whatever the file's formatting or metadata: the SHA-256 of each
    cell's type, source, execution count and outputs. Saving it again does not change it."""
    canonical = [[c.get("cell_type"), "".join(c.get("source", "")), c.get("execution_count"),
                  c.get("outputs", [])] for c in cells]
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def examine(notebook: Path, parameter_names: list[str] | None = None) -> HandRun:
    """What the saved notebook shows of its run (and its incident folder, when it has one);
    AuditRefusedError if it never ran."""
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
    incident = _json(notebook.parent / INCIDENT)
    return HandRun(
        notebook_sha256=notebook_identity(cells),
        code_cells=len(code),
        unexecuted=len(code) - len(executed),
        started=_first(t.get(k) for t in times for k in _STARTS),
        ended=_last(t.get(k) for t in times for k in _ENDS),
        run_id=incident.get("run_id") if isinstance(incident.get("run_id"), str) else None,
        incident_started=_parse(incident.get("started_at")),
        results=_json(notebook.parent / RESULTS) if incident else {},
        parameters=parameter_values(cells, parameter_names or []),
    )


def parameter_values(cells: list[dict], names: list[str]) -> dict[str, Any]:
    """The runbook's parameters as the notebook ran them: the parameters cell, then the
    values injected into the copy (the last assignment wins, as in the kernel)."""
    values: dict[str, Any] = {}
    for cell in cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.get("cell_type") != "code" or not {"parameters", "injected-parameters"} & set(
                tags):
            continue
        try:
            tree = ast.parse("".join(cell.get("source", "")))
        except SyntaxError:
            continue
        for node in tree.body:
            target = node.target if isinstance(node, ast.AnnAssign) else (
                node.targets[0] if isinstance(node, ast.Assign) else None)
            if isinstance(target, ast.Name) and target.id in names and node.value is not None:
                with contextlib.suppress(ValueError):
                    values[target.id] = ast.literal_eval(node.value)
    return values


def _json(path: Path) -> dict[str, Any]:
    """A JSON object drkit wrote beside the notebook; empty when absent or not one."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


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
