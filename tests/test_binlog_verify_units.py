"""The archive walk of ``drkit binlog verify`` (drkit.ops.binlog_verify) on records and blob
sizes made up here: which breaks it finds, the times each cuts off, the windows."""

from __future__ import annotations

import hashlib

from drkit.binlog.records import ArchivedFile
from drkit.ops.binlog_verify import Base, Verification, settle, walk


def _file(name: str, size: int = 100, at: str = "2026-12-01T10:00:00+00:00",
          complete: bool = True) -> ArchivedFile:
    digest = hashlib.sha256(name.encode()).hexdigest()
    return ArchivedFile(name, size=size, first_event_at=at, last_event_at=at,
                        complete=complete, ranges=[{"start": 0, "end": 60, "sha256": digest},
                                                   {"start": 60, "end": size,
                                                    "sha256": digest}])


def _check(records: list[ArchivedFile], sizes: dict[str, int] | None = None,
           bases: list[Base] | None = None, gaps: list[dict] | None = None) -> Verification:
    result = Verification(deep=False, files=len(records))
    result.bases = bases or [Base("b1", "2026-12-01T09:00:00+00:00", "binlog.000002", True)]
    result.from_file = min(b.snapshot_file for b in result.bases)
    result.newest_event_at = max(r.last_event_at for r in records)
    walk(None, {r.file: r for r in records},  # type: ignore[arg-type] (cheap: never read)
         {r.file: r.size for r in records} if sizes is None else sizes, gaps or [], result)
    settle(result)
    return result


def _day(hour: int) -> str:
    return f"2026-12-01T{hour:02d}:00:00+00:00"


def test_a_whole_archive_has_no_break_and_one_window_to_its_newest_event():
    result = _check([_file("binlog.000001", at=_day(8)), _file("binlog.000002", at=_day(10)),
                     _file("binlog.000003", at=_day(11))])
    assert result.ok and result.exit_code == 0 and not result.breaks
    assert result.checked_files == 2  # from the base's snapshot file on
    assert result.windows() == [{"backup": "b1", "from": _day(9), "until": _day(11),
                                 "cut_by": None, "verified": True}]


def test_a_number_skipped_is_a_missing_break_cutting_off_from_the_last_event_before_it():
    result = _check([_file("binlog.000002", at=_day(10)), _file("binlog.000005", at=_day(12))])
    assert not result.ok and result.exit_code == 49
    (found,) = result.breaks
    assert (found.file, found.through) == ("binlog.000003", "binlog.000004")
    assert found.cuts_from == _day(10) and found.cuts_until is None
    assert "lacks binlog.000003 .. binlog.000004" in found.sentence
    assert result.windows()[0]["until"] == _day(10)


def test_a_break_before_a_later_verified_base_is_superseded_for_the_times_after_it():
    bases = [Base("b1", _day(9), "binlog.000002", True),
             Base("b2", _day(13), "binlog.000005", True)]
    result = _check([_file("binlog.000002", at=_day(10)), _file("binlog.000005", at=_day(14))],
                    bases=bases)
    assert result.ok and result.exit_code == 0
    assert result.breaks[0].superseded_by == "b2" and result.breaks[0].cuts_until == _day(13)
    assert [w["until"] for w in result.windows()] == [_day(10), _day(14)]


def test_the_snapshot_file_missing_leaves_its_base_nothing():
    result = _check([_file("binlog.000003", at=_day(10))])
    (found,) = result.breaks
    assert found.file == found.through == "binlog.000002" and found.cuts_from == _day(9)
    assert result.windows()[0]["until"] is None and result.windows()[0]["cut_by"] == found.file


def test_a_record_or_blob_missing_and_sizes_that_disagree_are_named():
    records = [_file("binlog.000002"), _file("binlog.000003"), _file("binlog.000004")]
    sizes = {"binlog.000002": 99, "binlog.000004": 100, "binlog.000005": 50}
    result = _check(records, sizes=sizes)
    found = {b.file: b for b in result.breaks}
    assert found["binlog.000002"].kind == "damaged" and \
        "is 99 bytes where its record says 100" in found["binlog.000002"].problem
    assert found["binlog.000003"].kind == "missing" and "no blob" in found["binlog.000003"].problem
    assert "has no record (binlog.000005.json)" in found["binlog.000005"].problem
    assert result.exit_code == 48  # the first break is a damaged file


def test_only_the_newest_blob_may_hold_more_than_its_record():
    records = [_file("binlog.000002"), _file("binlog.000003")]
    assert _check(records, sizes={"binlog.000002": 100, "binlog.000003": 160}).ok
    assert not _check(records, sizes={"binlog.000002": 160, "binlog.000003": 100}).ok


def test_ranges_that_do_not_cover_the_file_are_damage():
    record = _file("binlog.000002")
    record.ranges[1]["start"] = 61
    result = _check([record])
    assert result.exit_code == 48 and "from 60 on" in result.breaks[0].problem


def test_a_recorded_gap_after_an_unfinished_file_is_named_with_its_reason():
    gap = {"after_file": "binlog.000002", "missing": "the rest of binlog.000002 and every "
           "binlog before binlog.000003 (purged before it was archived)"}
    result = _check([_file("binlog.000002", complete=False), _file("binlog.000003")],
                    gaps=[gap])
    (found,) = result.breaks
    assert found.file == "binlog.000002" and "purged before it was archived" in found.problem
