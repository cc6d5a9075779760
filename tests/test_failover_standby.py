"""The failover with a standby on the sandbox, AWS and the source gone: a standby that
catches up is promoted (seconds of data lost, the time proven by the heartbeat); one found
unlike the source is not, and the failover restores the backup and the archive instead.
The pilot light starts and stops the DR server through the ARM stand-in. Then the rules
behind them, without services."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from drkit.azure.flexserver import FlexibleServer
from drkit.binlog.position import Position
from drkit.binlog.records import ArchivedFile
from drkit.checks import OK
from drkit.config import Settings, load_settings
from drkit.errors import ConfigError
from drkit.health.standby_checks import lag_check
from drkit.ops.failover_standby import unfit
from drkit.ops.pilotlight import ComputeUse, add, last_position, summary
from drkit.ops.standby import existing_standby, follow
from drkit.sandbox.services import free_port
from tests import dbtools
from tests.helpers import point_cli_at, run_cli
from tests.test_pitr import (
    KEYLESS,
    KINDS,
    _write_once,
    fail_over_with_the_region_gone,
    restore_step,
)

TABLES = ("pitr_kinds", "pitr_log", "orders")


@pytest.fixture
def standby(sandbox, tmp_path, monkeypatch):
    """A standby under the source's names on the target, made from a verified base, and an
    archive whose runs beat (the heartbeat proves the time a failover reaches)."""
    point_cli_at(sandbox, tmp_path, monkeypatch)
    monkeypatch.setenv("DRKIT_BINLOG__HEARTBEAT", "true")
    dbtools.query(sandbox, "source", KINDS)
    dbtools.query(sandbox, "source", KEYLESS)
    for table in ("pitr_kinds", "pitr_log"):
        dbtools.query(sandbox, "source", f"TRUNCATE TABLE shop.{table}")
    _drop_the_standby(sandbox)
    base = json.loads(run_cli("backup", "--json").stdout)["backup"]
    assert run_cli("verify", base).exit_code == 0
    assert run_cli("binlog", "stream", "--once").exit_code == 0
    made = run_cli("standby", "init")
    assert made.exit_code == 0, made.stdout + made.stderr
    yield
    _drop_the_standby(sandbox)


def _drop_the_standby(sandbox) -> None:
    for sql in ("DROP DATABASE IF EXISTS shop", "DROP DATABASE IF EXISTS drkit_standby"):
        dbtools.query(sandbox, "target", sql)


def _writes_archived(sandbox, rounds: range) -> None:
    with dbtools.connect(sandbox, "source").cursor() as cursor:
        for n in rounds:
            _write_once(cursor, n)
    assert run_cli("binlog", "stream", "--once").exit_code == 0


def _checksums(sandbox, role: str) -> dict[str, int]:
    rows = dbtools.as_root(sandbox, role, "CHECKSUM TABLE " + ", ".join(
        f"shop.{table}" for table in TABLES))
    return {name.split(".", 1)[1].lower(): value for name, value in rows}


def test_a_pilot_light_standby_is_promoted_with_aws_and_the_source_gone(sandbox, standby,
                                                                        monkeypatch):
    """Kept current by pilot-light catch-ups (the server started and stopped again through
    the ARM stand-in, its minutes counted), the standby is what the failover promotes: the
    last archived minutes applied, the time proven by the heartbeat, seconds lost, an RTO;
    no follower applies to it after that, and a rerun of the failover keeps it."""
    server = FlexibleServer(load_settings())
    server.stop()
    try:
        monkeypatch.setenv("DRKIT_STANDBY__STOP_SERVER_AFTER", "true")
        _writes_archived(sandbox, range(1, 4))
        followed = run_cli("standby", "follow", "--once", "--json")
        assert followed.exit_code == 0, followed.stdout + followed.stderr
        assert json.loads(followed.stdout)["transactions"] > 0
        assert server.state() == "Stopped"  # started for the catch-up, stopped after it
        status = json.loads(run_cli("standby", "status", "--json").stdout)
        light = status["pilot_light"]
        assert light["catch_ups"] == 1 and light["last_started_server"], light
        assert light["compute_seconds"] == light["last_compute_seconds"] > 0
        monkeypatch.setenv("DRKIT_TARGET__PORT", str(free_port()))  # as a stopped server
        stopped = run_cli("standby", "status", "--json")
        monkeypatch.delenv("DRKIT_TARGET__PORT")
        assert stopped.exit_code == 0, stopped.stdout + stopped.stderr
        as_left = json.loads(stopped.stdout)
        assert as_left["position_from"] == "last catch-up", as_left
        assert (as_left["file"], as_left["offset"]) == (status["file"], status["offset"])
        monkeypatch.delenv("DRKIT_STANDBY__STOP_SERVER_AFTER")
        _writes_archived(sandbox, range(4, 6))  # the last minutes: archived, not applied
        expected = _checksums(sandbox, "source")
        results = fail_over_with_the_region_gone(monkeypatch)
    finally:
        server.start()
    assert _checksums(sandbox, "target") == expected
    timeline = {s["name"]: s["outcome"] for s in results["timeline"]}
    assert timeline["DR server up"].endswith("started"), timeline
    assert timeline["restore and prove"].startswith("standby shop caught up in "), timeline
    assert "promoted; data reaches" in timeline["restore and prove"]
    assert results["reached_by"].endswith("time proven by its heartbeat"), results
    assert 0 <= results["data_loss_seconds"] < 60 and results["rto_seconds"] > 0, results
    assert results["standby"]["transactions"] > 0 and results["databases"] == ["shop"]
    refused = run_cli("standby", "follow", "--once")
    assert refused.exit_code == 50, refused.stdout + refused.stderr
    assert "was promoted by the failover that began at" in refused.stderr
    # The primary now takes writes; a rerun of the failover keeps it as it is.
    dbtools.query(sandbox, "target", "INSERT INTO shop.pitr_log VALUES (NOW(6), 'new primary')")
    rerun = fail_over_with_the_region_gone(monkeypatch)
    assert restore_step(rerun)["outcome"].startswith("skipped: standby shop was promoted by "
                                                     "the failover that began at"), rerun
    assert rerun["rto_seconds"] is None and rerun["reached_by"].startswith("kept"), rerun
    assert dbtools.query(sandbox, "target", "SELECT COUNT(*) FROM shop.pitr_log WHERE what = "
                         "'new primary'") == [(1,)]
    _init_names_what_works_on_the_promoted_standby(sandbox)


def _init_names_what_works_on_the_promoted_standby(sandbox) -> None:
    """standby init makes no standby on the new primary, and says so without offering what
    fails there: following it, or --replace (init has none)."""
    again = run_cli("standby", "init")
    assert again.exit_code == 50, again.stdout + again.stderr
    assert "promoted by the failover that began at" in again.stderr
    assert "another target" in again.stderr and "standby follow" not in again.stderr
    # Its record gone, its database is one init does not load over, saying what it takes.
    dbtools.query(sandbox, "target", "DROP DATABASE drkit_standby")
    occupied = run_cli("standby", "init")
    assert occupied.exit_code == 35, occupied.stdout + occupied.stderr
    assert "drkit standby init --as NAME" in occupied.stderr
    assert "--replace" not in occupied.stderr


def test_a_standby_unlike_the_source_is_not_promoted_and_the_failover_restores(sandbox,
                                                                             standby,
                                                                             monkeypatch):
    """A row deleted by hand on the standby, then updated on the source: the assessment
    offers the standby (GO with its lag), its catch-up finds the row missing, and the
    failover restores the backup and the archive over it instead, saying why."""
    dbtools.query(sandbox, "target", "DELETE FROM shop.orders WHERE id = 3")
    dbtools.query(sandbox, "source", "UPDATE shop.orders SET status = IF(status = 'paid', "
                  "'new', 'paid') WHERE id = 3")
    _writes_archived(sandbox, range(1, 3))
    expected = _checksums(sandbox, "source")
    results = fail_over_with_the_region_gone(monkeypatch)
    assert results["timeline"][0]["outcome"].startswith(
        "GO: the primary is down and the standby shop ("), results["timeline"][0]
    step = restore_step(results)["outcome"]
    assert step.startswith("standby shop not promoted (its catch-up failed: The standby no "
                           "longer equals the source"), step
    assert "restored " in step and "then the binlog to" in step, step
    assert "no longer equals the source" in results["standby_not_promoted"]
    assert results["reached_by"].startswith("base + ")
    assert _checksums(sandbox, "target") == expected
    assert dbtools.query(sandbox, "target", "SHOW DATABASES LIKE 'drkit_standby'") == []


# --- units ----------------------------------------------------------------------------------

class _Gaps:
    def __init__(self, gaps: list[dict] | None = None) -> None:
        self._gaps = gaps or []

    def gaps(self) -> list[dict]:
        return self._gaps


_FILES = [ArchivedFile("bin.000001", 500, last_event_at="2026-12-07T04:00:00+00:00"),
          ArchivedFile("bin.000002", 300, last_event_at="2026-12-07T04:05:00+00:00")]
_AT = Position({"shop": "shop"}, "base", "bin.000002", 120,
               last_event_at=datetime(2026, 12, 7, 4, 4, tzinfo=UTC))


@pytest.mark.parametrize(("change", "gaps", "databases", "on_target", "why"), [
    ({}, [], ["shop"], {"shop"}, None),
    ({"promoted": "the failover that began at X"}, [], ["shop"], {"shop"}, "was promoted by"),
    ({"diverged": "1 rows ..."}, [], ["shop"], {"shop"}, "no longer equals the source"),
    ({}, [], ["shop", "crm"], {"shop"}, "does not keep crm"),
    ({}, [], ["shop"], set(), "its database shop is not on the target"),
    ({}, [{"after_file": "bin.000002", "missing": "purged"}], ["shop"], {"shop"}, "gap after"),
    ({"offset": 301}, [], ["shop"], {"shop"}, "past the end of that file"),
    ({"last_event_at": datetime(2026, 12, 7, 4, 6, tzinfo=UTC)}, [], ["shop"], {"shop"},
     "is after the archive's newest event"),
])
def test_a_standby_is_promoted_only_when_nothing_says_it_may_not_be(change, gaps, databases,
                                                                   on_target, why):
    at = Position(**{**vars(_AT), **change})
    found = unfit(at, _Gaps(gaps), _FILES, databases, on_target)
    assert found is None if why is None else why in found, found


@pytest.mark.parametrize(("change", "says", "fix"), [
    ({}, "; nothing was restored.", "Follow it with drkit standby follow"),
    ({"promoted": "the failover that began at X"}, ", promoted by the failover that began at "
     "X: it is the primary now", "a new standby goes on another target"),
    ({"diverged": "1 rows ..."}, ", which no longer equals the source (1 rows ...)",
     "Make it again"),
])
def test_init_on_a_standby_names_what_works_on_it(change, says, fix):
    refused = existing_standby(Position(**{**vars(_AT), **change}))
    assert refused.message.startswith("The target already has a standby (shop, from base "
                                      "base)" + says), refused.message
    assert fix in refused.fix
    assert ("standby follow" in refused.fix) == (not change), refused.fix


def test_doctor_finds_a_promoted_standby_no_standby_any_more():
    report = {"databases": {"shop": "shop"}, "lag_seconds": 3600, "lag_bytes": 10,
              "caught_up_at": None, "promoted": "the failover that began at X"}
    check = lag_check(report, 15)
    assert check.status == OK and "no standby any more" in check.detail


def test_the_pilot_light_counts_the_compute_each_catch_up_used():
    ledger = add({}, ComputeUse("2026-12-07T04:00:00+00:00", True, 150.0))
    ledger = add(ledger, ComputeUse("2026-12-07T04:15:00+00:00", False, 0.0))
    ledger = add(ledger, ComputeUse("2026-12-07T04:30:00+00:00", True, 90.0))
    assert ledger["since"] == "2026-12-07T04:00:00+00:00" and ledger["catch_ups"] == 3
    assert ledger["compute_seconds"] == 240.0
    assert summary(ledger) == {"since": "2026-12-07T04:00:00+00:00", "catch_ups": 3,
                               "compute_seconds": 240.0, "last_compute_seconds": 90.0,
                               "last_started_server": True}
    assert summary({}) is None
    at = Position({"shop": "sb"}, "base", "bin.000002", 120, last_event_at=datetime(
        2026, 12, 7, 4, 4, tzinfo=UTC), last_catch_up={"transactions": 3})
    left = add(ledger, ComputeUse("2026-12-07T04:45:00+00:00", True, 60.0), at)
    assert last_position(left) == at  # what status shows while the server is stopped
    assert last_position(add(left, ComputeUse("2026-12-07T05:00:00+00:00", False, 0.0))) == at


_SOURCE = {"host": "db", "databases": ["shop"]}


def test_the_pilot_light_is_refused_to_a_follower_that_keeps_running():
    settings = Settings(source=_SOURCE, standby={"stop_server_after": True})
    with pytest.raises(ConfigError, match="for drkit standby follow --once"):
        follow(settings, once=False)


def test_the_standby_unit_follows_the_archive_and_stays_down_once_promoted(tmp_path,
                                                                          monkeypatch):
    config = tmp_path / "drkit.yaml"
    config.write_text("environment: prod\nsource:\n  host: db\n  databases: [shop]\n")
    monkeypatch.setenv("DRKIT_CONFIG", str(config))
    unit = run_cli("schedule", "unit", "--for", "standby")
    assert unit.exit_code == 0, unit.stderr
    assert unit.stdout.split("ExecStart=", 1)[1].split("\n", 1)[0].endswith(" standby follow")
    assert "\nRestartPreventExitStatus=50\n" in unit.stdout and "Restart=always" in unit.stdout
    binlog = run_cli("schedule", "unit").stdout  # the binary log's, as before
    assert " binlog stream\n" in binlog and "RestartPreventExitStatus" not in binlog
    refused = run_cli("schedule", "show", "--for", "standby")
    assert refused.exit_code == 2 and "--for chooses the systemd unit" in refused.stderr
