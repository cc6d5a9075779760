"""An archived binlog file read back as events: what a point-in-time restore applies and
``drkit binlog verify --deep`` checks.

Each committed range is checked against its record's sha256 before any event in it is used;
events are cut from the bytes by :mod:`drkit.binlog.framing`, a chunk at a time, as they come.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from drkit.binlog.framing import EventFramer, FramedEvent
from drkit.binlog.records import Archive, ArchivedFile
from drkit.errors import BinlogArchiveError
from drkit.stream.readahead import read_ahead


def archived_events(archive: Archive, archived: ArchivedFile) -> Iterator[FramedEvent]:
    """(position, type, timestamp, bytes) of each event of an archived file. Each committed
    range is checked against its sha256 before any event in it is used, and a blob shorter
    than its record is refused; bytes past the record (never committed by drkit) are not read
    as events."""
    archived = archive.full(archived)  # its ranges: the listing gives summaries only
    framer = EventFramer(f"Archived {archived.file}")
    # Fetched ahead: the download's waits overlap the decoding of what came. Only the
    # committed bytes, read so that the streamer may append to the blob meanwhile.
    chunks = read_ahead(archive.store.download_head(archive.store.prefix + archived.file,
                                                    archived.size))
    try:
        for committed in _committed_ranges(chunks, archived):
            yield from framer.feed(committed)
    finally:
        chunks.close()  # its reader stops here, also on an error
    if framer.pending:
        raise _damaged(archived, archived.ranges[-1])


def _committed_ranges(chunks: Iterator[bytes], archived: ArchivedFile) -> Iterator[bytearray]:
    """The bytes of the committed ranges each chunk completes, once each matched its sha256
    (framed a chunk at a time, as they come); a range cut short, or not matching, is refused."""
    ranges = iter(archived.ranges)
    current, pending, offset = next(ranges, None), bytearray(), 0
    for chunk in chunks:
        checked = bytearray()
        while chunk and current is not None:
            take = chunk[:current["end"] - offset]
            pending += take
            offset += len(take)
            chunk = chunk[len(take):]
            if offset == current["end"]:
                if hashlib.sha256(pending).hexdigest() != current["sha256"]:
                    raise _damaged(archived, current)
                checked += pending
                pending, current = bytearray(), next(ranges, None)
        if checked:
            yield checked
    if current is not None:
        raise _damaged(archived, current)


def _damaged(archived: ArchivedFile, where: dict[str, Any]) -> BinlogArchiveError:
    return BinlogArchiveError(
        f"Archived binlog {archived.file} bytes {where['start']}-{where['end']} are missing or "
        "do not match their sha256: the archive was changed or damaged.",
        "Nothing from there on was applied; restore to an earlier time, or see drkit binlog "
        "status.")
