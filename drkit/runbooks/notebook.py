"""What the runbook notebooks call to set up, show results, and hand results to the runner.

Notebooks stay thin: each step is one drkit call; this module only loads settings and
displays things. Nothing here decides anything.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, is_dataclass
from html import escape
from pathlib import Path
from typing import Any

from drkit import __version__
from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import Catalog
from drkit.config import Settings, load_settings
from drkit.console import Environment
from drkit.errors import DrkitError
from drkit.redact import redact
from drkit.runbooks.charts import bar_chart


def _display(html: str) -> None:
    from IPython.display import HTML, display

    display(HTML(redact(html)))


def start(config_path: str | None = None, environment: str | None = None) -> Settings:
    """Load the settings (``config_path`` or ``$DRKIT_CONFIG``) and show what they point at."""
    _errors_as_sentences()
    settings = load_settings(config_path)
    # Readable lines in the notebook's output, and the seed-style run log if configured.
    Environment(stdout=sys.stdout, stderr=sys.stdout).configure_logging(
        settings.backup.log_file, json_lines=False)
    if environment:
        settings.environment = environment
    target = settings.target
    show({
        "drkit": __version__,
        "environment": settings.environment,
        "source": f"{settings.source.host}:{settings.source.port} "
                  f"({', '.join(settings.source.databases)})",
        "backup store": f"{settings.storage.container}/{settings.storage.prefix}",
        "restore target": f"{target.host}:{target.port} ({target.kind})" if target else "-",
        "credentials": f"AWS secret {settings.aws.secret_id} in {settings.aws.region}",
    }, "Configuration")
    return settings


def _errors_as_sentences() -> None:
    """A drkit error in a cell shows as its sentence, fix and exit code, not a traceback
    (papermill still sees the cell fail); any other exception keeps its traceback."""
    try:
        from IPython import get_ipython
    except ImportError:  # not in a kernel
        return
    shell = get_ipython()
    if shell is None:
        return

    def sentence(shell, etype, value, tb, tb_offset=None) -> list[str]:
        lines = [f"{etype.__name__}: {value}", f"(drkit exit code {value.exit_code})"]
        # A custom handler displays what it returns itself; this is IPython's own way to
        # send it as the cell's error output (ename, evalue, these lines as the traceback).
        shell._showtraceback(etype, value, lines)
        return lines

    shell.set_custom_exc((DrkitError,), sentence)


def show(value: Any, title: str | None = None) -> None:
    """A dataclass, dict or list of dicts as an HTML table."""
    if is_dataclass(value):
        value = asdict(value)
    rows = value if isinstance(value, list) else [value]
    if not rows:
        _display(f"<p><i>{escape(title or '')}: nothing</i></p>")
        return
    if len(rows) == 1:
        body = "".join(f"<tr><th style='text-align:left'>{escape(str(k))}</th>"
                       f"<td style='text-align:left'>{escape(_cell(v))}</td></tr>"
                       for k, v in rows[0].items())
    else:
        columns = list(rows[0])
        body = "<tr>" + "".join(f"<th>{escape(c)}</th>" for c in columns) + "</tr>" + "".join(
            "<tr>" + "".join(f"<td>{escape(_cell(r.get(c)))}</td>" for c in columns) + "</tr>"
            for r in rows)
    heading = f"<h4>{escape(title)}</h4>" if title else ""
    _display(f"{heading}<table>{body}</table>")


def _cell(value: Any) -> str:
    """A value as a reader wants it: ``a: 1, b: 2`` for a mapping, items joined for a list."""
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_cell(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return "; ".join(_cell(v) for v in value) or "-"
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)


def backup_history(settings: Settings, last: int = 14) -> None:
    """The recent backups as a size chart: a sudden drop is easier to see than to read."""
    store = BackupStore.from_settings(settings)
    entries = Catalog(store).entries()[-last:]
    _display(bar_chart("Recent backups (compressed size)",
                       [f"{e.taken_at:%m-%d %H:%M} {'✓' if e.verified == 'ok' else ''}"
                        for e in entries],
                       [e.size / 2**20 for e in entries], "MiB"))


def chart(title: str, values: dict[str, float], unit: str) -> None:
    _display(bar_chart(title, list(values), list(values.values()), unit))


def record(results_path: str | None, **results: Any) -> None:
    """Hand the run's key results to the runner (for run.json), and show them."""
    show(results, "Recorded results")
    if results_path:
        Path(results_path).write_text(json.dumps(results, default=str, ensure_ascii=False))
