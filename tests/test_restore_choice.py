"""Restores that restore what was asked and nothing else: the point-in-time base of the
database named, one database out of a backup of several, nothing under the requested name
until the copy is whole, and a failover that applies everything the archive holds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import dbtools
from tests.helpers import run_cli
from tests.test_pitr import (  # noqa: F401 (pitr: a fixture)
    _checksums,
    _write_once,
    fail_over_with_the_region_gone,
    pitr,
    restore_step,
)

SMALL = "blsmall"
DRKIT = str(Path(sys.executable).parent / "drkit")


@pytest.fixture
def second_database(sandbox, pitr):  # noqa: F811
    """A second database on the source, backed up on its own (as its own cron line does)."""
    dbtools.as_root(sandbox, "source", f"DROP DATABASE IF EXISTS {SMALL}")
    dbtools.as_root(sandbox, "source", f"CREATE DATABASE {SMALL}")
    dbtools.query(sandbox, "source", f"CREATE TABLE {SMALL}.items (id INT PRIMARY KEY, "
                  "note VARCHAR(20))")
    dbtools.query(sandbox, "source", f"INSERT INTO {SMALL}.items VALUES (1, 'a'), (2, 'b')")
    yield
    dbtools.as_root(sandbox, "source", f"DROP DATABASE IF EXISTS {SMALL}")
    for name in ("small_r", "bs_only", "killed_r"):
        dbtools.query(sandbox, "target", f"DROP DATABASE IF EXISTS {name}")


def _backup(*databases: str) -> str:
    result = run_cli("backup", *[a for d in databases for a in ("--database", d)], "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["backup"]


def _verified(backup: str) -> str | None:
    listed = json.loads(run_cli("list", "--json").stdout)
    return next(e["verified"] for e in listed if e["backup"] == backup)


def test_a_point_in_time_restore_takes_the_base_of_the_database_it_restores(
        sandbox, second_database):
    """Backups of shop (verified) and blsmall (never verified): restore --until of blsmall
    starts from blsmall's base, verified first, never from shop's; unnamed, it is refused."""
    shop = _backup("shop")
    assert run_cli("verify", shop).exit_code == 0
    small = _backup(SMALL)
    dbtools.query(sandbox, "source", f"INSERT INTO {SMALL}.items VALUES (3, 'after')")
    assert run_cli("binlog", "stream", "--once").exit_code == 0

    unnamed = run_cli("restore", "--until", "latest", "--as", "small_r")
    assert unnamed.exit_code == 37, unnamed.stderr
    assert "--database" in unnamed.stderr and SMALL in unnamed.stderr
    assert dbtools.query(sandbox, "target", "SHOW DATABASES LIKE 'small_r'") == []

    result = run_cli("restore", "--until", "latest", "--database", SMALL, "--as", "small_r",
                     "--json")
    assert result.exit_code == 0, result.stderr
    restored = json.loads(result.stdout)
    assert restored["backup"] == small and restored["databases"] == {SMALL: "small_r"}
    assert restored["replay"]["reached"]
    assert dbtools.query(sandbox, "target", "SELECT id, note FROM small_r.items ORDER BY id") \
        == [(1, "a"), (2, "b"), (3, "after")]
    assert [t for (t,) in dbtools.query(sandbox, "target", "SHOW TABLES FROM small_r")] == \
        ["items"]
    assert _verified(small) == "ok"  # verified before it was used


def test_one_database_is_restored_out_of_a_backup_of_several(sandbox, second_database):
    both = _backup("shop", SMALL)
    refused = run_cli("restore", both, "--as", "bs_only")
    assert refused.exit_code == 37 and "--database" in refused.stderr, refused.stderr
    unknown = run_cli("restore", both, "--database", "nope", "--as", "bs_only")
    assert unknown.exit_code == 2 and "holds no database nope" in unknown.stderr

    result = run_cli("restore", both, "--database", SMALL, "--as", "bs_only", "--json")
    assert result.exit_code == 0, result.stderr
    restored = json.loads(result.stdout)
    assert restored["databases"] == {SMALL: "bs_only"}
    assert [t["table"] for t in restored["proof"]["tables"]] == [f"{SMALL}.items"]
    assert dbtools.table_fingerprint(sandbox, "target", "bs_only") == \
        dbtools.table_fingerprint(sandbox, "source", SMALL)
    assert run_cli("prove", both, "--database", SMALL, "--as", "bs_only").exit_code == 0


@pytest.mark.parametrize("signal_sent", [signal.SIGTERM, signal.SIGKILL])
def test_a_restore_stopped_before_its_copy_is_whole_leaves_nothing_under_its_name(
        sandbox, second_database, signal_sent):
    """Stopped once loaded, before its proof (at that exact point: DRKIT_FAILPOINT): no
    database under --as (SIGTERM drops the copy; kill -9 leaves it under its scratch name,
    which doctor names), and a plain rerun works."""
    backup = _backup("shop")
    action = "stop" if signal_sent == signal.SIGTERM else "kill"
    process = subprocess.Popen([DRKIT, "restore", backup, "--as", "killed_r"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "DRKIT_FAILPOINT": f"restore:1:{action}"})
    try:
        if signal_sent == signal.SIGTERM:
            while _state(process.pid) != "T":  # frozen at the point: signalled there
                assert process.poll() is None
                time.sleep(0.02)
            process.send_signal(signal.SIGTERM)
            process.send_signal(signal.SIGCONT)
        code = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == (143 if signal_sent == signal.SIGTERM else -9)
    assert dbtools.query(sandbox, "target", "SHOW DATABASES LIKE 'killed_r'") == []
    scratches = [d for (d,) in dbtools.query(sandbox, "target",
                                             "SHOW DATABASES LIKE 'drkit\\_restore\\_%'")]
    if signal_sent == signal.SIGKILL:
        assert scratches
        doctor = run_cli("doctor", "--json")
        assert all(s in doctor.stdout for s in scratches), doctor.stdout
        for scratch in scratches:
            dbtools.query(sandbox, "target", f"DROP DATABASE `{scratch}`")
    else:
        assert scratches == []
    rerun = run_cli("restore", backup, "--as", "killed_r")
    assert rerun.exit_code == 0, rerun.stderr


def _state(pid: int) -> str:
    """A process's state letter (R, S, T for stopped, Z)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_the_failover_over_an_earlier_proven_copy_applies_the_whole_archive(
        sandbox, pitr, monkeypatch):  # noqa: F811
    """The target holds a proven copy of the newest backup (an earlier restore left it),
    binlog.enabled says off, the archive holds later rows: the failover restores base +
    archive to its newest event, says so at its gate, and records the data lost."""
    monkeypatch.setenv("DRKIT_BINLOG__ENABLED", "false")
    dbtools.query(sandbox, "target", "DROP DATABASE IF EXISTS shop")
    base = _backup("shop")
    assert run_cli("verify", base).exit_code == 0
    assert run_cli("restore", base).exit_code == 0  # the earlier proven copy
    connection = dbtools.connect(sandbox, "source")
    with connection.cursor() as cursor:
        for n in range(3, 8):
            _write_once(cursor, n)
    connection.close()
    streamed = run_cli("binlog", "stream", "--once")
    assert streamed.exit_code == 0 and "binlog.enabled is false" in streamed.stderr
    expected = _checksums(sandbox, "source", "shop")
    assert _checksums(sandbox, "target", "shop") != expected
    try:
        restored = fail_over_with_the_region_gone(monkeypatch)
        assert _checksums(sandbox, "target", "shop") == expected
        step = restore_step(restored)
        assert "then the binlog to" in step["outcome"], step
        assert restored["data_reaches"] and restored["data_loss_seconds"] is not None
        assert restored["replay"]["transactions"] > 0

        # A rerun finds the copy at the archive's end: kept, not restored again.
        rerun = fail_over_with_the_region_gone(monkeypatch)
        step = restore_step(rerun)
        assert "the archive holds nothing after it" in step["outcome"], step
        assert rerun["data_reaches"] == restored["data_reaches"]
    finally:
        dbtools.query(sandbox, "target", "DROP DATABASE IF EXISTS shop")


def test_a_table_named_like_its_database_is_no_database_reference(sandbox, pitr):  # noqa: F811
    """employees' database and table share a name: its view restores under --as, and the
    same view made after the backup is replayed under --until ... --as with its column
    qualifier untouched."""
    view = "SELECT employees.emp_no FROM employees"
    dbtools.as_root(sandbox, "source", "DROP DATABASE IF EXISTS employees")
    dbtools.as_root(sandbox, "source", "CREATE DATABASE employees")
    try:
        for statement in ("CREATE TABLE employees (emp_no INT PRIMARY KEY)",
                          "INSERT INTO employees VALUES (10001), (10002)",
                          f"CREATE VIEW current_emp AS {view}"):
            dbtools.query(sandbox, "source", statement, "employees")
        base = _backup("employees")
        restored = run_cli("restore", base, "--as", "emp_r")
        assert restored.exit_code == 0, restored.stderr
        dbtools.query(sandbox, "source", f"CREATE VIEW later_emp AS {view}", "employees")
        dbtools.query(sandbox, "source", "INSERT INTO employees VALUES (10003)", "employees")
        assert run_cli("binlog", "stream", "--once").exit_code == 0
        until = run_cli("restore", "--until", "latest", "--database", "employees", "--as",
                        "emp_at")
        assert until.exit_code == 0, until.stderr
        assert dbtools.query(sandbox, "target", "SELECT emp_no FROM emp_at.later_emp "
                             "ORDER BY 1") == [(10001,), (10002,), (10003,)]
    finally:
        dbtools.as_root(sandbox, "source", "DROP DATABASE IF EXISTS employees")
        for name in ("emp_r", "emp_at"):
            dbtools.query(sandbox, "target", f"DROP DATABASE IF EXISTS {name}")


def test_a_database_that_appears_while_the_copy_loads_is_never_swapped_out(sandbox):
    """Without --replace, the place is looked at again when the proven copy is to be put
    there: data someone put there meanwhile stops the restore (35), never goes."""
    from drkit.errors import TargetNotEmptyError
    from drkit.mysql.swap import plan_swap

    dbtools.query(sandbox, "target", "CREATE DATABASE race_r")
    dbtools.query(sandbox, "target", "CREATE DATABASE drkit_restore_race_1")
    try:
        dbtools.query(sandbox, "target", "CREATE TABLE race_r.precious (i INT)")
        dbtools.query(sandbox, "target", "CREATE TABLE drkit_restore_race_1.t (i INT)")
        with pytest.raises(TargetNotEmptyError, match="appeared on the target"):
            plan_swap(dbtools.server(sandbox, "target"), "race_r", "drkit_restore_race_1",
                      "drkit_replaced_race_1", replace=False)
        assert dbtools.query(sandbox, "target", "SHOW TABLES FROM race_r") == [("precious",)]
    finally:
        dbtools.query(sandbox, "target", "DROP DATABASE race_r")
        dbtools.query(sandbox, "target", "DROP DATABASE drkit_restore_race_1")


def test_what_the_user_typed_is_checked_before_the_archive_or_the_target(sandbox, pitr):  # noqa: F811
    """An empty archive (this test's own prefix) does not hide a bad TIME, a BACKUP given
    beside --until, or --recover-swap given a backup to restore."""
    garbage = run_cli("restore", "--until", "soon-ish", "--as", "x")
    assert garbage.exit_code == 2 and "is not a time" in garbage.stderr, garbage.stderr
    both = run_cli("restore", "backups/backup-20261207-000000.sql.gz", "--until", "latest")
    assert both.exit_code == 2 and "not both" in both.stderr, both.stderr
    recover = run_cli("restore", "--recover-swap", "latest-verified")
    assert recover.exit_code == 2 and "takes no BACKUP" in recover.stderr, recover.stderr
    empty = run_cli("restore", "--until", "latest", "--as", "x")
    assert empty.exit_code in (24, 48), empty.stderr  # no backup, or no archive: named
