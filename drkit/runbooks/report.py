"""The audit report: run history as a table and the RPO/RTO trend as a chart, in one page."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from drkit.runbooks.charts import line_chart


def when(run: dict[str, Any]) -> str:
    """When a run started; a notebook run by hand only knows when it was saved."""
    return run.get("started_at") or run["ended_at"]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def write_report(runs: list[dict[str, Any]], output: Path) -> None:
    runs = sorted(runs, key=when)
    drills = [r for r in runs if r["runbook"] == "restore-drill"
              and r["results"].get("rpo_seconds") is not None
              and r["results"].get("rto_seconds") is not None]
    chart = line_chart(
        "Restore drills: RPO and RTO (minutes)",
        [when(r)[5:16].replace("T", " ") for r in drills],
        {"RPO (backup age)": [r["results"]["rpo_seconds"] / 60 for r in drills],
         "RTO (select to proof)": [r["results"]["rto_seconds"] / 60 for r in drills]},
        "min") if drills else "<p>No restore drills yet.</p>"
    rows = "".join(
        f"<tr class='{escape(r['status'])}'><td>{escape(when(r)[:19])}</td>"
        f"<td>{escape(r['runbook'])}</td><td>{escape(r['environment'])}</td>"
        f"<td>{escape(r['status'])}</td><td>{_seconds(r['duration_seconds'])}</td>"
        f"<td>{escape(str(r['results'].get('backup', '')))}</td>"
        f"<td>{escape(r['message'])}</td><td>{escape(r['run_id'])}</td></tr>"
        for r in reversed(runs))
    output.write_text(f"""<!doctype html><html><head><meta charset="utf-8">
<title>drkit audit report</title><style>
body {{ font-family: sans-serif; margin: 2em; }} table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; font-size: 13px; text-align: left; }}
tr.failed td {{ background: #fbe3e3; }}
</style></head><body><h1>drkit audit report</h1>
<p>{len(runs)} runs, {sum(r['status'] == 'failed' for r in runs)} failed.</p>
{chart}
<h2>Runs (newest first)</h2><table><tr><th>started (UTC)</th><th>runbook</th><th>env</th>
<th>status</th><th>duration s</th><th>backup</th><th>message</th><th>run</th></tr>{rows}</table>
</body></html>
""", encoding="utf-8")
