"""The binlog archive's index as its readers take it: an index drkit cannot read (a value of
the wrong type, a time that is no time) is passed over for the listing, never an internal
error; and binlog verify names every file the index's readers would not reach. On an
in-memory stand-in of drkit's own BackupStore (no service)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from drkit.azure.blobstore import StoredBlob
from drkit.binlog.records import UNREADABLE_INDEX, Archive, ArchivedFile, _disagreements, _through
from drkit.errors import BinlogArchiveError

PREFIX = "binlogs/"


class MemoryStore:
    """The few BackupStore calls the archive's readers make, over a dict of blobs."""

    prefix = PREFIX

    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.data = {PREFIX + name: value for name, value in blobs.items()}

    def read_if_present(self, name: str) -> tuple[bytes, str] | None:
        return (self.data[name], "etag") if name in self.data else None

    def read_with_etag(self, name: str) -> tuple[bytes, str]:
        return self.data[name], "etag"

    def size_if_present(self, name: str) -> int | None:
        return len(self.data[name]) if name in self.data else None

    def blobs(self, metadata: bool = False) -> list[StoredBlob]:
        return [StoredBlob(name, len(value), "etag", {}) for name, value in self.data.items()]


def _record(name: str, following: str | None) -> dict[str, Any]:
    return {"file": name, "size": 4, "complete": following is not None, "next_file": following,
            "last_event_at": f"2026-12-07T10:0{name[-1]}:00+00:00",
            "ranges": [{"start": 0, "end": 4, "sha256": "0" * 64}]}


def _archive(index: Any) -> Archive:
    """binlog.000001 .. 000003, the last being written, and ``index``."""
    blobs = {}
    for number, following in ((1, "binlog.000002"), (2, "binlog.000003"), (3, None)):
        blobs[f"binlog.00000{number}"] = b"\xfebin"
        blobs[f"binlog.00000{number}.json"] = json.dumps(
            _record(f"binlog.00000{number}", following)).encode()
    blobs["index.json"] = index if isinstance(index, bytes) else json.dumps(index).encode()
    return Archive(MemoryStore(blobs))  # type: ignore[arg-type]


def _entry(**changed: Any) -> dict[str, Any]:
    entry = _record("binlog.000001", "binlog.000002")
    del entry["ranges"]
    return {**entry, **changed}


@pytest.mark.parametrize("index", [
    {"format": 1, "writing": 5, "files": [_entry()]},
    {"format": 1, "writing": ["binlog.000002"], "files": [_entry()]},
    {"format": 1, "writing": "binlog.000002", "files": [_entry(file=7)]},
    {"format": 1, "writing": "binlog.000002", "files": [_entry(size="4")]},
    {"format": 1, "writing": "binlog.000002", "files": [_entry(last_event_at=1765101600)]},
    {"format": 1, "writing": "binlog.000002", "files": [_entry(last_event_at="not a time")]},
    {"format": 1, "writing": "binlog.000002", "files": [_entry(complete="yes")]},
    {"format": 1, "writing": "binlog.000002", "files": ["binlog.000001"]},
    b'{"format": 1, "writing": "binlog.0000',
    b"", b"null", b"[]", b"[" * 100_000,
], ids=["writing-int", "writing-list", "file-int", "size-str", "time-int", "time-text",
        "complete-str", "entry-str", "cut-short", "empty", "null", "list", "nested-deep"])
def test_an_index_drkit_cannot_read_is_passed_over_for_the_listing_and_named(index):
    """Status reads the listing instead; verify and doctor say so, as they do of an index
    that is well formed but wrong."""
    archive = _archive(index)
    read = archive.indexed()
    assert read.read_from == "listing" and len(read.files) == 3
    datetime.fromisoformat(read.newest_event_at or "")  # status and the fleet's lag parse it
    problems = archive.listed(against_index=True).index_problems
    assert len(problems) == 1 and problems[0] == UNREADABLE_INDEX
    assert archive.listed().index_problems == ()  # not asked


def test_verify_names_the_files_the_index_hides_from_its_readers():
    """An index naming no file and a file being written that does not exist: status would
    show an empty archive; binlog verify says which files it hides."""
    hiding = _archive({"format": 1, "writing": "binlog.000009", "files": []})
    assert hiding.indexed().files == []  # what status shows
    assert hiding.listed(against_index=True).index_problems == (
        "the index lacks binlog.000001 .. binlog.000003 (3 files)",)


def test_verify_names_the_files_prunes_mark_passes_over_that_the_archive_holds():
    """A mark past files still there (written by hand, or from a prune that stopped before it
    deleted them): status passes over them; binlog verify says so and how to undo it."""
    current = {"format": 1, "writing": "binlog.000003", "files": []}
    archive = _archive(current)
    archive.store.data[PREFIX + "pruned.json"] = b'{"through": "binlog.000999"}'
    assert [f.file for f in archive.indexed().files] == ["binlog.000003"]  # status's
    assert archive.listed(against_index=True).index_problems == (
        "prune's mark (pruned.json) names binlog.000999, yet the archive still holds "
        "binlog.000001 .. binlog.000003 (3 files) up to it: binlog status may pass over them; "
        "unless a drkit prune is running, delete pruned.json",)


@pytest.mark.parametrize("index", [
    {"format": 1, "writing": "binlog.000001", "files": []},  # behind: read on by next_file
    {"format": 1, "writing": "binlog.000003", "files": [  # as its writer left it
        _entry(), _entry(file="binlog.000002", next_file="binlog.000003",
                         last_event_at="2026-12-07T10:02:00+00:00"),
        _entry(file="binlog.000003", next_file=None, complete=False,
               last_event_at="2026-12-07T10:03:00+00:00")]},
], ids=["behind", "current"])
def test_an_index_its_readers_read_on_from_is_no_problem(index):
    archive = _archive(index)
    assert [f.file for f in archive.indexed().files] == [
        "binlog.000001", "binlog.000002", "binlog.000003"]
    assert archive.listed(against_index=True).index_problems == ()


@pytest.mark.parametrize(("mark", "checking", "shown"), [
    ("binlog.000001", ["binlog.000002"], [2, 3]),  # prune's: before the oldest base's start
    ("binlog.000002", ["binlog.000001"], [1, 2, 3]),  # past it: no prune's, passed over
    ("binlog.000999", [], [1, 2, 3]),  # past the file being written: no prune's
])
def test_status_passes_over_only_what_prune_can_have_taken(mark, checking, shown):
    """prune takes only files before the oldest base's first file, complete ones (before the
    file being written): a mark past those hid files from status and made a break of them."""
    index = {"format": 1, "writing": "binlog.000003", "files": [
        _entry(), _entry(file="binlog.000002", next_file="binlog.000003",
                         last_event_at="2026-12-07T10:02:00+00:00")]}
    archive = _archive(index)
    archive.store.data[PREFIX + "pruned.json"] = json.dumps({"through": mark}).encode()
    assert [f.file for f in archive.indexed(checking).files] == [
        f"binlog.00000{n}" for n in shown]


def test_runs_of_files_go_on_past_six_digits_under_rds_names():
    from drkit.binlog.records import _runs

    names = [f"mysql-bin-changelog.{n}" for n in ("1000002", "999999", "1000000", "999998")]
    assert _runs(names) == ["mysql-bin-changelog.999998 .. mysql-bin-changelog.1000000 "
                            "(3 files)", "mysql-bin-changelog.1000002"]


def test_every_field_of_a_record_has_the_types_a_reader_accepts():
    from drkit.binlog.records import _KNOWN, _TYPES

    assert set(_TYPES) == _KNOWN  # a field added to ArchivedFile says its JSON types here


def _file(number: int, size: int = 100, complete: bool = True) -> ArchivedFile:
    return ArchivedFile(f"binlog.{number:06d}", size=size, complete=complete,
                        last_event_at=f"2026-12-01T{number:02d}:00:00+00:00",
                        next_file=f"binlog.{number + 1:06d}" if complete else None)


def test_an_index_behind_the_records_is_no_disagreement():
    """A writer that moved on after the index was read: files after its newest, and the
    file it was writing grown and ended since."""
    index = [_file(1), _file(2), _file(3, size=40, complete=False)]
    records = [_file(1), _file(2), _file(3, size=100), _file(4), _file(5, complete=False)]
    assert list(_disagreements(index, None, records, None)) == []


def test_a_hidden_a_misstated_and_a_vanished_file_are_each_named():
    index = [_file(1), _file(2, size=99), _file(4), _file(5, complete=False)]
    records = [_file(1), _file(2), _file(3), _file(5, size=50, complete=False)]
    assert list(_disagreements(index, None, records, None)) == [
        "the index's entry for binlog.000002 is not what its record says",
        "the index names binlog.000004, which has no record",
        "the index's entry for binlog.000005 is not what its record says",  # shrunk
        "the index lacks binlog.000003"]


def test_files_up_to_prunes_mark_are_not_compared():
    index = [_file(1), _file(2), _file(3)]
    records = [_file(3)]  # 1 and 2 pruned, the index not yet rewritten
    assert list(_disagreements(index, None, records, "binlog.000002")) == []
    assert list(_disagreements(index, None, records, None)) == [
        "the index names binlog.000001, which has no record",
        "the index names binlog.000002, which has no record"]


@pytest.mark.parametrize(("body", "through"), [
    (None, None), (b"{", None), (b"[]", None), (b'{"through": 5}', None), (b"{}", None),
    (b"[" * 100_000, None),  # deeper than Python's JSON parser goes: RecursionError
    (json.dumps({"through": "binlog.000007"}).encode(), "binlog.000007")])
def test_a_prune_mark_drkit_cannot_read_is_no_mark(body, through):
    assert _through(None if body is None else (body, "etag")) == through


@pytest.mark.parametrize("body", [b"{", b"[" * 100_000, b'{"after_file": "binlog.000002"}',
                                  b'["binlog.000002"]'])
def test_a_record_or_gap_record_drkit_cannot_read_is_one_sentence(body):
    """A damaged file record or gap record (not JSON, nested past the parser, another shape)
    is exit 48 with what to do, never an internal error."""
    archive = _archive({"format": 1, "writing": "binlog.000003", "files": []})
    with pytest.raises(BinlogArchiveError, match="is not one drkit wrote"):
        archive._parse("binlogs/binlog.000001.json", body, partial=False)
    archive.store.data[PREFIX + "gaps.json"] = body
    with pytest.raises(BinlogArchiveError, match="gap record .* is not one drkit wrote"):
        archive.gaps()
    archive.store.data[PREFIX + "gaps.json"] = b'[{"after_file": "binlog.000001"}]'
    assert archive.gaps() == [{"after_file": "binlog.000001"}]
