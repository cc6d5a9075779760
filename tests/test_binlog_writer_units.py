"""The binlog writer's pure parts: block ids Azure accepts beside older ones, and event
headers parsed only from bytes that end on an event boundary."""

from __future__ import annotations

import base64
import struct

from drkit.azure.blocks import block_id
from drkit.binlog.protocol import MAGIC
from drkit.binlog.records import Archive, ArchivedFile
from drkit.binlog.writer import _headers


def _event(timestamp: int, server_id: int, body: bytes) -> bytes:
    size = 19 + len(body)
    return struct.pack("<IBIIIH", timestamp, 2, server_id, size, 0, 0) + body


def test_block_ids_of_a_run_are_as_long_as_the_ids_drkit_always_used():
    legacy = base64.b64encode(b"binlog-0000000001").decode()
    ours = {block_id("a1b2c3", i) for i in (0, 1, 9_999_999_999)}
    assert {len(i) for i in ours} == {len(legacy)}  # Azure wants one length per blob
    assert block_id("a1b2c3", 7) != block_id("d4e5f6", 7)  # a rival's never collides


def test_headers_come_only_from_bytes_that_end_where_an_event_ends():
    data = MAGIC + _event(1_700_000_000, 7, b"x" * 30) + _event(1_700_000_005, 7, b"y")
    assert _headers(data) == [(1_700_000_000, 7), (1_700_000_005, 7)]
    assert _headers(data[:-1]) is None  # cut inside an event
    assert _headers(data + b"\0" * 25) is None  # a trailing header claiming 0 bytes
    garbage = bytes(range(256)) * 4
    assert _headers(garbage) is None


def test_a_summary_from_the_listing_is_read_whole_before_its_ranges_are_used():
    class NoStore:
        prefix = "p/"

    partial = Archive._parse("p/binlog.000001.json", '{"file": "binlog.000001", "size": 9}',
                             partial=True)
    assert partial == ArchivedFile("binlog.000001", size=9) and partial.partial
    whole = ArchivedFile("binlog.000002")
    assert Archive(NoStore()).full(whole) is whole  # type: ignore[arg-type]


def test_the_stream_summary_says_so_when_no_file_was_touched():
    """Not "archived 0 events (0 bytes) of no new events"."""
    from drkit.ops.binlog_archive import StreamResult

    assert StreamResult().summary == "no new events to archive"
    assert StreamResult(["binlog.000007", "binlog.000008"], 3, 512).summary == \
        "archived 3 events (512 bytes) of binlog.000007, binlog.000008"
