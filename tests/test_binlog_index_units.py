"""The archive's index against a listing (drkit.binlog.records): what ``binlog verify`` and
doctor call a disagreement, on records made up here. The index's readers and writer on the
sandbox: tests/test_binlog_writer.py."""

from __future__ import annotations

import json

import pytest

from drkit.binlog.records import ArchivedFile, _disagreements, _through

pytestmark = pytest.mark.unit


def _file(number: int, size: int = 100, complete: bool = True) -> ArchivedFile:
    return ArchivedFile(f"binlog.{number:06d}", size=size, complete=complete,
                        last_event_at=f"2026-12-01T{number:02d}:00:00+00:00",
                        next_file=f"binlog.{number + 1:06d}" if complete else None)


def test_an_index_behind_the_records_is_no_disagreement():
    """A writer that moved on after the index was read: files after its newest, and the
    file it was writing grown and ended since."""
    index = [_file(1), _file(2), _file(3, size=40, complete=False)]
    records = [_file(1), _file(2), _file(3, size=100), _file(4), _file(5, complete=False)]
    assert list(_disagreements(index, records, None)) == []


def test_a_hidden_a_misstated_and_a_vanished_file_are_each_named():
    index = [_file(1), _file(2, size=99), _file(4), _file(5, complete=False)]
    records = [_file(1), _file(2), _file(3), _file(5, size=50, complete=False)]
    assert list(_disagreements(index, records, None)) == [
        "the index's entry for binlog.000002 is not what its record says",
        "the index names binlog.000004, which has no record",
        "the index's entry for binlog.000005 is not what its record says",  # shrunk
        "the index lacks binlog.000003"]


def test_files_up_to_prunes_mark_are_not_compared():
    index = [_file(1), _file(2), _file(3)]
    records = [_file(3)]  # 1 and 2 pruned, the index not yet rewritten
    assert list(_disagreements(index, records, "binlog.000002")) == []
    assert list(_disagreements(index, records, None)) == [
        "the index names binlog.000001, which has no record",
        "the index names binlog.000002, which has no record"]


@pytest.mark.parametrize(("body", "through"), [
    (None, None), (b"{", None), (b"[]", None), (b'{"through": 5}', None), (b"{}", None),
    (json.dumps({"through": "binlog.000007"}).encode(), "binlog.000007")])
def test_a_prune_mark_drkit_cannot_read_is_no_mark(body, through):
    assert _through(None if body is None else (body, "etag")) == through
