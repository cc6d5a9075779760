"""The standby proven equal to the living source (``standby check``), and the restore drill
on the standby (``-p mode=standby``): the base and the standby made as tests/test_standby.py
makes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import dbtools
from tests.helpers import run_cli
from tests.test_json_vocabulary import speaks_the_vocabulary
from tests.test_pitr import _PausableWriter
from tests.test_standby import _base_and_standby, _position, standby_env  # noqa: F401


def test_the_check_and_the_standby_drill_pass_under_writes_and_a_hand_made_drift_fails(
        sandbox, standby_env, monkeypatch):  # noqa: F811
    """While a writer changes the source, ``standby check`` brings the standby to exactly the
    coordinates of its snapshot of the source and finds every table equal. ``drkit run
    restore-drill -p mode=standby`` catches it up to the archive's newest event, its time
    proven by the heartbeat (the RTO a failover would have now), checks it, and records RTO,
    RPO and how the data got there. Then one value changed by hand on the standby (as many
    rows as before) fails the check, naming the table, and it is never followed again."""
    monkeypatch.setenv("DRKIT_BINLOG__HEARTBEAT", "true")
    with _PausableWriter(sandbox) as writer:
        _base_and_standby(sandbox)
        writer.writes_go_on()  # the standby is behind: the check catches it up
        checked = run_cli("standby", "check", "--json")
        checked_at = _position(sandbox)
        writer.writes_go_on()  # what the drill's catch-up has to apply
    assert not writer.failures, writer.failures
    assert run_cli("binlog", "stream", "--once").exit_code == 0  # beats, then archives
    drilled = run_cli("run", "restore-drill", "-p", "mode=standby", "--json")
    assert checked.exit_code == 0, checked.stdout + checked.stderr
    report = json.loads(checked.stdout)
    assert speaks_the_vocabulary(report), report
    assert report["ok"] and report["transactions"] > 0, report
    assert report["tables_checked"] >= 7 and not report["differences"], report
    assert checked_at == (report["file"], report["offset"])

    assert drilled.exit_code == 0, drilled.stdout + drilled.stderr
    outcome = json.loads(drilled.stdout)
    results = json.loads((Path(outcome["record"]) / "run.json").read_text())["results"]
    assert results["mode"] == "standby" and results["proof"].startswith("passed"), results
    assert 0 < results["rto_seconds"] < 60 and results["rpo_seconds"] < 60, results
    assert results["reached_by"].startswith("standby + "), results
    assert results["reached_by"].endswith("proven by its heartbeat"), results
    assert any(line.startswith("RTO ") for line in outcome["summary"]), outcome
    assert any(line.startswith("data reaches ") for line in outcome["summary"]), outcome

    dbtools.query(sandbox, "target", "UPDATE sb.customers SET balance = balance + 0.01 "
                  "WHERE id = 1")
    found = run_cli("standby", "check")
    assert found.exit_code == 50, found.stdout + found.stderr
    said = found.stderr.strip().splitlines()[-1]  # the error's sentence, after the log
    assert "no longer equals the source" in said and "table sb.customers" in said, said
    assert "orders" not in said, said  # only the table that differs
    refused = run_cli("standby", "follow", "--once")
    assert refused.exit_code == 50 and "customers" in refused.stderr, refused.stderr


# --- units ----------------------------------------------------------------------------------

def test_the_drill_takes_one_of_its_modes_and_no_backup_or_time_for_the_standby():
    from drkit.errors import ParameterError
    from drkit.ops.drill import Objectives, drill_in_mode
    from drkit.ops.restore import RestoreRequest

    with pytest.raises(ParameterError, match="mode takes restore or standby, not 'replica'"):
        drill_in_mode(None, "replica", RestoreRequest(), Objectives())
    for asked in (RestoreRequest(until="latest"), RestoreRequest(backup="backup-1.sql.gz")):
        with pytest.raises(ParameterError, match="it takes no backup or until"):
            drill_in_mode(None, "standby", asked, Objectives())
