"""A failover run by hand is recorded as fully as an unattended one: the failover notebook
walked cell by cell through a real drkit kernel, one gate answered wrongly first, then
published and compared field by field with drkit run's record of the same failover."""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path

from drkit.azure import maintenance
from drkit.config import load_settings
from drkit.runbooks.incident import new_incident
from drkit.runbooks.runbook import load_runbook, runbook_dirs
from tests import dbtools
from tests.helpers import run_cli
from tests.notebook_walker import walking
from tests.test_failover import _audit, incident  # noqa: F401  (a fixture)

# What each gated cell is answered; the decide cell is answered wrongly first.
ANSWERS = {"failover.maintenance_on(": ("FAILOVER",), "failover.bring_up_server(": ("FAILOVER",),
           "failover.restore(": ("FAILOVER",), "failover.end_incident(": ("",)}


def _walk_failover(notebook: Path) -> None:
    with walking(notebook) as walker:
        for cell in walker.code_cells():
            if "failover.decide(" in cell.source:
                assert not walker.run(cell, ("yes",))  # refused: nothing changed, rerun
            answers = next((a for key, a in ANSWERS.items() if key in cell.source), ())
            assert walker.run(cell, answers or (("FAILOVER",) if "decide(" in cell.source
                                                else ())), cell.outputs
        walker.save()


def _start_over(sandbox, arm) -> None:
    """The world as before the hand run: no copy on the target, the server stopped, no
    page, and no marker of an earlier restore."""
    settings = load_settings()
    dbtools.query(sandbox, "target", "DROP DATABASE IF EXISTS shop")
    for marker in (settings.backup.state_dir / "failover").glob("restore-*.json"):
        marker.unlink()
    arm.servers["drkit-dr"]["state"] = "Stopped"
    maintenance.remove(settings)


def test_a_hand_run_failover_is_recorded_as_fully_as_an_unattended_one(sandbox, arm,
                                                                      incident):  # noqa: F811
    settings = load_settings()
    opened = new_incident(settings, Path(os.environ["DRKIT_CONFIG"]),
                          load_runbook("failover", runbook_dirs(settings)),
                          settings.environment)
    _walk_failover(opened.notebook)
    published = run_cli("audit", "publish", str(opened.notebook), "--by", "Ines Commander")
    assert published.exit_code == 0, published.stdout + published.stderr
    hand = _audit(settings, published.stdout.split(":")[0])
    _start_over(sandbox, arm)
    unattended_run = run_cli("run", "failover", "-p", "approve=true", "--json")
    assert unattended_run.exit_code == 0, unattended_run.stdout
    unattended = _audit(settings, json.loads(unattended_run.stdout)["run_id"])
    # The same record, field by field; only how it was run differs.
    assert set(hand) - {"notebook_sha256", "published_by"} == set(unattended)
    assert hand["mode"] == "interactive" and unattended["mode"] == "papermill"
    assert hand["published_by"] == {"os_user": getpass.getuser(), "name": "Ines Commander"}
    assert {**hand["parameters"], "approve": True} == unattended["parameters"]
    for field in ("runbook", "environment", "status", "verdict", "exit_code", "message"):
        assert hand[field] == unattended[field], field
    assert set(hand["results"]) == set(unattended["results"])
    for field in ("status", "backup", "databases", "proof", "rows"):
        assert hand["results"][field] == unattended["results"][field], field
    # Its run id and start are the incident's (failover open), its times the cells'.
    incident_file = json.loads((opened.folder / "incident.json").read_text())
    assert hand["run_id"] == incident_file["run_id"]
    assert hand["started_at"] == incident_file["started_at"]
    assert hand["duration_seconds"] > 0 and hand["results"]["rto_seconds"] > 0
    # Every gate answer, the wrong one too, with who gave it.
    answers = [(g["action"], g["answer"], g["typed"]) for g in hand["results"]["gates"]]
    assert answers[:2] == [("start the failover", "refused", "yes"),
                           ("start the failover", "confirmed", "FAILOVER")]
    # ... and at the end, Enter left the page up (unattended: maintenance_off=False did).
    assert [g["action"] for g in hand["results"]["gates"][1:-1]] == \
        [g["action"] for g in unattended["results"]["gates"]]
    assert hand["results"]["gates"][-1]["answer"] == "left up"
    ended = {s["name"]: s["outcome"] for s in hand["results"]["timeline"]}
    assert ended["maintenance page off"].startswith("left up for now")
    assert {g["os_user"] for g in hand["results"]["gates"]} == {getpass.getuser()}
    assert [s["outcome"] for s in hand["results"]["timeline"][1:3]] == [
        "not approved", "confirmed"]
    # audit list shows its figures, not "- - -".
    table = run_cli("audit", "list").stdout.splitlines()
    row = next(line.split("\t") for line in table if line.startswith(hand["run_id"]))
    assert row[-1] == f"{hand['results']['rto_seconds']:.0f}" and row[-3] != "-", row
