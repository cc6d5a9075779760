"""An archived binlog file read back as events: what a point-in-time restore applies and
``drkit binlog verify --deep`` checks.

Each committed range is checked against its record's sha256 before any event in it is used;
events are cut from the bytes by the length in their headers, after the file's magic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from drkit.binlog.protocol import MAGIC
from drkit.binlog.records import Archive, ArchivedFile
from drkit.errors import BinlogArchiveError
from drkit.stream.readahead import read_ahead


def archived_events(archive: Archive,
                    archived: ArchivedFile) -> Iterator[tuple[int, int, int, bytes]]:
    """(position, type, timestamp, bytes) of each event of an archived file. Each committed
    range is checked against its sha256 before any event in it is used, and a blob shorter
    than its record is refused; bytes past the record (never committed by drkit) are not read
    as events."""
    archived = archive.full(archived)  # its ranges: the listing gives summaries only
    buffer, pending, position, magic_read = bytearray(), bytearray(), 4, False
    ranges = iter(archived.ranges)
    current = next(ranges, None)
    # Fetched ahead: the download's waits overlap the decoding of what came.
    chunks = read_ahead(archive.store.download(archive.store.prefix + archived.file))
    try:
        offset = 0
        for chunk in chunks:
            while chunk and current is not None:
                take = chunk[:current["end"] - offset]
                pending += take
                offset += len(take)
                chunk = chunk[len(take):]
                if offset == current["end"]:
                    if hashlib.sha256(pending).hexdigest() != current["sha256"]:
                        raise _damaged(archived, current)
                    buffer += pending
                    pending, current = bytearray(), next(ranges, None)
            if not magic_read and len(buffer) >= 4:  # the file's magic, before its first event
                if not buffer.startswith(MAGIC):
                    raise BinlogArchiveError(f"Archived {archived.file} is not a binary log.")
                del buffer[:4]
                magic_read = True
            start = 0  # events are cut by offset, the buffer compacted once per chunk
            while magic_read and len(buffer) - start >= 19:
                size = int.from_bytes(buffer[start + 9:start + 13], "little")
                if len(buffer) - start < size:
                    break
                data = bytes(buffer[start:start + size])
                start += size
                yield position, data[4], int.from_bytes(data[:4], "little"), data
                position += size
            del buffer[:start]
    finally:
        chunks.close()  # its reader stops here, also on an error
    if current is not None or buffer:
        raise _damaged(archived, current or archived.ranges[-1])


def _damaged(archived: ArchivedFile, where: dict[str, Any]) -> BinlogArchiveError:
    return BinlogArchiveError(
        f"Archived binlog {archived.file} bytes {where['start']}-{where['end']} are missing or "
        "do not match their sha256: the archive was changed or damaged.",
        "Nothing from there on was applied; restore to an earlier time, or see drkit binlog "
        "status.")
