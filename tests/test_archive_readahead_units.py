"""The archive reader's read-ahead (drkit.binlog.archived.archived_binlog), without services:
the next ranges are fetched, checked against their sha256 and opened on a thread of their
own while the caller uses this one; what comes out is in order, bounded, and never a byte of
a range that did not pass its check. The store stands in as the reader uses it: a download of
the committed bytes, a chunk at a time."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from pyrage import x25519

from drkit.binlog.archived import (
    CHECKED_AHEAD,
    DOWNLOADED_AHEAD,
    _requests,
    archived_binlog,
    archived_events,
)
from drkit.binlog.records import ArchivedFile, stored_span
from drkit.binlog.writer import BLOCK_LIMIT
from drkit.errors import BinlogArchiveError
from drkit.stream.encryption import Sealer
from tests.test_archive_encryption_units import _archived, _keyring_of
from tests.test_binlog_framing_units import FORMAT_DESCRIPTION, QUERY, XID, _file

KEY = x25519.Identity.generate()
# A file of 201 events, archived in a range each: many chances to read too far ahead.
MANY, EVENTS = _file((FORMAT_DESCRIPTION, 1_700_000_000, b"\x04\x00" + b"8.0.36" + b"\x00" * 90),
                     *[(QUERY, 1_700_000_001, b"BEGIN"), (XID, 1_700_000_002, b"\x2a" * 8)] * 100)

# Chunks (here ranges) fetched ahead of the caller when the read-ahead is full: those
# checked and waiting, the one the checker puts, the download's queue and the one it puts.
FULL = CHECKED_AHEAD + 1 + DOWNLOADED_AHEAD + 1


class _Store:
    """What the reader uses of a BackupStore: each committed range's stored bytes a download
    chunk of their own; how far the download ran ahead of the caller is kept."""

    prefix = "binlogs/"

    def __init__(self, blob: bytes, archived: ArchivedFile, keyring=None,
                 fail_at: int | None = None) -> None:
        self.blob, self.archived, self.keyring, self.fail_at = blob, archived, keyring, fail_at
        self.taken = 0  # chunks the caller has taken (the test counts them)
        self.most_ahead = 0  # the most chunks the download was ahead of the caller
        self.fetched = threading.Condition()
        self.chunks_fetched = 0
        self.closed = threading.Event()
        self.requests: list[tuple[int, int]] = []

    def download_appended(self, name: str, start: int, end: int) -> Iterator[bytes]:
        assert name == self.prefix + self.archived.file
        self.requests.append((start, end))
        try:
            for index, committed in enumerate(self.archived.ranges):
                begin, stop = stored_span(committed)
                if begin < start or stop > end:
                    continue
                if index == self.fail_at:
                    raise OSError("the connection was reset")
                with self.fetched:
                    self.chunks_fetched += 1
                    self.most_ahead = max(self.most_ahead, self.chunks_fetched - self.taken)
                    self.fetched.notify_all()
                yield self.blob[begin:stop]
        finally:
            self.closed.set()

    def wait_until_fetched(self, chunks: int) -> None:
        with self.fetched:
            assert self.fetched.wait_for(lambda: self.chunks_fetched >= chunks, timeout=30)


class _Archive:
    def __init__(self, store: _Store) -> None:
        self.store = store

    def full(self, archived: ArchivedFile) -> ArchivedFile:
        return archived


def _many_ranges(sealer: Sealer | None = None) -> tuple[ArchivedFile, bytes]:
    """MANY in a range per event, stored as read or each sealed."""
    return _archived(MANY, [(event.position + len(event.data), sealer) for event in EVENTS])


@pytest.mark.parametrize("sealer", [None, Sealer([str(KEY.to_public())])],
                         ids=["plain", "age"])
def test_ranges_come_in_order_and_the_read_runs_at_most_a_few_ranges_ahead(sealer):
    archived, blob = _many_ranges(sealer)
    store = _Store(blob, archived, _keyring_of(KEY) if sealer else None)
    pieces = []
    for piece in archived_binlog(_Archive(store), archived):
        pieces.append(bytes(piece))
        store.taken += 1
        # Let the read-ahead fill up before the next piece is taken: were it unbounded it
        # would read on here.
        store.wait_until_fetched(min(len(archived.ranges), store.taken + FULL))
    assert b"".join(pieces) == MANY
    assert len(pieces) == len(archived.ranges)  # each chunk one range here
    assert store.most_ahead <= FULL + 1  # and the one the caller was being handed
    assert store.closed.is_set()


@pytest.mark.parametrize("sealer", [None, Sealer([str(KEY.to_public())])],
                         ids=["plain", "age"])
def test_a_range_failing_its_check_stops_the_read_before_any_of_its_bytes(sealer):
    archived, blob = _many_ranges(sealer)
    bad = 4  # the second transaction's XID
    begin, _ = stored_span(archived.ranges[bad])
    damaged = blob[:begin + 10] + bytes([blob[begin + 10] ^ 1]) + blob[begin + 11:]
    store = _Store(damaged, archived, _keyring_of(KEY) if sealer else None)
    before = threading.active_count()
    read = bytearray()
    with pytest.raises(BinlogArchiveError, match=f"bytes {archived.ranges[bad]['start']}-"):
        for piece in archived_binlog(_Archive(store), archived):
            read += piece
    assert bytes(read) == MANY[:archived.ranges[bad]["start"]]  # all before it, nothing of it
    assert threading.active_count() == before and store.closed.is_set()

    # As events: none from the damaged range on, though those after it were read ahead.
    events = []
    with pytest.raises(BinlogArchiveError):
        for event in archived_events(_Archive(_Store(damaged, archived, store.keyring)),
                                     archived):
            events.append(event)
    assert events == EVENTS[:bad]


def test_a_failed_download_is_raised_in_place_and_ends_the_threads():
    archived, blob = _many_ranges()
    store = _Store(blob, archived, fail_at=7)
    before = threading.active_count()
    read = bytearray()
    with pytest.raises(OSError, match="reset"):
        for piece in archived_binlog(_Archive(store), archived):
            read += piece
    assert bytes(read) == MANY[:archived.ranges[7]["start"]]
    assert threading.active_count() == before


def test_a_caller_that_stops_early_ends_the_read_ahead_and_its_download():
    archived, blob = _many_ranges()
    store = _Store(blob, archived)
    before = threading.active_count()
    binlog = archived_binlog(_Archive(store), archived)
    assert bytes(next(binlog)) == MANY[:archived.ranges[0]["end"]]
    binlog.close()  # the replay stopped (TIME reached, an error, SIGTERM)
    assert threading.active_count() == before
    assert store.closed.is_set()  # the download was closed on its thread, not left open
    assert store.chunks_fetched < len(archived.ranges)


def test_small_ranges_are_fetched_many_a_request_and_a_block_at_most():
    """A quiet source's file holds a small range a flush (every 30 s, or each cron minute):
    thousands in a file. They were fetched by a request each (a day's replay: some 2,880
    GETs where one did); consecutive ones go in one request of up to a block, a range
    larger than that alone."""
    archived, blob = _many_ranges()
    store = _Store(blob, archived)
    assert b"".join(archived_binlog(_Archive(store), archived)) == MANY
    assert store.requests == [(0, len(MANY))]

    limit = BLOCK_LIMIT
    ranges = [{"start": a, "end": b} for a, b in
              [(0, 10), (10, limit - 5), (limit - 5, limit + 5), (limit + 5, 3 * limit)]]
    assert _requests(ranges) == [(0, limit - 5), (limit - 5, limit + 5), (limit + 5, 3 * limit)]
