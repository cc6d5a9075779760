"""Binary log events cut from bytes (drkit.binlog.framing), and the archive reader's checks of
each committed range before its bytes are framed (drkit.ops.pitr), on bytes laid out as
MySQL's ``log_event.h`` gives the common header: timestamp 4, type 1, server id 4, event size
4, next position 4, flags 2, all little-endian."""

from __future__ import annotations

import hashlib
import struct

import pytest

from drkit.binlog.archived import _committed_ranges, _spans
from drkit.binlog.framing import HEADER_SIZE, EventFramer, FramedEvent
from drkit.binlog.protocol import MAGIC
from drkit.binlog.records import ArchivedFile
from drkit.errors import BinlogArchiveError

QUERY, XID, FORMAT_DESCRIPTION = 2, 16, 15


def _event(kind: int, timestamp: int, body: bytes, position: int) -> bytes:
    size = HEADER_SIZE + len(body)
    return struct.pack("<IBIIIH", timestamp, kind, 1, size, position + size, 0) + body


def _file(*events: tuple[int, int, bytes]) -> tuple[bytes, list[FramedEvent]]:
    """A binlog file of ``events`` (type, timestamp, body), and the events it frames to."""
    data, framed = bytearray(MAGIC), []
    for kind, timestamp, body in events:
        event = _event(kind, timestamp, body, len(data))
        framed.append(FramedEvent(len(data), kind, timestamp, event))
        data += event
    return bytes(data), framed


FILE, EVENTS = _file((FORMAT_DESCRIPTION, 1_700_000_000, b"\x04\x00" + b"8.0.36" + b"\x00" * 90),
                     (QUERY, 1_700_000_001, b"BEGIN"), (XID, 1_700_000_002, b"\x2a" + b"\x00" * 7))


def _frame(pieces: list[bytes]) -> tuple[list[FramedEvent], EventFramer]:
    framer = EventFramer("Archived mysql-bin.000001")
    return [event for piece in pieces for event in framer.feed(piece)], framer


def test_a_file_in_one_piece_frames_to_its_events_at_their_positions():
    events, framer = _frame([FILE])
    assert events == EVENTS
    assert [e.position for e in events] == [4, 4 + len(EVENTS[0].data),
                                            4 + len(EVENTS[0].data) + len(EVENTS[1].data)]
    assert framer.pending == 0


@pytest.mark.parametrize("size", [1, 2, 3, 5, 19, 20, 64])
def test_pieces_of_any_size_frame_to_the_same_events(size):
    """A piece may end inside the magic, the header or the body: an event comes out once
    its last byte came, whole."""
    events, framer = _frame([FILE[i:i + size] for i in range(0, len(FILE), size)])
    assert events == EVENTS
    assert framer.pending == 0


def test_an_event_cut_at_the_end_is_pending_not_framed():
    events, framer = _frame([FILE[:-3]])
    assert events == EVENTS[:2]
    assert framer.pending == len(EVENTS[2].data) - 3


def test_bytes_short_of_the_magic_are_pending():
    events, framer = _frame([MAGIC[:3]])
    assert events == [] and framer.pending == 3


def test_bytes_without_the_magic_are_not_a_binary_log():
    with pytest.raises(BinlogArchiveError, match=r"^Archived mysql-bin.000001 is not a binary "
                                                 r"log\.$"):
        _frame([b"\x00bin" + FILE[4:]])


def test_an_event_smaller_than_its_header_is_not_a_binary_log():
    """A size no event has (here 0) would otherwise frame nothing forever."""
    broken = MAGIC + struct.pack("<IBIIIH", 1_700_000_000, QUERY, 1, 0, 0, 0)
    with pytest.raises(BinlogArchiveError, match="the event at 4 says it is 0 bytes"):
        _frame([broken])


def _archived(data: bytes, cuts: list[int]) -> ArchivedFile:
    """The record of ``data`` committed in ranges ending at ``cuts``."""
    ranges, start = [], 0
    for end in cuts:
        ranges.append({"start": start, "end": end,
                       "sha256": hashlib.sha256(data[start:end]).hexdigest()})
        start = end
    return ArchivedFile("mysql-bin.000001", size=cuts[-1], ranges=ranges)


def test_committed_ranges_come_whole_and_checked_whatever_the_chunks():
    """A chunk's bytes are handed over up to the end of the last range it completes."""
    archived = _archived(FILE, [10, 40, len(FILE)])
    chunks = [FILE[i:i + 7] for i in range(0, len(FILE), 7)]
    pieces = [bytes(r) for r in _committed_ranges(iter(chunks), archived)]
    assert b"".join(pieces) == FILE
    assert [len(p) for p in pieces] == [10, 30, len(FILE) - 40]


def test_bytes_past_the_record_are_not_read():
    """What a writer appended and never committed is no part of the archive."""
    archived = _archived(FILE, [40])
    assert b"".join(_committed_ranges(iter([FILE]), archived)) == FILE[:40]


def test_a_range_not_matching_its_sha256_is_refused_before_its_bytes_are_used():
    archived = _archived(FILE, [10, len(FILE)])
    damaged = FILE[:20] + b"X" + FILE[21:]
    ranges = _committed_ranges(iter([damaged[:12], damaged[12:]]), archived)
    assert bytes(next(ranges)) == FILE[:10]
    with pytest.raises(BinlogArchiveError, match=f"bytes 10-{len(FILE)} are missing or do not "
                                                 "match their sha256"):
        next(ranges)


def test_a_blob_shorter_than_its_record_is_refused():
    archived = _archived(FILE, [10, len(FILE)])
    with pytest.raises(BinlogArchiveError, match=f"bytes 10-{len(FILE)} are missing"):
        list(_committed_ranges(iter([FILE[:-1]]), archived))


def _read_from(archived: ArchivedFile, start_at: int) -> tuple[list[FramedEvent], list[int]]:
    """The events framed reading ``archived`` (of FILE) from ``start_at`` as the archive's
    reader does, and the offsets where each read began."""
    framer, events, reads = EventFramer("Archived mysql-bin.000001"), [], []
    for span in _spans(archived.ranges, start_at, framer):
        framer.skip_to(span[0]["start"])
        reads.append(span[0]["start"])
        data = FILE[span[0]["start"]:span[-1]["end"]]
        for piece in _committed_ranges(iter([data]), archived, span=span):
            events += framer.feed(piece)
    return events, reads


def test_a_read_from_a_position_takes_the_first_range_and_those_from_the_position_on():
    """A standby polling a long file reads the format (the first range) and what it has
    not applied, not the whole file again; positions stay the file's."""
    first, second, third = (len(FILE) - len(EVENTS[2].data) - len(EVENTS[1].data),
                            len(FILE) - len(EVENTS[2].data), len(FILE))
    archived = _archived(FILE, [first, second, third])
    events, reads = _read_from(archived, second)
    assert events == [EVENTS[0], EVENTS[2]] and reads == [0, second]
    assert _read_from(archived, 0) == (EVENTS, [0])  # from the start: one read
    assert _read_from(archived, third)[0] == [EVENTS[0]]  # nothing after the position


def test_ranges_not_ending_between_events_are_read_on_without_a_skip():
    """A range ending inside an event (drkit's flushes never do) is no place to skip from."""
    archived = _archived(FILE, [10, 40, len(FILE)])
    events, reads = _read_from(archived, 50)
    assert events == EVENTS and reads == [0, 10]


def test_a_skip_past_an_event_not_yet_whole_is_refused():
    framer = EventFramer("Archived mysql-bin.000001")
    list(framer.feed(FILE[:30]))
    with pytest.raises(BinlogArchiveError, match="cannot be read from 99"):
        framer.skip_to(99)
