"""The standby on the sandbox: made from a point-in-time base, fed from the binlog archive
under a writer, killed (SIGKILL, 20 times at seeded-random points) while it applies, and
refusing a gap."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import drkit.binlog.txgroup as txgroup
from drkit.cli.main import main
from drkit.config import load_settings
from drkit.ops.standby import standby_status
from tests import dbtools
from tests.helpers import point_cli_at, run_cli
from tests.test_json_vocabulary import speaks_the_vocabulary
from tests.test_pitr import KEYLESS, KINDS, _consistency, _PausableWriter, _write_once

TABLES = ("pitr_kinds", "pitr_log", "orders", "standby_ddl")
# A trigger of the base: set aside while a catch-up runs, it must be back after one killed.
TRIGGER = ("CREATE OR REPLACE TRIGGER shop.standby_kept BEFORE INSERT ON shop.pitr_log FOR "
           "EACH ROW SET NEW.what = NEW.what")
KILLS = 20
# Where a follower is killed, at a pass (1 to KILL_PASSES) the seeded RNG chooses: before a
# source transaction's position joins its group (the reading thread), after a round trip
# to the target (the applying thread: a group's statements, its COMMIT, a DDL's pending
# note, the DDL, its position). A run killed there applied KILL_PASSES transactions at most.
KILL_POINTS = ("standby.mark", "replay.round_trip")
KILL_PASSES = 6
# Each fifth kill comes at a DDL statement none of which can run twice (a column, table or
# index made again is refused): right after its pending note, or right after its own
# commit, before its position.
DDL = ("CREATE TABLE shop.standby_ddl (id INT PRIMARY KEY, v INT)",
       "ALTER TABLE shop.orders ADD COLUMN standby_note VARCHAR(20) NULL",
       "ALTER TABLE shop.standby_ddl ADD COLUMN w INT NOT NULL DEFAULT 7",
       "CREATE INDEX standby_v ON shop.standby_ddl (v)")
DDL_KILL_POINTS = ("standby.ddl_pending", "replay.ddl")
# Rounds of the writer's changes before each DDL statement: two transactions each at least
# (its INSERTs), more than the four kills before the DDL's can apply.
ROUNDS = 13


def _follower(environment: dict[str, str]) -> None:
    """``standby follow --once`` in a child of the fork server (drkit imported already: a
    kill costs no interpreter start), its transaction groups small (a few source
    transactions each, not 16 MB): its commits are what a kill must find consistent."""
    os.environ.clear()
    os.environ.update(environment)
    txgroup.GROUP_BYTES = 1024
    sys.exit(main(["standby", "follow", "--once"]))


_PRELOADED = {"drkit", "azure", "boto3", "botocore", "pymysql", "cryptography", "pyrage"}


def _fork_server() -> multiprocessing.context.BaseContext:
    """Processes forked from a server that imported what a follower uses (as this process
    has, once it followed): a kill costs no interpreter start, nor imports."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, *(
        name for name in sys.modules if name.partition(".")[0] in _PRELOADED)])
    return context


def _follow_killed_at(fork_server, failpoint: str) -> int | None:
    """The follower's exit code, SIGKILLed (-9) at ``failpoint`` (``name:N``)."""
    follower = fork_server.Process(target=_follower,
                                   args=({**os.environ, "DRKIT_FAILPOINT": failpoint},))
    follower.start()
    follower.join(120)
    return follower.exitcode


@pytest.fixture
def standby_env(sandbox, tmp_path, monkeypatch):
    point_cli_at(sandbox, tmp_path, monkeypatch)
    dbtools.query(sandbox, "source", KINDS)
    dbtools.query(sandbox, "source", KEYLESS)
    for table in ("pitr_kinds", "pitr_log"):
        dbtools.query(sandbox, "source", f"TRUNCATE TABLE shop.{table}")
    dbtools.query(sandbox, "source", "DROP TABLE IF EXISTS shop.standby_ddl")
    dbtools.as_root(sandbox, "source", TRIGGER)
    yield
    dbtools.as_root(sandbox, "source", "DROP TRIGGER IF EXISTS shop.standby_kept")
    for sql in ("DROP DATABASE IF EXISTS sb", "DROP DATABASE IF EXISTS drkit_standby"):
        dbtools.query(sandbox, "target", sql)
    dbtools.query(sandbox, "source", "DROP TABLE IF EXISTS shop.standby_ddl")
    dbtools.query(sandbox, "source", "ALTER TABLE shop.orders DROP COLUMN IF EXISTS standby_note")


def _checksums(sandbox, role: str, database: str) -> dict[str, int]:
    rows = dbtools.as_root(sandbox, role, "CHECKSUM TABLE " + ", ".join(
        f"`{database}`.`{table}`" for table in TABLES))
    return {name.split(".", 1)[1].lower(): value for name, value in rows}


def _triggers(sandbox, role: str, database: str) -> list[str]:
    return [name for (name,) in dbtools.query(
        sandbox, role, "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE "
        f"TRIGGER_SCHEMA = '{database}' ORDER BY TRIGGER_NAME")]


def _position(sandbox) -> tuple[str, int]:
    (row,) = dbtools.query(sandbox, "target",
                           "SELECT file, file_offset FROM drkit_standby.position")
    return row[0], int(row[1])


def _pending_ddl_end(sandbox) -> tuple[str, int] | None:
    """Where the DDL a killed follower noted as pending ends, if one is."""
    (pending,) = dbtools.query(sandbox, "target", "SELECT ddl_pending FROM drkit_standby.position")
    return (json.loads(pending[0])["file"], json.loads(pending[0])["offset"]) if pending[0] \
        else None


def _source_end(sandbox) -> tuple[str, int]:
    file, offset, *_ = dbtools.as_root(sandbox, "source", "SHOW MASTER STATUS")[0]
    return file, int(offset)


def _base_and_standby(sandbox, killed_after_its_restore: bool = False) -> str:
    base = json.loads(run_cli("backup", "--json").stdout)["backup"]
    assert run_cli("verify", base).exit_code == 0
    assert run_cli("binlog", "stream", "--once").exit_code == 0
    if killed_after_its_restore:  # the rerun finds its restore in place and finishes it
        killed = subprocess.run([str(Path(sys.executable).parent / "drkit"), "standby", "init",
                                 "--as", "sb"], env={**os.environ, "DRKIT_FAILPOINT":
                                                     "standby.init:1"}, timeout=300)
        assert killed.returncode == -9
        assert run_cli("standby", "status").exit_code == 50  # no standby yet
    made = run_cli("standby", "init", "--as", "sb", "--json")
    assert made.exit_code == 0, made.stdout + made.stderr
    assert speaks_the_vocabulary(json.loads(made.stdout)), made.stdout
    assert (json.loads(made.stdout)["restore_seconds"] == 0) == killed_after_its_restore
    return base


class _SourceStates:
    """The source written to by one session (each statement a transaction of its own),
    every table's CHECKSUM recorded at the binlog position each one ended at: what a
    standby standing at that position must hold."""

    def __init__(self, sandbox) -> None:
        self._connection = sandbox.services["source"].root_connection()
        self.at: dict[tuple[str, int], dict[str, int]] = {}
        self.record()

    def execute(self, sql: str, args: tuple | None = None) -> None:
        with self._connection.cursor() as cursor:
            cursor.execute(sql, args)
        self.record()

    def record(self) -> None:
        with self._connection.cursor() as cursor:
            cursor.execute("SHOW MASTER STATUS")
            file, offset, *_ = cursor.fetchone()
            cursor.execute("CHECKSUM TABLE " + ", ".join(f"shop.`{t}`" for t in TABLES))
            self.at[(file, int(offset))] = {name.split(".", 1)[1].lower(): value
                                            for name, value in cursor.fetchall()}

    def write(self, rounds: int, ddl: str) -> None:
        """``rounds`` rounds of the writer's changes, then ``ddl`` and a row after it."""
        for _ in range(rounds):
            _write_once(self, len(self.at))
        self.execute(ddl)
        self.execute("INSERT INTO shop.standby_ddl (id, v) VALUES (%s, %s)", (len(self.at), 1))

    def close(self) -> None:
        self._connection.close()


def test_a_standby_follows_writes_and_ddl_and_survives_kills_exactly_once(sandbox,
                                                                         standby_env):
    """Made from a base taken under writes, at the base's exact coordinates, and caught up;
    then the follower SIGKILLed 20 times at a pass of a kill point the seeded RNG chose
    (STANDBY_KILL_SEED=N replays a run), each run going on from where the one before was
    killed. After each kill every table's CHECKSUM equals the source's at the end of the
    source transaction the standby's position names (a change applied twice or skipped
    would differ), or, killed between a DDL statement's pending note and its position, the
    source's before or after it; the next run settles that DDL (run twice, it would stop
    the follow). At the end the triggers the killed runs had set aside are back."""
    seed = int(os.environ.get("STANDBY_KILL_SEED") or random.randrange(2**32))
    print(f"standby kills: STANDBY_KILL_SEED={seed} replays this run")
    rng = random.Random(seed)
    with _PausableWriter(sandbox) as writer:
        assert run_cli("binlog", "stream", "--once").exit_code == 0
        base = _base_and_standby(sandbox)
        writer.writes_go_on()  # after the base: the first catch-up has them to apply
    assert not writer.failures, writer.failures
    snapshot = _consistency(base)["binlog_snapshot"]
    assert _position(sandbox) == (snapshot["file"], snapshot["position"])
    again = run_cli("standby", "init", "--as", "sb2")  # a second on the same target
    assert again.exit_code == 50 and "already has a standby" in again.stderr
    assert run_cli("binlog", "stream", "--once").exit_code == 0
    assert run_cli("standby", "follow", "--once").exit_code == 0
    fork_server, source = _fork_server(), _SourceStates(sandbox)
    kept = 0  # killed runs that left the standby further than they found it
    try:
        for kill in range(KILLS):
            if kill % 5 == 0:
                source.write(ROUNDS, DDL[kill // 5])
                assert run_cli("binlog", "stream", "--once").exit_code == 0
            failpoint = f"{rng.choice(DDL_KILL_POINTS)}:1" if kill % 5 == 4 else \
                f"{rng.choice(KILL_POINTS)}:{rng.randint(1, KILL_PASSES)}"
            where = f"kill {kill} at {failpoint}, STANDBY_KILL_SEED={seed}"
            found = _position(sandbox)
            assert _follow_killed_at(fork_server, failpoint) == -9, where
            reached, ddl_end = _position(sandbox), _pending_ddl_end(sandbox)
            assert reached >= found, where
            kept += reached > found
            # Between a DDL's pending note and its position: before it, or after it.
            states = [source.at.get(reached), *([source.at[ddl_end]] if ddl_end else [])]
            assert _checksums(sandbox, "target", "sb") in states, f"{where}: at {reached}"
        followed = run_cli("standby", "follow", "--once", "--json")
        assert followed.exit_code == 0, followed.stderr
        assert _position(sandbox) == _source_end(sandbox)
        assert _checksums(sandbox, "target", "sb") == source.at[_source_end(sandbox)]
    finally:
        source.close()
    # Each DDL's pending note commits what came before it: those runs keep some at least.
    assert kept >= KILLS // 5, kept
    status = run_cli("standby", "status", "--json")
    caught_up, report = json.loads(followed.stdout), json.loads(status.stdout)
    for output in (caught_up, report):
        assert speaks_the_vocabulary(output), output
    assert caught_up["transactions"] > 0 and caught_up["lag_seconds"] == 0, caught_up
    assert _triggers(sandbox, "target", "sb") == _triggers(sandbox, "source", "shop")
    assert "standby_kept" in _triggers(sandbox, "target", "sb")
    assert status.exit_code == 0 and report["base_backup"] == base
    assert report["lag_seconds"] == 0 and report["lag_bytes"] == 0, report
    assert report["databases"] == {"shop": "sb"} and report["last_catch_up"]


def _caught_up(deadline_seconds: float, follower: subprocess.Popen) -> bool:
    """Whether the running ``follower`` brings the standby to the archive's end (no byte
    left to apply) in time."""
    settings = load_settings()
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline and follower.poll() is None:
        if standby_status(settings)["lag_bytes"] == 0:
            return True
        time.sleep(0.2)
    return False


def test_a_following_standby_stops_on_sigterm_and_a_gap_stops_it_before_it(sandbox,
                                                                           standby_env,
                                                                           monkeypatch,
                                                                           tmp_path):
    """Without --once it follows the archive as it grows until SIGTERM (exit 143, what it
    applied kept), on a standby made before its position had ddl_pending (added); a gap
    after its position is refused, and doctor calls it CRITICAL."""
    _base_and_standby(sandbox)
    dbtools.query(sandbox, "target", "ALTER TABLE drkit_standby.position DROP COLUMN ddl_pending")
    monkeypatch.setenv("DRKIT_STANDBY__POLL_SECONDS", "0.2")
    monkeypatch.setenv("DRKIT_BINLOG__HEARTBEAT", "true")  # the archive's runs beat
    # Its log goes to a file: a pipe nobody reads while it runs would fill and stop it.
    log = tmp_path / "follower.log"
    with log.open("w") as stderr:
        follower = subprocess.Popen([str(Path(sys.executable).parent / "drkit"), "standby",
                                     "follow"], env=os.environ, stdout=subprocess.DEVNULL,
                                    stderr=stderr)
    try:
        for n in (1, 2):  # two archive runs: the follower reads the archive as it grows
            with dbtools.connect(sandbox, "source").cursor() as cursor:
                _write_once(cursor, n)
            assert run_cli("binlog", "stream", "--once").exit_code == 0
            assert _caught_up(60, follower), log.read_text()[-3000:]
        second = run_cli("standby", "follow", "--once")  # one follower per standby
        assert second.exit_code == 23 and "Another drkit standby follow" in second.stderr
    finally:
        follower.send_signal(signal.SIGTERM)
        stopped = follower.wait(timeout=30)
    assert stopped == 143, log.read_text()[-3000:]
    assert standby_status(load_settings())["heartbeat"], "the newest beat applied is recorded"
    assert _checksums(sandbox, "target", "sb") == _checksums(sandbox, "source", "shop")
    dbtools.as_root(sandbox, "source", "FLUSH BINARY LOGS")
    with dbtools.connect(sandbox, "source").cursor() as cursor:
        _write_once(cursor, 2)
    dbtools.as_root(sandbox, "source", "FLUSH BINARY LOGS")
    newest = dbtools.as_root(sandbox, "source", "SHOW BINARY LOGS")[-1][0]
    dbtools.as_root(sandbox, "source", f"PURGE BINARY LOGS TO '{newest}'")
    assert run_cli("binlog", "stream", "--once").exit_code == 49
    before = _position(sandbox)
    refused = run_cli("standby", "follow", "--once")
    assert refused.exit_code == 49, refused.stdout + refused.stderr
    assert "has a gap after" in refused.stderr and "cannot cross it" in refused.stderr
    assert _position(sandbox) == before
    doctor = run_cli("doctor", "--json")
    check = next(c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "standby")
    assert check["status"] == "CRITICAL" and "gap" in check["detail"]


def test_a_standby_found_unlike_the_source_is_never_followed_again(sandbox, standby_env):
    """An init killed between its restore and its position is finished by the next (its
    restore kept, not run again). A row changed by hand on the standby, then updated on the
    source: the catch-up finds it not as the source had it, says so (exit 50), and every
    later run and doctor too. A restore over the standby's database is refused before that
    (it would leave a standby unlike the source that followed on and was promoted)."""
    base = _base_and_standby(sandbox, killed_after_its_restore=True)
    over = run_cli("restore", base, "--as", "sb", "--replace")
    assert over.exit_code == 50 and "is the standby's" in over.stderr, over.stderr
    assert dbtools.query(sandbox, "target", "SELECT COUNT(*) FROM drkit_standby.position") \
        == [(1,)]
    dbtools.query(sandbox, "target", "DELETE FROM sb.orders WHERE id = 3")
    dbtools.query(sandbox, "source", "UPDATE shop.orders SET status = IF(status = 'paid', "
                  "'new', 'paid') WHERE id = 3")
    assert run_cli("binlog", "stream", "--once").exit_code == 0
    for _ in range(2):
        refused = run_cli("standby", "follow", "--once")
        assert refused.exit_code == 50, refused.stdout + refused.stderr
        assert "no longer equals the source" in refused.stderr
    doctor = run_cli("doctor", "--json")
    check = next(c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "standby")
    assert check["status"] == "CRITICAL" and "no longer equals" in check["detail"]


def test_without_a_standby_follow_and_status_say_how_to_make_one(sandbox, standby_env):
    for command in (("standby", "follow", "--once"), ("standby", "status")):
        result = run_cli(*command)
        assert result.exit_code == 50, result.stdout + result.stderr
        assert "no standby" in result.stderr and "drkit standby init" in result.stderr
