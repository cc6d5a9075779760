"""The swap's journal, its failpoints and doctor's words for what killed runs left; no
service needed (the kills against the sandbox are in test_swap_kill.py)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from drkit.checks import CRITICAL, WARNING
from drkit.errors import SwapFailedError
from drkit.health.leftovers import age, leftover_checks
from drkit.mysql.swapjournal import SwapJournal, claimed, pending_journals, write_journal
from drkit.mysql.swapsteps import object_keys
from drkit.stream.lexer import statements

DUMP = (b"USE `shop`;\n"
        b"/*!50003 SET sql_mode = 'STRICT_TRANS_TABLES' */;\n"
        b"DELIMITER ;;\n"
        b"/*!50003 CREATE*/ /*!50017 DEFINER=`app`@`%`*/ /*!50003 TRIGGER t_bi BEFORE INSERT "
        b"ON t FOR EACH ROW SET NEW.note = 'caf\xc3\xa9 \xff' */;;\n"
        b"DELIMITER ;\n"
        b"/*!50001 DROP VIEW IF EXISTS `v`*/;\n"
        b"/*!50001 CREATE VIEW `v` AS select 1 AS `one` */;\n")


def journal(**changes) -> SwapJournal:
    objects = [s for s in statements(DUMP) if s.kind != "other" or s.sql.startswith(b"/*!50001")]
    fields = dict(target="db.example:3306", place="shop",
                  scratch="drkit_restore_20260101000000_ab12cd_1",
                  old="drkit_replaced_20260101000000_ab12cd_1", place_existed=True,
                  old_tables=["orders", "t"], new_tables=["orders", "t"],
                  old_objects=objects, new_objects=objects[:2],
                  started="2026-01-01T00:00:00+00:00")
    fields.update(changes)
    return SwapJournal(**fields)


def test_the_journal_holds_what_a_recovery_needs_byte_for_byte(tmp_path):
    written = journal()
    fd = write_journal(tmp_path / "swaps" / "one.json", written)
    os.close(fd)
    path = tmp_path / "swaps" / "one.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    [read] = pending_journals(tmp_path / "swaps")
    assert isinstance(read, SwapJournal) and read.path == path
    for name in ("target", "place", "scratch", "old", "place_existed", "old_tables",
                 "new_tables", "started"):
        assert getattr(read, name) == getattr(written, name), name
    # the statements come back as the lexer named them, with every byte (\xff too)
    assert [bytes(s.sql) for s in read.old_objects] == [bytes(s.sql) for s in
                                                         written.old_objects]
    assert [(s.kind, s.object_kind, s.name, s.database) for s in read.old_objects] == \
        [(s.kind, s.object_kind, s.name, s.database) for s in written.old_objects]
    assert object_keys(read.old_objects) == {("trigger", "t_bi"), ("view", "v")}


def test_a_journal_is_never_overwritten(tmp_path):
    path = tmp_path / "one.json"
    os.close(write_journal(path, journal()))
    before = path.read_bytes()
    with pytest.raises(SwapFailedError, match="already exists; nothing was changed"):
        write_journal(path, journal(place="other"))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.json"]  # no temporary left


def test_a_running_swaps_journal_is_not_touched_and_other_files_are_named(tmp_path):
    fd = write_journal(tmp_path / "running.json", journal())  # held, as by a running swap
    (tmp_path / "drkit_replaced_x.sql").write_text("CREATE VIEW v AS SELECT 1;\n")
    try:
        with claimed(tmp_path / "running.json") as data:
            assert data is None
        assert pending_journals(tmp_path) == [tmp_path / "drkit_replaced_x.sql"]
    finally:
        os.close(fd)  # the lock goes with it, as with a killed process
    assert len(pending_journals(tmp_path)) == 2


def test_a_failpoint_is_a_real_sigkill_at_exactly_the_nth_pass(tmp_path):
    trace = tmp_path / "trace"
    program = ("from drkit.failpoints import failpoint\n"
               "for n in range(5):\n"
               "    print(n, flush=True)\n"
               "    failpoint('swap', f'step {n}')\n")
    env = {**os.environ, "DRKIT_FAILPOINT": "swap:3", "DRKIT_FAILPOINT_LOG": str(trace)}
    result = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True,
                            text=True)
    assert result.returncode == -signal.SIGKILL
    assert result.stdout.split() == ["0", "1", "2"]
    assert trace.read_text().splitlines() == ["swap 1 step 0", "swap 2 step 1", "swap 3 step 2"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRKIT_FAILPOINT")}
    unset = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True)
    assert unset.returncode == 0


NOW = datetime(2026, 1, 1, 3, 0, 5, tzinfo=UTC)


def test_doctor_names_each_leftover_with_its_age_and_the_command_that_drops_it():
    left = ["drkit_drill_20260101024000", "drkit_replaced_20251230030000_ab12cd_1",
            "drkit_restore_20260101000000_ab12cd_1"]
    checks = {c.name: c for c in leftover_checks(left, [], "db:3306", NOW)}
    restore = checks["restore leftovers"]
    assert restore.status == WARNING
    assert "drkit_restore_20260101000000_ab12cd_1 (an unproven restored copy, 3 h old)" in \
        restore.detail
    assert "drkit_replaced_20251230030000_ab12cd_1 (old tables a swap set aside, 2 d old)" in \
        restore.detail
    assert "DROP DATABASE `drkit_restore_20260101000000_ab12cd_1`;" in restore.fix
    assert "DROP DATABASE `drkit_replaced_20251230030000_ab12cd_1`;" in restore.fix
    assert "drkit restore --recover-swap there first" in restore.fix
    drill = checks["drill leftovers"]
    assert "drkit_drill_20260101024000 (a drill's copy, 20 min old)" in drill.detail
    assert "DROP DATABASE `drkit_drill_20260101024000`;" in drill.fix


def test_doctor_sends_a_pending_swap_to_its_recovery_not_to_drop_database(tmp_path):
    pending = journal(path=tmp_path / "swaps" / "one.json")
    other = journal(target="dr.example:3306", place="crm", scratch="drkit_restore_2_x_1",
                    old="drkit_replaced_2_x_1", path=tmp_path / "swaps" / "two.json")
    left = [pending.old, pending.scratch, "drkit_restore_20260101030000_ffffff_1"]
    checks = leftover_checks(left, [pending, other], "db.example:3306", NOW)
    swaps = [c for c in checks if c.name == "interrupted swaps"]
    assert [c.status for c in swaps] == [CRITICAL, CRITICAL]
    assert "for shop on db.example:3306 stopped halfway; its journal " in swaps[0].detail
    assert "one.json is 3 h old: shop may lack views, triggers" in swaps[0].detail
    assert str(pending.path) in swaps[0].detail and pending.old in swaps[0].detail
    assert swaps[0].fix.startswith("drkit restore --recover-swap (it finishes or undoes")
    assert swaps[1].fix.startswith("drkit restore --recover-swap --target dr.example:3306 ")
    [restore] = [c for c in checks if c.name == "restore leftovers"]
    assert pending.old not in restore.detail and pending.old not in restore.fix
    assert "drkit_restore_20260101030000_ffffff_1 (an unproven restored copy, 5 s old)" in \
        restore.detail


def test_a_file_no_drkit_can_replay_is_named_for_a_look_by_hand(tmp_path):
    [check] = leftover_checks([], [tmp_path / "old.sql"], "db:3306", NOW)
    assert check.status == WARNING and "is not a swap journal this drkit can replay" in \
        check.detail and "by hand" in check.fix


@pytest.mark.parametrize(("seconds", "said"), [(5, "5 s old"), (125, "2 min old"),
                                               (3 * 3600 + 5, "3 h old"),
                                               (50 * 3600, "2 d 2 h old")])
def test_ages_read_as_a_person_would_say_them(seconds, said):
    assert age(seconds) == said


def test_no_leftovers_no_checks():
    assert leftover_checks([], [], "db:3306", NOW) == []


def test_an_unreadable_journal_stops_recovery_rather_than_being_passed_over(tmp_path):
    """A damaged journal may stand for a half-done swap: refused (39), never 'nothing to
    recover'. No server is reached before the journal is read."""
    from drkit.errors import SwapFailedError
    from drkit.mysql.connection import Server
    from drkit.mysql.swaprecover import recover_swaps

    (tmp_path / "drkit_replaced_20261207000000_abcdef_1.json").write_bytes(b'{"place": "sh')
    server = Server(role="target", host="127.0.0.1", port=1, user="u", password=None)
    with pytest.raises(SwapFailedError, match="not a swap journal this drkit can replay"):
        recover_swaps(server, tmp_path)


def test_a_signal_while_the_swap_is_planned_is_the_run_stopping_not_a_failed_swap(monkeypatch):
    from drkit.errors import RunTerminated
    from drkit.exitstatus import ExitStatus
    from drkit.mysql import swap

    class _Connection:
        def close(self) -> None:
            pass

    def terminated(*_args: object) -> None:
        raise RunTerminated("Interrupted by SIGTERM; what this run had started was stopped.")

    monkeypatch.setattr(swap, "connect", lambda _server: _Connection())
    monkeypatch.setattr(swap.steps, "exists", lambda _connection, _name: False)
    monkeypatch.setattr(swap, "_read", terminated)
    with pytest.raises(RunTerminated) as stopped:
        swap.plan_swap(None, "shop", "drkit_restore_x_1", "drkit_replaced_x_1")  # type: ignore[arg-type]
    assert stopped.value.exit_code == ExitStatus.TERMINATED
