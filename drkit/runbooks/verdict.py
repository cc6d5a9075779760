"""The verdict at the top of every record: what an auditor reads first.

PASSED, FAILED (at which step, in one sentence) or INTERRUPTED, then the key figures beside
their objectives (``RPO 21 s of 1 h: met``). Inserted into the executed notebook right after
papermill's parameters, so the record opens with it; the same lines end ``drkit run``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from drkit.errors import RunStopped
from drkit.exitstatus import ExitStatus
from drkit.units import duration, human_size

Verdict = Literal["PASSED", "FAILED", "INTERRUPTED"]


def verdict_of(exit_code: int) -> Verdict:
    if exit_code in RunStopped.codes:
        return "INTERRUPTED"
    return "PASSED" if exit_code == ExitStatus.OK else "FAILED"


def figures(results: dict[str, Any], parameters: dict[str, Any]) -> list[str]:
    """The run's key figures, each beside its objective where there is one."""
    lines = []
    if results.get("backup"):
        size = f" ({human_size(results['compressed_bytes'])})" \
            if results.get("compressed_bytes") else ""
        lines.append(f"backup {results['backup']}{size}")
    if results.get("read_back"):  # the nightly's: in full, or as ciphertext (no identity)
        lines.append(results["read_back"])
    if reach := data_reach(results):
        lines.append(reach)
    for name, seconds_key, objective_key, scale in (
            ("RPO", "rpo_seconds", "rpo_hours", 3600), ("RTO", "rto_seconds", "rto_minutes", 60)):
        seconds = results.get(seconds_key)
        if seconds is None:
            continue
        line = f"{name} {duration(seconds)}"
        objective = parameters.get(objective_key)
        if objective is not None:
            met = seconds <= objective * scale
            line += f" of {duration(objective * scale)}: {'met' if met else 'BREACHED'}"
        lines.append(line)
    if results.get("proof"):
        lines.append(f"proof {results['proof']}")
    return lines + gate_answers(results)


def gate_answers(results: dict[str, Any]) -> list[str]:
    """Each gate a person answered (a failover run by hand), refusals included: who, when,
    what. An unattended run's approvals by parameter say nothing more than its parameters."""
    return [f"gate '{gate['action']}': {gate['answer']} by {gate['os_user']} at {gate['at']}"
            + (f" (typed {gate['typed']!r})" if gate["answer"] == "refused" else "")
            for gate in results.get("gates") or []
            if gate.get("answer") != "approved by parameter"]


def data_reach(results: dict[str, Any]) -> str | None:
    """The time the restored data reaches and how it got there: the figure that matters
    when a region is gone (``data reaches 2026-12-07 04:19:44 UTC (base + 12 transactions
    replayed)``)."""
    if not results.get("data_reaches"):
        return None
    reached = datetime.fromisoformat(results["data_reaches"]).astimezone(UTC)
    how = f" ({results['reached_by']})" if results.get("reached_by") else ""
    return f"data reaches {reached:%Y-%m-%d %H:%M:%S} UTC{how}"


def summary(runbook: str, exit_code: int, message: str, results: dict[str, Any],
            parameters: dict[str, Any]) -> list[str]:
    """The verdict line, then the figures."""
    verdict = verdict_of(exit_code)
    if verdict == "PASSED":
        head = f"{runbook}: PASSED"
    elif message.startswith("failed "):  # "restore-drill: FAILED at step '2. ...' (In [4]): ..."
        head = f"{runbook}: {verdict} {message.removeprefix('failed ')}"
    else:
        head = f"{runbook}: {verdict} - {message}"
    return [head, *figures(results, parameters)]


def markdown(lines: list[str], exit_code: int) -> str:
    head, *rest = lines
    colour = {"PASSED": "#1a7f37", "FAILED": "#cf222e"}.get(verdict_of(exit_code), "#9a6700")
    body = "".join(f"\n- {line}" for line in rest)
    return (f"<h2 style='color:{colour}'>Verdict: {_escape(head)}</h2>\n"
            f"{_escape(body)}\n\n(exit code {exit_code})")


def insert(notebook_path: Path, text: str) -> None:
    """Put the verdict cell after the parameters (papermill's injected ones if present)."""
    import nbformat

    notebook = nbformat.read(notebook_path, as_version=4)
    tags = [cell.get("metadata", {}).get("tags", []) for cell in notebook.cells]
    where = next((i for i, t in enumerate(tags) if "injected-parameters" in t),
                 next((i for i, t in enumerate(tags) if "parameters" in t), -1))
    cell = nbformat.v4.new_markdown_cell(text)
    cell.metadata["tags"] = ["drkit-verdict"]
    notebook.cells.insert(where + 1, cell)
    nbformat.write(notebook, notebook_path)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
