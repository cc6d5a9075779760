"""``kill -9`` at any instant of a restore's swap loses nothing (drkit/mysql/swap.py).

A real SIGKILL at an exact statement (``DRKIT_FAILPOINT=swap:N``, no sleeps): then recovery
(``drkit restore --recover-swap``, or simply the next restore) leaves every object of the
live database -- tables with their rows, views, triggers, routines, events -- exactly as it
was before the restore or exactly as restored, and no helper database behind.

One small backup of a database shaped like the demo ``shop`` (tables, a view, two triggers,
a procedure, a function, an event) is shared by every test. The live database's "old" state
differs from the backup in rows, a trigger body, a function body, an extra table and view,
and a missing event, so that the old and restored states cannot be mistaken for each other.
``DRKIT_SWAP_KILL_ALL=1`` kills at every point of the swap instead of 20.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from drkit.sandbox import demodb
from tests import dbtools
from tests.helpers import run_cli

DRKIT = str(Path(sys.executable).parent / "drkit")
POINTS = 20


@dataclass
class Estate:
    database: str  # on the source, and restored under the same name on the target
    env: dict[str, str]  # drkit's configuration for subprocesses (and, set, in-process)
    journals: Path
    fresh_points: list[str]  # labels of the swap's points, restoring into no database
    replace_points: list[str]  # the same for --replace of the old state
    old: tuple  # snapshots of the live database
    new: tuple


def drkit(estate: Estate, *args: str, failpoint: str | None = None,
          trace: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(estate.env)
    if failpoint:
        env["DRKIT_FAILPOINT"] = failpoint
    if trace:
        env["DRKIT_FAILPOINT_LOG"] = str(trace)
    return subprocess.run([DRKIT, *args], env=env, capture_output=True, text=True,
                          timeout=300)


def snapshot(sandbox, database: str) -> tuple:
    """Every table's row count and digest, and every view, trigger, routine and event with
    its definition."""
    objects = dbtools.query(
        sandbox, "target",
        "SELECT 'view', TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS "
        "WHERE TABLE_SCHEMA = %s UNION ALL "
        "SELECT 'trigger', TRIGGER_NAME, CONCAT_WS(' ', ACTION_TIMING, EVENT_MANIPULATION, "
        "EVENT_OBJECT_TABLE, ACTION_STATEMENT) FROM information_schema.TRIGGERS "
        "WHERE TRIGGER_SCHEMA = %s UNION ALL "
        "SELECT LOWER(ROUTINE_TYPE), ROUTINE_NAME, ROUTINE_DEFINITION FROM "
        "information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s UNION ALL "
        "SELECT 'event', EVENT_NAME, CONCAT_WS(' ', STATUS, INTERVAL_VALUE, INTERVAL_FIELD, "
        "EVENT_DEFINITION) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s",
        args=(database,) * 4)
    return dbtools.table_fingerprint(sandbox, "target", database), sorted(objects)


def make_old(sandbox, database: str) -> None:
    """The live database as it stands after the backup (idempotent)."""
    for sql in (
            f"UPDATE {database}.customers SET city = 'old city' WHERE id <= 5",
            f"DROP TRIGGER IF EXISTS {database}.orders_round_amount",
            f"CREATE TRIGGER {database}.orders_round_amount BEFORE INSERT ON "
            f"{database}.orders FOR EACH ROW SET NEW.amount = ROUND(NEW.amount, 0)",
            f"CREATE OR REPLACE FUNCTION {database}.customer_total(p_customer INT) "
            "RETURNS DECIMAL(14,2) READS SQL DATA RETURN -1",
            f"CREATE TABLE IF NOT EXISTS {database}.old_only (id INT PRIMARY KEY, "
            "note VARCHAR(20))",
            f"INSERT IGNORE INTO {database}.old_only VALUES (1, 'old'), (2, 'older')",
            f"CREATE OR REPLACE VIEW {database}.old_only_notes AS SELECT note FROM "
            f"{database}.old_only",
            f"DROP EVENT IF EXISTS {database}.purge_AuditLog"):
        dbtools.query(sandbox, "target", sql)


def start_old(sandbox, estate: Estate) -> None:
    """The live database in its old state, also after an earlier test failed halfway."""
    make_old(sandbox, estate.database)
    if snapshot(sandbox, estate.database) != estate.old:
        again = run_cli("restore", "latest", "--replace")  # recovers any journal first
        assert again.exit_code == 0, again.stderr[-2000:]
        for name in helper_databases(sandbox):
            dbtools.query(sandbox, "target", f"DROP DATABASE {name}")
        make_old(sandbox, estate.database)
    assert snapshot(sandbox, estate.database) == estate.old


def helper_databases(sandbox) -> list[str]:
    return [name for (name,) in dbtools.query(
        sandbox, "target", "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE "
        "SCHEMA_NAME LIKE 'drkit\\_restore\\_%' OR SCHEMA_NAME LIKE 'drkit\\_replaced\\_%'")]


def exists(sandbox, database: str) -> bool:
    return bool(dbtools.query(sandbox, "target", "SELECT 1 FROM information_schema.SCHEMATA "
                              "WHERE SCHEMA_NAME = %s", args=(database,)))


def labels(trace: Path) -> list[str]:
    return [line.split(" ", 2)[2] for line in trace.read_text().splitlines()
            if line.startswith("swap ")]


def spread(points: list[str], count: int) -> list[int]:
    """``count`` kill points (1-based) over the whole swap: every step around the RENAME
    and the commit, the rest evenly between."""
    if os.environ.get("DRKIT_SWAP_KILL_ALL") or len(points) <= count:
        return list(range(1, len(points) + 1))
    rename, commit = points.index("rename") + 1, points.index("commit") + 1
    first_drop = next(i for i, label in enumerate(points, 1) if label.startswith("drop "))
    chosen = {1, 2, 3, first_drop, rename - 1, rename, rename + 1, commit - 1, commit,
              commit + 1, commit + 2, len(points)}
    step = len(points) / (count - len(chosen) + 1)
    candidates = [round(step * k) for k in range(1, count)]
    for candidate in candidates:
        if len(chosen) == count:
            break
        chosen.add(max(1, min(len(points), candidate)))
    filler = iter(range(1, len(points) + 1))
    while len(chosen) < count:
        chosen.add(next(filler))
    return sorted(chosen)


@pytest.fixture(scope="module")
def estate(sandbox, tmp_path_factory) -> Estate:
    directory = tmp_path_factory.mktemp("swap-kill")
    database = f"swapkill_{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRKIT_")}
    env.update(DRKIT_CONFIG=str(sandbox.config_path),
               DRKIT_STORAGE__PREFIX=f"t-{uuid.uuid4().hex[:8]}/",
               DRKIT_BACKUP__STATE_DIR=str(directory / "state"))
    connection = dbtools.connect(sandbox, "source")
    try:
        demodb.build(connection, database, 32 * 1024)  # a few hundred rows
    finally:
        connection.close()
    dbtools.query(sandbox, "source", f"CREATE TRIGGER {database}.auditlog_actor BEFORE "
                  f"INSERT ON {database}.AuditLog FOR EACH ROW "
                  "SET NEW.actor = COALESCE(NEW.actor, 'system')")
    partial = Estate(database, env, directory / "state" / "swaps", [], [], (), ())
    try:
        backup = drkit(partial, "backup", "--database", database)
        assert backup.returncode == 0, backup.stderr
        fresh_trace, replace_trace = directory / "fresh.trace", directory / "replace.trace"
        first = drkit(partial, "restore", "latest", trace=fresh_trace)
        assert first.returncode == 0, first.stderr
        make_old(sandbox, database)
        replaced = drkit(partial, "restore", "latest", "--replace", trace=replace_trace)
        assert replaced.returncode == 0, replaced.stderr
        new = snapshot(sandbox, database)
        make_old(sandbox, database)
        old = snapshot(sandbox, database)
        assert old != new and old[0] != new[0] and old[1] != new[1]
        yield Estate(database, env, partial.journals, labels(fresh_trace),
                     labels(replace_trace), old, new)
    finally:
        dbtools.query(sandbox, "source", f"DROP DATABASE IF EXISTS {database}")
        dbtools.query(sandbox, "target", f"DROP DATABASE IF EXISTS {database}")


@pytest.fixture
def cli(estate, monkeypatch) -> Estate:
    """The estate, with drkit in this process pointed at it too."""
    for name, value in estate.env.items():
        if name.startswith("DRKIT_"):
            monkeypatch.setenv(name, value)
    return estate


def journals(estate: Estate) -> list[str]:
    return sorted(p.name for p in estate.journals.glob("*")) if estate.journals.is_dir() \
        else []


def killed(result: subprocess.CompletedProcess) -> bool:
    return result.returncode == -signal.SIGKILL


def test_the_swap_passes_every_step_and_the_points_cover_it(estate):
    """The traces name the steps the kills are spread over: journal first, then the marker,
    the dated database, the drops, the one RENAME, the restored objects, the check, the
    commit, the helpers' drops."""
    for points in (estate.replace_points, estate.fresh_points):
        assert points[:2] == ["journal written", "marker"]
        assert points[-3].startswith("drop drkit_restore_")
        assert points[-2].startswith("drop drkit_replaced_")
        assert points[-1] == "helpers dropped"
        assert points.count("rename") == 1 and points.count("commit") == 1
        assert points.index("rename") < points.index("check") < points.index("commit")
    assert any(p.startswith("create database swapkill_") for p in estate.fresh_points)
    assert f"drop trigger {estate.database}.orders_round_amount" in estate.replace_points
    chosen = spread(estate.replace_points, POINTS)
    assert len(chosen) == (len(estate.replace_points) if os.environ.get("DRKIT_SWAP_KILL_ALL")
                           else POINTS)


@pytest.mark.parametrize("nth", range(POINTS))
def test_a_kill_at_any_point_of_the_swap_loses_nothing(sandbox, cli, nth):
    estate = cli
    chosen = spread(estate.replace_points, POINTS)
    for index in range(nth, len(chosen), POINTS):  # all points with DRKIT_SWAP_KILL_ALL
        _kill_and_recover(sandbox, estate, chosen[index], rerun=index % 2 == 1)


def _kill_and_recover(sandbox, estate: Estate, point: int, rerun: bool) -> None:
    where = f"killed at point {point} ({estate.replace_points[point - 1]})"
    start_old(sandbox, estate)
    result = drkit(estate, "restore", "latest", "--replace", failpoint=f"swap:{point}")
    assert killed(result), (where, result.returncode, result.stderr[-2000:])
    assert journals(estate), where  # the journal outlives the kill
    committed = point > estate.replace_points.index("commit") + 1
    if rerun:  # the next restore recovers first, then replaces as asked
        again = run_cli("restore", "latest", "--replace")
        assert again.exit_code == 0, (where, again.stderr[-2000:])
        assert "interrupted swap of database" in again.stderr, where
        assert snapshot(sandbox, estate.database) == estate.new, where
    else:
        recovered = run_cli("restore", "--recover-swap", "--json")
        assert recovered.exit_code == 0, (where, recovered.stderr[-2000:])
        report = json.loads(recovered.stdout)
        assert report["ok"] and len(report["recovered"]) == 1, (where, report)
        expected = estate.new if committed else estate.old
        assert snapshot(sandbox, estate.database) == expected, (where, report)
        said = report["recovered"][0]
        if point <= 2:  # nothing had changed
            assert "had changed nothing" in said, (where, said)
        elif not committed:
            assert said.startswith("Undid the interrupted swap"), (where, said)
        elif point < len(estate.replace_points):
            assert said.startswith("Finished the interrupted swap"), (where, said)
    assert helper_databases(sandbox) == [], where
    assert journals(estate) == [], where


@pytest.mark.parametrize("label", ["create database swapkill_", "rename", "create trigger",
                                   "commit", "drop drkit_restore_"])
def test_a_kill_while_restoring_into_no_database_leaves_none(sandbox, cli, label):
    """Every restore loads beside its place: killed before the commit, recovery leaves no
    database under the name (and a plain restore then works); after it, the restored one."""
    estate = cli
    place = f"absent_{uuid.uuid4().hex[:8]}"
    # the trace was taken restoring under the backup's own name
    points = [p.replace(estate.database, "swapkill_") for p in estate.fresh_points]
    point = next(i for i, p in enumerate(points, 1) if p.startswith(label))
    try:
        result = drkit(estate, "restore", "latest", "--as", place, failpoint=f"swap:{point}")
        assert killed(result), result.stderr[-2000:]
        recovered = run_cli("restore", "--recover-swap")
        assert recovered.exit_code == 0, recovered.stderr
        assert helper_databases(sandbox) == [] and journals(estate) == []
        if label != "drop drkit_restore_":  # killed before the commit
            assert not exists(sandbox, place), label
            assert f"no database {place} is left" in recovered.stdout
            assert run_cli("restore", "latest", "--as", place).exit_code == 0
        assert snapshot(sandbox, place)[0] == estate.new[0]
    finally:
        dbtools.query(sandbox, "target", f"DROP DATABASE IF EXISTS {place}")


@pytest.mark.parametrize("label", ["commit", "drop drkit_restore_"])
def test_a_kill_during_recovery_is_recovered_by_the_next_one(sandbox, cli, label):
    """Each recovery below is killed after one more statement than the last (its second
    point); every step is repeatable, so the last one ends it whole."""
    estate = cli
    start_old(sandbox, estate)
    points = estate.replace_points
    # before the commit: the tables moved, some restored objects made, all undone again;
    # after: finished forward
    point = next(i for i, p in enumerate(points, 1) if p.startswith(label))
    if label == "commit":
        point -= 3
    result = drkit(estate, "restore", "latest", "--replace", failpoint=f"swap:{point}")
    assert killed(result), result.stderr[-2000:]
    kills = 0
    for depth in (2, 4, 7, 11, 16, 22):  # each run starts from what the last one left
        recovery = drkit(estate, "restore", "--recover-swap", failpoint=f"recover:{depth}")
        if not killed(recovery):
            break
        kills += 1
    else:
        recovery = drkit(estate, "restore", "--recover-swap")
    assert recovery.returncode == 0, recovery.stderr
    assert kills >= 1  # it was killed on the way
    expected = estate.old if label == "commit" else estate.new
    assert snapshot(sandbox, estate.database) == expected
    assert helper_databases(sandbox) == [] and journals(estate) == []
