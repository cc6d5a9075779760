"""The standby's rules without a service: the position statement, lag, doctor's verdicts,
gaps, and when a follower waits."""

from __future__ import annotations

import contextlib

import pytest

from drkit.binlog.position import Position, advance
from drkit.binlog.records import ArchivedFile
from drkit.checks import CRITICAL, OK, WARNING
from drkit.errors import BinlogGapError
from drkit.health.standby_checks import lag_check
from drkit.ops.standby import lag_bytes, lag_seconds, refuse_gap


def test_the_position_statement_holds_only_literals_and_keeps_the_newest_beat():
    sql = advance("mysql-bin.000007", 1234, 0, None).decode()
    assert "file = 'mysql-bin.000007'" in sql and "file_offset = 1234" in sql
    assert "last_event_at = '1970-01-01 00:00:00'" in sql
    assert "COALESCE(GREATEST(heartbeat, heartbeat), heartbeat)" in sql
    beat = advance("f.000001", 4, 60, "2026-12-07 04:00:00.5").decode()
    assert "GREATEST(heartbeat, '2026-12-07 04:00:00.5')" in beat


def test_lag_counts_source_seconds_and_the_archived_bytes_after_the_position():
    from datetime import UTC, datetime

    at = Position({"shop": "sb"}, "b", "bin.000002", 100,
                  last_event_at=datetime(2026, 12, 7, 4, 0, tzinfo=UTC))
    files = [ArchivedFile("bin.000001", 500), ArchivedFile("bin.000002", 300),
             ArchivedFile("bin.000010", 50)]
    assert lag_bytes(at, files) == 200 + 50
    assert lag_seconds(at, "2026-12-07T04:01:30+00:00") == 90
    assert lag_seconds(Position({}, "b", "f", 4), "2026-12-07T04:01:30+00:00") is None


def test_doctor_warns_past_the_lag_allowed_and_before_the_first_catch_up():
    report = {"databases": {"shop": "sb"}, "lag_seconds": 600, "lag_bytes": 10,
              "caught_up_at": "2026-12-07T04:00:00+00:00"}
    assert lag_check(report, 15).status == OK
    late = lag_check({**report, "lag_seconds": 16 * 60}, 15)
    assert late.status == WARNING and "more than 15 min" in late.detail
    never = lag_check({**report, "lag_seconds": None}, 15)
    assert never.status == WARNING and "has not caught up" in never.detail
    diverged = lag_check({**report, "diverged": "3 rows ... were not on it"}, 15)
    assert diverged.status == CRITICAL and "no longer equals the source" in diverged.detail


class _Gaps:
    """An archive's recorded gaps, as :class:`Archive` gives them."""

    def __init__(self, gaps: list[dict]) -> None:
        self._gaps = gaps

    def gaps(self) -> list[dict]:
        return self._gaps


def test_a_gap_after_the_position_is_refused_one_before_it_is_not():
    files = [ArchivedFile(f"bin.00000{n}") for n in (1, 2, 3)]
    refuse_gap(_Gaps([{"after_file": "bin.000001", "missing": "x"}]), files, "bin.000002")
    with pytest.raises(BinlogGapError, match="gap after bin.000002"):
        refuse_gap(_Gaps([{"after_file": "bin.000002", "missing": "purged"}]), files,
                   "bin.000002")
    with pytest.raises(BinlogGapError, match="the archive goes on at bin.000003"):
        refuse_gap(_Gaps([]), files[:1] + files[2:], "bin.000001")
    with pytest.raises(BinlogGapError, match="does not hold bin.000004"):
        refuse_gap(_Gaps([]), files, "bin.000004")


def test_a_follower_waits_only_once_caught_up(monkeypatch):
    """Without --once: after a catch-up that applied events it reads the archive again at
    once (it grew meanwhile); poll_seconds only once one found nothing."""
    from types import SimpleNamespace

    from drkit.ops import standby

    applied, seen = iter([5, 3, 0, 7, 0]), []

    def catch_up(settings, server):
        events = next(applied)  # StopIteration ends the loop
        seen.append(events)
        return standby.CatchUp("", 0, 0, events, 0, "bin.000001", 4, 0.0)

    monkeypatch.setattr(standby, "target_server", lambda settings: None)
    monkeypatch.setattr(standby, "one_follower", lambda server: contextlib.nullcontext(
        lambda: None))
    monkeypatch.setattr(standby, "catch_up", catch_up)
    monkeypatch.setattr(standby.time, "sleep", lambda seconds: seen.append(f"{seconds} s"))
    with pytest.raises(StopIteration):
        standby._follow(SimpleNamespace(standby=SimpleNamespace(poll_seconds=10)), once=False)
    assert seen == [5, 3, 0, "10 s", 7, 0, "10 s"]
