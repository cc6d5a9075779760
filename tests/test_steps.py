"""The step `drkit run` shows while papermill executes: the heading above the running cell."""

from __future__ import annotations

import json

from drkit.runbooks.steps import Step, running_step


def _notebook(path, running: int | None):
    cells = [
        {"cell_type": "code", "source": "approve = False", "metadata": {"tags": ["parameters"]}},
        {"cell_type": "markdown", "source": ["# Failover\n", "Read first.\n"], "metadata": {}},
        {"cell_type": "markdown", "source": "## 1. Assess\nWhat AWS says.", "metadata": {}},
        {"cell_type": "code", "source": "assess()", "metadata": {}},
        {"cell_type": "markdown", "source": "## 2. Restore and prove ##", "metadata": {}},
        {"cell_type": "code", "source": "restore()", "metadata": {}},
        {"cell_type": "code", "source": "prove()", "metadata": {}},
    ]
    code = [c for c in cells if c["cell_type"] == "code"]
    for index, cell in enumerate(code, 1):
        cell["metadata"]["papermill"] = {"status": "running" if index == running else
                                         "completed" if running and index < running else
                                         "pending"}
    path.write_text(json.dumps({"cells": cells}))
    return path


def test_the_step_is_the_heading_above_the_running_cell(tmp_path):
    path = tmp_path / "notebook.ipynb"
    assert running_step(_notebook(path, 1)) == Step("parameters", 1, 4)
    assert running_step(_notebook(path, 2)) == Step("1. Assess", 2, 4)
    assert str(running_step(_notebook(path, 4))) == "2. Restore and prove (cell 4 of 4)"
    assert running_step(_notebook(path, None)) is None  # not started, or done


def test_a_half_written_or_missing_notebook_is_no_step(tmp_path):
    path = tmp_path / "notebook.ipynb"
    assert running_step(path) is None
    path.write_text('{"cells": [{"cell_type": "co')
    assert running_step(path) is None
