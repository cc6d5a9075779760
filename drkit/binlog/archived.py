"""An archived binlog file read back as events: what a point-in-time restore applies and
``drkit binlog verify --deep`` checks.

Each committed range is checked against its record's sha256 before any event in it is used
(an encrypted range, its own age file, is then opened with ``encryption.identity``); events are
cut from the bytes by :mod:`drkit.binlog.framing`, a chunk at a time, as they come. The
fetching, checking and opening run on threads of their own, a few ranges ahead of the
caller (ranges are at most a block, 4 MiB, since drkit.binlog.writer.BLOCK_LIMIT; older
archives' may be larger and cost as much more memory): the caller decodes and applies one
range while the next ones come and are checked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from drkit.binlog.framing import EventFramer, FramedEvent
from drkit.binlog.records import Archive, ArchivedFile, stored_span
from drkit.binlog.writer import BLOCK_LIMIT
from drkit.errors import BinlogArchiveError
from drkit.stream.compression import CorruptStreamError
from drkit.stream.encryption import Keyring, opened
from drkit.stream.readahead import read_ahead

# Checked pieces (a range, or what one download chunk completed) waiting for the caller at
# most, and download chunks (4 MiB, the SDK's) waiting to be checked: with ranges of at
# most a block (drkit.binlog.writer.BLOCK_LIMIT, 4 MiB) some 30 MiB read ahead in all.
CHECKED_AHEAD = 2
DOWNLOADED_AHEAD = 2


def archived_events(archive: Archive, archived: ArchivedFile,
                    start_at: int = 0) -> Iterator[FramedEvent]:
    """(position, type, timestamp, bytes) of each event of an archived file. Each committed
    range is checked against its sha256 before any event in it is used, and a blob shorter
    than its record is refused; bytes past the record (never committed by drkit) are not read
    as events. From ``start_at`` on (a position at which no transaction is open) only the
    first range, for the file's format, and the ranges from there are read: a follower
    polling a long file reads what it has not applied, not the whole file again."""
    archived = archive.full(archived)  # its ranges: the listing gives summaries only
    framer = EventFramer(f"Archived {archived.file}")
    for span in _spans(archived.ranges, start_at, framer):
        framer.skip_to(span[0]["start"])
        binlog = archived_binlog(archive, archived, span)
        try:
            for piece in binlog:
                yield from framer.feed(piece)
        finally:
            binlog.close()
    if framer.pending:
        raise _damaged(archived, archived.ranges[-1])


def _spans(ranges: list[dict[str, Any]], start_at: int,
           framer: EventFramer) -> Iterator[list[dict[str, Any]]]:
    """The runs of consecutive ranges to read: all of them, or the first and those from the
    one holding ``start_at`` on. Ranges end where a flush ended, between two events; one that
    does not (the framer holds part of an event) is read on without a skip."""
    skip_to = next((i for i, r in enumerate(ranges) if r["end"] > start_at), len(ranges))
    if skip_to <= 1:
        if ranges:
            yield ranges
        return
    yield ranges[:1]
    rest = ranges[1:] if framer.pending else ranges[skip_to:]
    if rest:
        yield rest


def archived_binlog(archive: Archive, archived: ArchivedFile,
                    span: list[dict[str, Any]] | None = None) -> Iterator[bytes]:
    """The binlog bytes of an archived file as the source wrote them, magic included, a
    piece at a time (of ``span``, consecutive ranges of its record, or all of them): each
    range checked against its sha256 (and opened, if encrypted). The blob may grow while it
    is read (the streamer appends): only the committed ranges' bytes are fetched."""
    archived = archive.full(archived)  # its ranges: the listing gives summaries only
    span = archived.ranges if span is None else span
    if not span:
        return
    # Checked (and opened) on a thread of its own, at most CHECKED_AHEAD pieces ahead: the
    # next ranges are fetched, checked and opened while the caller decodes and applies this
    # one. Only what passed its sha256 ever comes out of it, in order; a range that fails
    # is an error where its bytes would have been.
    checked = read_ahead(_checked_binlog(archive, archived, span), depth=CHECKED_AHEAD)
    try:
        yield from checked
    finally:
        checked.close()  # its thread stops here (and its download with it), also on an error


def _checked_binlog(archive: Archive, archived: ArchivedFile,
                    span: list[dict[str, Any]]) -> Iterator[bytes]:
    """``span``'s bytes checked (and opened), fetched ahead: the download's waits overlap
    the checking of what came."""
    chunks = read_ahead(_stored_ranges(archive, archived, span), depth=DOWNLOADED_AHEAD)
    try:
        yield from _committed_ranges(chunks, archived, archive.store.keyring, span)
    finally:
        chunks.close()  # its reader stops here, also on an error


def _stored_ranges(archive: Archive, archived: ArchivedFile,
                   span: list[dict[str, Any]]) -> Iterator[bytes]:
    """``span``'s stored bytes, a request for each run of ranges that together fit in a
    block (one GET): a range is checked as soon as its request came, not after a download
    chunk that runs on into the next one; and the small ranges of a quiet source (a flush
    each ``binlog.flush_seconds`` or each cron minute, thousands in a file) cost a request
    a block, not a request each."""
    name = archive.store.prefix + archived.file
    for start, end in _requests(span):
        yield from archive.store.download_appended(name, start, end)


def _requests(span: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """(start, end) of each request: consecutive stored ranges up to BLOCK_LIMIT bytes in
    all, or one larger range alone."""
    requests: list[tuple[int, int]] = []
    for committed in span:
        begin, stop = stored_span(committed)
        if requests and requests[-1][1] == begin and stop - requests[-1][0] <= BLOCK_LIMIT:
            requests[-1] = (requests[-1][0], stop)
        else:
            requests.append((begin, stop))
    return requests


def _committed_ranges(chunks: Iterator[bytes], archived: ArchivedFile,
                      keyring: Keyring | None = None,
                      span: list[dict[str, Any]] | None = None) -> Iterator[bytes]:
    """The binlog bytes of the committed ranges (``span``'s, or all the record's) each chunk
    completes, once each matched its sha256 (a chunk at a time, as they come), an encrypted
    one opened with ``keyring``'s identity; a range cut short, or not matching, is refused.
    The chunks begin where the first range is stored."""
    span = archived.ranges if span is None else span
    ranges = iter(span)
    current = next(ranges, None)
    pending, offset = bytearray(), stored_span(current)[0] if current else 0
    for chunk in chunks:
        checked = bytearray()
        while chunk and current is not None:
            take = chunk[:stored_span(current)[1] - offset]
            pending += take
            offset += len(take)
            chunk = chunk[len(take):]
            if offset == stored_span(current)[1]:
                if hashlib.sha256(pending).hexdigest() != current["sha256"]:
                    raise _damaged(archived, current)
                if "to" not in current:
                    checked += pending
                else:  # its own age file: what came before it goes first
                    if checked:
                        yield checked
                        checked = bytearray()
                    yield _opened(archived, current, pending, keyring or Keyring())
                pending, current = bytearray(), next(ranges, None)
        if checked:
            yield checked
    if current is not None:
        raise _damaged(archived, current)


def _opened(archived: ArchivedFile, committed: dict[str, Any], stored: bytearray,
            keyring: Keyring) -> bytes:
    """The binlog bytes of an encrypted range (checked against its sha256 already)."""
    try:
        plain = opened(f"archived binlog {archived.file} (bytes {committed['start']}-"
                       f"{committed['end']})", bytes(stored), keyring)
    except CorruptStreamError:
        raise _damaged(archived, committed) from None
    if len(plain) != committed["end"] - committed["start"]:
        raise _damaged(archived, committed)
    return plain


def _damaged(archived: ArchivedFile, where: dict[str, Any]) -> BinlogArchiveError:
    return BinlogArchiveError(
        f"Archived binlog {archived.file} bytes {where['start']}-{where['end']} are missing or "
        "do not match their sha256: the archive was changed or damaged.",
        "Nothing from there on was applied; restore to an earlier time, or see drkit binlog "
        "status.")
