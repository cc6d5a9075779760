"""Runbook parameters are typed by their notebooks and checked before anything runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from drkit.config import Settings
from drkit.errors import ParameterError
from drkit.ops.failover import Failover
from drkit.runbooks.parameters import check_parameters
from drkit.runbooks.runbook import PACKAGED_NOTEBOOKS
from tests.helpers import run_cli

FAILOVER = PACKAGED_NOTEBOOKS / "failover.ipynb"
DRILL = PACKAGED_NOTEBOOKS / "restore_drill.ipynb"


@pytest.mark.parametrize(("value", "expected"), [
    ("true", True), ("yes", True), ("1", True), ("False", False), ("no", False), ("0", False)])
def test_booleans_are_only_true_or_false(value, expected):
    assert check_parameters("failover", FAILOVER, {"approve": value},
                            frozenset({"approve"})) == {"approve": expected}


@pytest.mark.parametrize(("values", "message"), [
    ({"approve": "maybe"}, "Parameter approve takes true or false .*, not 'maybe'"),
    ({"override_no_go": "2"}, "Parameter override_no_go takes true or false"),
    ({"approve": ""}, "Parameter approve takes true or false"),
    ({"aprove": "true"}, "Runbook failover has no parameter 'aprove'"),
    ({"config_path": "/etc/other.yaml"}, "Parameter config_path is set by drkit run itself"),
])
def test_a_wrong_parameter_is_named(values, message):
    with pytest.raises(ParameterError, match=message):
        check_parameters("failover", FAILOVER, values, frozenset(values))


def test_numbers_must_parse_and_none_means_the_config():
    assert check_parameters("restore-drill", DRILL, {"rpo_hours": "1.5", "rto_minutes": "null"},
                            frozenset({"rpo_hours"})) == {"rpo_hours": 1.5, "rto_minutes": None}
    with pytest.raises(ParameterError, match="rpo_hours takes a finite number, 0 or more, "
                                             "not 'soon'"):
        check_parameters("restore-drill", DRILL, {"rpo_hours": "soon"})


def test_papermill_shows_the_types():
    shown = subprocess.run([sys.executable, "-m", "papermill", "--help-notebook", str(FAILOVER)],
                           capture_output=True, text=True).stdout
    assert "approve: bool (default False)" in shown and "backup: str" in shown


@pytest.mark.parametrize(("runbook", "value", "message"), [
    ("failover", "approve=maybe", "Parameter approve takes true or false (yes/no, 1/0), not "
                                  "'maybe'"),
    ("restore-drill", "until=garbage", "Parameter until takes a time: latest, or ISO 8601"),
    ("restore-drill", "mode=garbage", "Parameter mode takes restore or standby, not 'garbage'"),
    ("nightly-backup", "compression=lz4", "Parameter compression takes gzip or zstd, not"),
    ("nightly-backup", "databases=", "not '' (it names no database; null backs up the"),
    ("nightly-backup", "databases=\uff53hop", "'\uff53' (U+FF53) in a database name is a "
                                             "lookalike of 's'"),
    ("restore-drill", "until=" + "9" * 5000, "not '" + "9" * 40 + "...' (5000 characters)"),
    ("restore-drill", "mode=standby until=latest", "mode=standby drills the standby as it "
                                                   "stands: it takes no backup or until."),
])
def test_drkit_run_refuses_before_anything_runs(tmp_path, monkeypatch, runbook, value, message):
    config = tmp_path / "drkit.yaml"
    config.write_text(f"source: {{host: 127.0.0.1, databases: [shop]}}\n"
                      f"backup: {{state_dir: {tmp_path / 'state'}}}\n")
    monkeypatch.setenv("DRKIT_CONFIG", str(config))
    result = run_cli("run", runbook, *[arg for each in value.split() for arg in ("-p", each)])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr) < 400
    assert not (tmp_path / "state").exists()  # no audit record: nothing ran


def test_the_failover_itself_takes_only_booleans_as_consent():
    settings = Settings(source={"host": "db", "databases": ["shop"]})
    with pytest.raises(ParameterError, match="approve must be true or false, not 'maybe'"):
        Failover(settings, approve="maybe")
    failover = Failover(settings, approve=False)
    with pytest.raises(ParameterError, match="override_no_go must be true or false"):
        failover.decide("maybe")


def test_every_notebook_parameter_is_of_a_type_drkit_run_checks():
    from drkit.runbooks.parameters import _CONVERTERS, notebook_parameters

    for notebook in sorted(Path(PACKAGED_NOTEBOOKS).glob("*.ipynb")):
        types = {name: spec["type"] for name, spec in notebook_parameters(notebook).items()}
        assert types and set(types.values()) <= set(_CONVERTERS), (notebook.name, types)
    drill = notebook_parameters(DRILL)
    assert (drill["until"]["type"], drill["mode"]["type"]) == ("PointInTime", "DrillMode")


@pytest.mark.parametrize("value", ["nan", "inf", "1e400", "-5"])
def test_an_objective_that_cannot_be_breached_or_met_is_refused(value):
    with pytest.raises(ParameterError, match="rpo_hours takes a finite number, 0 or more"):
        check_parameters("restore-drill", DRILL, {"rpo_hours": value}, frozenset({"rpo_hours"}))


@pytest.mark.parametrize(("values", "refused"), [
    ({"mode": "standby", "until": "latest"}, True),
    ({"mode": "standby", "backup": "backup-1.sql.gz"}, True),
    ({"mode": "standby", "backup": "latest"}, False),  # the runbook's YAML gives it
    ({"mode": "restore", "until": "latest"}, False),
    ({"until": "latest"}, False),  # mode restore, by default
])
def test_the_standby_drill_takes_no_backup_or_time(values, refused):
    if refused:
        with pytest.raises(ParameterError, match="it takes no backup or until"):
            check_parameters("restore-drill", DRILL, values, frozenset(values))
    else:
        assert check_parameters("restore-drill", DRILL, values, frozenset(values)) == values
