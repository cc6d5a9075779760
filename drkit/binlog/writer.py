"""The binlog archive's writer: appends what the source sends to one archived file's blob.

Each flush stages one block (ids of this run only) and commits the block list anew on the
condition that the blob is as this writer last left it: a rival writer's commit, or anyone
else's change, makes the next commit fail (412) and the writer stop instead of interleaving
its bytes with another's. The range a commit adds is that commit's metadata, so a range
whose record a kill kept from being written is recognised by its sha256 and recorded; bytes
nothing vouches for are never parsed into a record.

With ``encryption.recipients`` set, each block is an age file of its own, encrypted to them:
appending stays a block commit, the blob is a run of age files, and no byte of it is
readable binlog. The record keeps each range's binlog positions, its place in the blob, the
sha256 of its stored bytes and its recipients' fingerprints, and the commit's metadata its
events' times: the writer, which holds no identity, checks and reconciles by ciphertext.
"""

from __future__ import annotations

import hashlib
import json
import struct
import uuid
from datetime import UTC, datetime
from typing import Any

from drkit.azure.blocks import GrowingBlob, StaleBlockList, block_id
from drkit.azure.lease import WriterLease
from drkit.binlog.protocol import MAGIC, Event
from drkit.binlog.records import SIDECAR, Archive, ArchivedFile, lost_writer, stored_span
from drkit.errors import BinlogArchiveError
from drkit.interrupts import deferred_signals
from drkit.stream.encryption import Sealer

BLOCK_LIMIT = 4 * 1024 * 1024  # at 20 MB/s of binlog: five blocks a second, RSS well under 100 MiB


class FileWriter:
    """Appends events to one file's blob: a block per flush, the block list recommitted on
    the condition that the blob is as this writer last left it (new: that it is absent)."""

    def __init__(self, archive: Archive, archived: ArchivedFile,
                 lease: WriterLease | None = None, sealer: Sealer | None = None) -> None:
        self.archive = archive
        self.archived = archive.full(archived)
        self.lease = lease
        self.sealer = sealer  # each block encrypted to the recipients; None: stored as read
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
            stored = self.sealer.seal(data) if self.sealer else data
            committed, summary = self._range(data, stored), _events_summary(events)
            self._commit(stored, committed, summary)
            _record_range(archived, committed, summary)
            archived.blocks += 1
            archived.last_block = self.ids[-1]
        archived.complete = archived.complete or complete
        archived.next_file = next_file or archived.next_file
        if data or complete:
            self.archive.save(archived)
        return len(data)

    def _range(self, data: bytes, stored: bytes) -> dict[str, Any]:
        """The range ``data`` adds, stored as ``stored`` (the same bytes, or their age file)."""
        archived = self.archived
        committed: dict[str, Any] = {"start": archived.size, "end": archived.size + len(data),
                                     "sha256": hashlib.sha256(stored).hexdigest()}
        if self.sealer or archived.stored_size is not None:  # the blob is no longer the binlog
            committed["stored_start"] = archived.blob_size
            committed["stored_end"] = archived.blob_size + len(stored)
        if self.sealer:
            committed["to"] = self.sealer.fingerprints
        return committed

    def _commit(self, stored: bytes, committed: dict[str, Any],
                summary: dict[str, Any] | None) -> None:
        """Stage ``stored`` as a block and commit it after those committed, if the blob is
        still as this writer left it; the range and its events' summary are the commit's
        metadata (Azure writes both at once), so a range whose record a kill kept from being
        written is known."""
        if self.lease is not None:
            self.lease.confirm()  # a broken or taken lease: stop before writing
        new = block_id(self.run, len(self.ids))
        try:
            etag = self.blob.append(new, stored, after=self.ids, etag=self.etag, metadata={
                **{f"range_{key}": ",".join(value) if key == "to" else str(value)
                   for key, value in committed.items()},
                "range_events": json.dumps(summary, separators=(",", ":"))})
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
    if committed < archived.blob_size or committed != state.size or (
            committed == archived.blob_size and archived.last_block is not None
            and (not blocks or blocks[-1][0] != archived.last_block)):
        # Sizes alone do not tell: a rewrite in blocks (upload_blob above 64 MiB) has a
        # block list as long as the record's, of ids that are not drkit's.
        raise _rewritten(archived, blob.name)
    if committed > archived.blob_size:
        found = _committed_range(state.metadata, blob.read_from(archived.blob_size, state.etag),
                                 archived)
        if found is None:
            raise BinlogArchiveError(
                f"The archived {archived.file} holds {committed - archived.blob_size} bytes "
                f"after the {archived.blob_size} its record vouches for, and no sha256 of "
                "drkit's vouches for them (written by another writer?); nothing was recorded "
                "from them.", f"Move {blob.name} and its {SIDECAR} record aside, then run "
                "drkit binlog stream again: it archives the file anew if the source still "
                "has it.")
        _record_range(archived, *found)
        archived.blocks = len(blocks)
        archived.last_block = blocks[-1][0]
        archive.save(archived)
    return [block for block, _ in blocks], state.etag


def _committed_range(meta: dict[str, str], data: bytes, archived: ArchivedFile,
                     ) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
    """The range the last commit carried and its events' summary, if its metadata vouches
    for ``data`` (the blob's bytes after those ``archived`` records) and it continues the
    record; None otherwise. A plain range committed by a drkit before the summary was
    metadata: its events' headers are read."""
    if meta.get("range_sha256") != hashlib.sha256(data).hexdigest():
        return None
    try:
        committed: dict[str, Any] = {"start": int(meta["range_start"]),
                                     "end": int(meta["range_end"]), "sha256": meta["range_sha256"]}
        if "range_stored_start" in meta:
            committed["stored_start"] = int(meta["range_stored_start"])
            committed["stored_end"] = int(meta["range_stored_end"])
        if "range_to" in meta:
            committed["to"] = meta["range_to"].split(",")
        # null: no events (a new file's magic alone)
        summary = json.loads(meta["range_events"]) if "range_events" in meta else None
    except (KeyError, ValueError):
        return None
    stored_start = archived.blob_size
    if committed["start"] != archived.size or \
            stored_span(committed) != (stored_start, stored_start + len(data)):
        return None
    if "range_events" in meta:
        return committed, summary
    headers = _headers(data)  # a drkit before the summary was metadata: plain bytes
    if "to" in committed or headers is None:
        return None
    return committed, _summary(headers)


def _events_summary(events: list[Event]) -> dict[str, Any] | None:
    """The times, server and last GTID of a block's events (None: no events)."""
    if not events:
        return None
    return {"first": _time(events[0].timestamp), "last": _time(events[-1].timestamp),
            "server_id": events[-1].server_id,
            "gtid": next((e.gtid for e in reversed(events) if e.gtid), None)}


def _summary(headers: list[tuple[int, int]]) -> dict[str, Any] | None:
    if not headers:
        return None
    return {"first": _time(headers[0][0]), "last": _time(headers[-1][0]),
            "server_id": headers[-1][1], "gtid": None}


def _record_range(archived: ArchivedFile, committed: dict[str, Any],
                  summary: dict[str, Any] | None) -> None:
    """``committed`` added to the record, with its events' times, server and last GTID."""
    archived.ranges.append(committed)
    archived.size = committed["end"]
    if "stored_end" in committed:
        archived.stored_size = committed["stored_end"]
    if "to" in committed and committed["to"] not in archived.recipients:
        archived.recipients.append(committed["to"])
    if summary is None:
        return
    archived.first_event_at = archived.first_event_at or summary["first"]
    archived.last_event_at = summary["last"]
    archived.server_id = summary["server_id"]
    archived.last_gtid = summary["gtid"] or archived.last_gtid


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
