"""The verdict an auditor reads first: PASSED, FAILED at which step, or INTERRUPTED, and the
figures beside their objectives (drkit.runbooks.verdict)."""

from __future__ import annotations

import nbformat
import pytest

from drkit.errors import RunInterrupted, RunTerminated
from drkit.exitstatus import ExitStatus
from drkit.runbooks.verdict import figures, insert, markdown, summary, verdict_of

KILLED = ExitStatus.KILLED


@pytest.mark.parametrize(("exit_code", "verdict"), [
    (0, "PASSED"), (1, "FAILED"), (44, "FAILED"), (RunInterrupted.exit_code, "INTERRUPTED"),
    (RunTerminated.exit_code, "INTERRUPTED"), (KILLED, "INTERRUPTED")])
def test_the_exit_code_gives_the_verdict(exit_code, verdict):
    assert verdict_of(exit_code) == verdict


def test_figures_stand_beside_their_objectives():
    results = {"backup": "shop-20261207-010203.sql.gz", "compressed_bytes": 2.5 * 1024 ** 2,
               "rpo_seconds": 21, "rto_seconds": 5400, "proof": "passed"}
    assert figures(results, {"rpo_hours": 1, "rto_minutes": 60}) == [
        "backup shop-20261207-010203.sql.gz (2.5M)", "RPO 21 s of 1 h: met",
        "RTO 1 h 30 min of 1 h: BREACHED", "proof passed"]


def test_a_figure_without_an_objective_is_shown_alone_and_absent_ones_not_at_all():
    assert figures({"rpo_seconds": 3 * 3600, "backup": "b"}, {}) == ["backup b", "RPO 3 h"]
    assert figures({}, {"rpo_hours": 1}) == []


def test_an_objective_met_exactly_is_met():
    assert figures({"rpo_seconds": 3600}, {"rpo_hours": 1}) == ["RPO 1 h of 1 h: met"]


def test_the_summary_names_the_failed_step_in_one_line():
    failed = summary("restore-drill", 44, "failed at step '2. Restore' (In [4]): too slow",
                     {"rto_seconds": 30}, {"rto_minutes": 0.1})
    assert failed == ["restore-drill: FAILED at step '2. Restore' (In [4]): too slow",
                      "RTO 30 s of 6 s: BREACHED"]
    assert summary("nightly-backup", 0, "", {}, {}) == ["nightly-backup: PASSED"]
    assert summary("failover", RunTerminated.exit_code, "Interrupted by SIGTERM", {}, {}) == [
        "failover: INTERRUPTED - Interrupted by SIGTERM"]


def test_the_verdict_cell_is_coloured_by_verdict_and_escapes_what_it_quotes():
    text = markdown(["drill: FAILED - <script>x</script> & more", "RPO 1 s"], 20)
    assert text.startswith("<h2 style='color:#cf222e'>Verdict: drill: FAILED - "
                           "&lt;script&gt;x&lt;/script&gt; &amp; more</h2>")
    assert "\n- RPO 1 s" in text and text.endswith("(exit code 20)")
    assert "#1a7f37" in markdown(["drill: PASSED"], 0)
    assert "#9a6700" in markdown(["drill: INTERRUPTED - stopped"], KILLED)


@pytest.mark.parametrize(("tags", "where"), [
    ([["parameters"], ["injected-parameters"], []], 2),  # after papermill's parameters
    ([[], ["parameters"], []], 2),  # else after the notebook's own
    ([[], []], 0)])  # else first
def test_the_verdict_cell_follows_the_parameters(tmp_path, tags, where):
    notebook = nbformat.v4.new_notebook()
    for n, cell_tags in enumerate(tags):
        cell = nbformat.v4.new_code_cell(f"x = {n}")
        cell.metadata["tags"] = cell_tags
        notebook.cells.append(cell)
    path = tmp_path / "run.ipynb"
    nbformat.write(notebook, path)
    insert(path, "Verdict: PASSED")
    cells = nbformat.read(path, as_version=4).cells
    assert len(cells) == len(tags) + 1
    assert cells[where].cell_type == "markdown" and cells[where].source == "Verdict: PASSED"
    assert cells[where].metadata["tags"] == ["drkit-verdict"]


def test_the_time_the_data_reaches_is_a_figure_saying_how():
    base = {"backup": "b.sql.gz", "data_reaches": "2026-12-07T04:19:44+00:00"}
    assert figures({**base, "reached_by": "base + 12 transactions replayed"}, {})[1] == \
        "data reaches 2026-12-07 04:19:44 UTC (base + 12 transactions replayed)"
    assert figures(base, {})[1] == "data reaches 2026-12-07 04:19:44 UTC"
    assert not any(line.startswith("data reaches") for line in figures({"backup": "b"}, {}))


def test_the_gates_a_person_answered_are_figures_refusals_with_what_was_typed():
    gates = [{"action": "start the failover", "answer": "refused", "typed": "yes",
              "os_user": "ines", "at": "2026-12-07T04:19:50+00:00"},
             {"action": "start the failover", "answer": "confirmed", "typed": "FAILOVER",
              "os_user": "ines", "at": "2026-12-07T04:19:51+00:00"},
             {"action": "put up the maintenance page", "answer": "approved by parameter",
              "typed": None, "os_user": "cron", "at": "2026-12-07T04:19:52+00:00"}]
    assert figures({"gates": gates}, {}) == [
        "gate 'start the failover': refused by ines at 2026-12-07T04:19:50+00:00 "
        "(typed 'yes')",
        "gate 'start the failover': confirmed by ines at 2026-12-07T04:19:51+00:00"]
