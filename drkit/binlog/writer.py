"""The binlog archive's writer: appends what the source sends to one archived file's blob.

Each flush stages one block (ids of this run only) and commits the block list anew on the
condition that the blob is as this writer last left it: a rival writer's commit, or anyone
else's change, makes the next commit fail (412) and the writer stop instead of interleaving
its bytes with another's. The range a commit adds is that commit's metadata, so a range
whose record a kill kept from being written is recognised by its sha256 and recorded; bytes
nothing vouches for are never parsed into a record.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from datetime import UTC, datetime

from drkit.azure.blocks import GrowingBlob, StaleBlockList, block_id
from drkit.azure.lease import WriterLease
from drkit.binlog.protocol import MAGIC, Event
from drkit.binlog.records import SIDECAR, Archive, ArchivedFile, lost_writer
from drkit.errors import BinlogArchiveError
from drkit.interrupts import deferred_signals

BLOCK_LIMIT = 4 * 1024 * 1024  # at 20 MB/s of binlog: five blocks a second, RSS well under 100 MiB


class FileWriter:
    """Appends events to one file's blob: a block per flush, the block list recommitted on
    the condition that the blob is as this writer last left it (new: that it is absent)."""

    def __init__(self, archive: Archive, archived: ArchivedFile,
                 lease: WriterLease | None = None) -> None:
        self.archive = archive
        self.archived = archive.full(archived)
        self.lease = lease
        self.blob = GrowingBlob(archive.store, archive.store.prefix + archived.file)
        # Block ids of this run: a rival's staged block of the same id is never committed.
        self.run = uuid.uuid4().hex[:6]
        self.ids, self.etag = _reconcile(archive, self.archived, self.blob)
        # What the next block holds: the events as read (joined once, when it is staged).
        self.pending_events: list[Event] = []
        self.pending_bytes = len(MAGIC) if self.archived.size == 0 else 0

    def add(self, event: Event) -> None:
        expected = self.archived.size + self.pending_bytes
        if event.position != expected:  # never a byte twice, never one skipped
            raise BinlogArchiveError(
                f"The source sent {event.file} from position {event.position} where the "
                f"archive holds {expected} bytes; nothing after {expected} was archived.",
                "Look at the source's binary logs (SHOW BINARY LOGS); if the file was "
                "rewritten, move the archive's copy aside and run again.")
        self.pending_events.append(event)
        self.pending_bytes += len(event.data)

    def flush(self, complete: bool = False, next_file: str | None = None) -> int:
        """Make what is pending durable; return the bytes committed. A signal waits until
        the block and its record are written, and what is pending is taken first: the same
        bytes are never committed twice, whatever interrupts (what a failure leaves out,
        the next run reads again from the blob's committed end)."""
        with deferred_signals("the archive's last block was committed"):
            return self._flush(complete, next_file)

    def _flush(self, complete: bool, next_file: str | None) -> int:
        archived, events = self.archived, self.pending_events
        data = b"".join([MAGIC] * (archived.size == 0 and self.pending_bytes > 0) +
                        [event.data for event in events])
        self.pending_events, self.pending_bytes = [], 0
        if data:
            self._commit(data)
            archived.ranges.append({"start": archived.size, "end": archived.size + len(data),
                                    "sha256": hashlib.sha256(data).hexdigest()})
            archived.blocks += 1
            archived.size += len(data)
            archived.last_block = self.ids[-1]
            for event in events:
                moment = _time(event.timestamp)
                archived.first_event_at = archived.first_event_at or moment
                archived.last_event_at = moment
                archived.server_id = event.server_id
                archived.last_gtid = event.gtid or archived.last_gtid
        archived.complete = archived.complete or complete
        archived.next_file = next_file or archived.next_file
        if data or complete:
            self.archive.save(archived)
        return len(data)

    def _commit(self, data: bytes) -> None:
        """Stage ``data`` as a block and commit it after those committed, if the blob is
        still as this writer left it; the range is the commit's metadata (Azure writes
        both at once), so a range whose record a kill kept from being written is known."""
        if self.lease is not None:
            self.lease.confirm()  # a broken or taken lease: stop before writing
        start, digest = self.archived.size, hashlib.sha256(data).hexdigest()
        new = block_id(self.run, len(self.ids))
        try:
            etag = self.blob.append(new, data, after=self.ids, etag=self.etag, metadata={
                "range_start": str(start), "range_end": str(start + len(data)),
                "range_sha256": digest})
        except StaleBlockList:
            raise _rewritten(self.archived, self.blob.name) from None
        self.etag = etag if etag is not None else self._ours_after_all(new)
        self.ids.append(new)

    def _ours_after_all(self, new: str) -> str:
        """A refused condition: the commit is ours if the SDK retried one whose answer was
        lost (the blob's blocks are ours and end with this one); otherwise another writer
        wrote."""
        state = self.blob.committed()
        if state is None or [block for block, _ in state.blocks] != [*self.ids, new]:
            raise lost_writer(f"{self.blob.name} is not as this writer left it")
        return state.etag


def _reconcile(archive: Archive, archived: ArchivedFile,
               blob: GrowingBlob) -> tuple[list[str], str | None]:
    """The blob's committed block ids and ETag, checked against its record. A block
    committed before its record was written (a kill between the two) is recorded from the
    blob, when its bytes match the range the commit carried; never anything parsed from
    bytes no sha256 vouches for."""
    state = blob.committed()
    if state is None:
        if archived.size:  # recorded, yet gone
            raise _rewritten(archived, blob.name)
        return [], None
    blocks = state.blocks
    committed = sum(size for _, size in blocks)
    if committed < archived.size or committed != state.size or (
            committed == archived.size and archived.last_block is not None
            and (not blocks or blocks[-1][0] != archived.last_block)):
        # Sizes alone do not tell: a rewrite in blocks (upload_blob above 64 MiB) has a
        # block list as long as the record's, of ids that are not drkit's.
        raise _rewritten(archived, blob.name)
    if committed > archived.size:
        meta = state.metadata
        data = blob.read_from(archived.size, state.etag)
        digest = hashlib.sha256(data).hexdigest()
        headers = _headers(data)
        if (meta.get("range_start"), meta.get("range_end"), meta.get("range_sha256")) != \
                (str(archived.size), str(committed), digest) or headers is None:
            raise BinlogArchiveError(
                f"The archived {archived.file} holds {committed - archived.size} bytes after "
                f"the {archived.size} its record vouches for, and no sha256 of drkit's "
                "vouches for them (written by another writer?); nothing was recorded from "
                "them.", f"Move {blob.name} and its {SIDECAR} record aside, then run "
                "drkit binlog stream again: it archives the file anew if the source still "
                "has it.")
        archived.ranges.append({"start": archived.size, "end": committed, "sha256": digest})
        archived.blocks, archived.size = len(blocks), committed
        archived.last_block = blocks[-1][0]
        for timestamp, server_id in headers:
            moment = _time(timestamp)
            archived.first_event_at = archived.first_event_at or moment
            archived.last_event_at, archived.server_id = moment, server_id
        archive.save(archived)
    return [block for block, _ in blocks], state.etag


def _rewritten(archived: ArchivedFile, name: str) -> BinlogArchiveError:
    return BinlogArchiveError(
        f"The archived {archived.file} was rewritten by something other than drkit "
        "(its blocks are not the ones its record counts); nothing more was archived into it.",
        f"Move {name} and its {SIDECAR} record aside, then run drkit binlog stream again: it "
        "archives the file anew if the source still has it.")


def _headers(data: bytes) -> list[tuple[int, int]] | None:
    """(timestamp, server id) of each event in ``data`` (which starts at an event); None
    unless the events end exactly where ``data`` does."""
    found, offset = [], 4 if data.startswith(MAGIC) else 0
    while offset + 19 <= len(data):
        timestamp, _, server_id, size = struct.unpack("<IBII", data[offset:offset + 13])
        if size < 19:
            return None
        found.append((timestamp, server_id))
        offset += size
    return found if offset == len(data) else None


def _time(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")
