"""The audit report: every run's verdict and figures beside their objectives, the drills'
RPO and RTO over time with the objective drawn as a line, each run linked to its record.

One model (:func:`report_model`) rendered two ways: HTML through a Jinja2 template (package
data) for people, JSON for machines (``drkit audit report --format json``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from drkit.runbooks import verdict
from drkit.runbooks.charts import line_chart

ReportFormat = Literal["html", "json"]
_TEMPLATES = Path(__file__).parent / "templates"


def when(run: dict[str, Any]) -> str:
    """When a run started; a notebook run by hand only knows when it was saved."""
    return run.get("started_at") or run["ended_at"]


def report_model(runs: list[dict[str, Any]],
                 record_url: dict[str, str] | None = None) -> dict[str, Any]:
    """The report's content, newest run first; ``record_url``: run id -> its HTML record."""
    record_url = record_url or {}
    rows = []
    for run in sorted(runs, key=when, reverse=True):
        parameters, results = run.get("parameters") or {}, run.get("results") or {}
        rows.append({
            "run_id": run["run_id"], "runbook": run["runbook"],
            "environment": run["environment"], "started": when(run)[:19].replace("T", " "),
            "verdict": run.get("verdict") or verdict.verdict_of(run["exit_code"]),
            "exit_code": run["exit_code"], "message": run.get("message", ""),
            "figures": verdict.figures(results, parameters),
            "rpo_seconds": results.get("rpo_seconds"),
            "rto_seconds": results.get("rto_seconds"),
            "rpo_objective_seconds": _objective(parameters, "rpo_hours", 3600),
            "rto_objective_seconds": _objective(parameters, "rto_minutes", 60),
            "record_url": record_url.get(run["run_id"]),
        })
    return {"generated": datetime.now(UTC).isoformat(timespec="seconds"), "runs": rows,
            **{f"{v.lower()}": sum(r["verdict"] == v for r in rows)
               for v in ("PASSED", "FAILED", "INTERRUPTED")}}


def render_html(model: dict[str, Any]) -> str:
    import jinja2

    drills = [r for r in reversed(model["runs"]) if r["runbook"] == "restore-drill"
              and r["rpo_seconds"] is not None and r["rto_seconds"] is not None]
    charts = [_trend(drills, name, unit) for name, unit in (("rpo", "RPO"), ("rto", "RTO"))] \
        if drills else []
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES),
                                     autoescape=True)
    return environment.get_template("report.html.j2").render(**model, charts=charts)


def _trend(drills: list[dict[str, Any]], key: str, name: str) -> str:
    """One figure over the drills, in minutes, with its objective as a dashed line."""
    objectives = {r[f"{key}_objective_seconds"] for r in drills} - {None}
    return line_chart(
        f"{name} per drill (minutes)", [r["started"][5:16] for r in drills],
        {name: [r[f"{key}_seconds"] / 60 for r in drills]}, "min",
        objectives={f"{name} objective": max(objectives) / 60} if objectives else None)


def _objective(parameters: dict[str, Any], name: str, scale: int) -> float | None:
    value = parameters.get(name)
    return None if value is None else float(value) * scale
