"""The binlog archive's records: ``<file>.json`` beside each archived binlog file, and
``gaps.json``.

A record's summary (everything but its ranges' sha256s) is also the record blob's metadata,
written in the same request as its body: one listing with metadata reads every file's
summary, whatever the number of files (one GET per file took 5.6 s at 500 files). The
ranges, needed only to check a file's bytes, are read from the body of the files read.

Every record is written on a condition: new (``If-None-Match: *``) or exactly the version
this writer last saw (``If-Match``); a writer that finds otherwise has a rival and stops.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from drkit.azure.blobstore import BackupStore
from drkit.errors import BinlogArchiveError, LockHeldError

SIDECAR = ".json"
GAPS = "gaps.json"
LEASE = "writer.lock"  # the archive's lease blob: one writer per archive
SUMMARY = "drkit_record"  # metadata key: the record without its ranges, as JSON


@dataclass
class ArchivedFile:
    """What ``<file>.json`` records of one archived binlog file."""

    file: str
    size: int = 0  # committed bytes, magic included: where the next read starts
    server_id: int | None = None
    first_event_at: str | None = None
    last_event_at: str | None = None
    last_gtid: str | None = None
    complete: bool = False  # ended with the server's rotate event
    next_file: str | None = None
    # Each committed range: start, end (binlog positions) and the sha256 of its bytes as
    # stored; an encrypted range (its own age file) also its place in the blob
    # (stored_start, stored_end) and the fingerprints of its recipients (to).
    ranges: list[dict[str, Any]] = field(default_factory=list)
    # The blob's committed bytes: more than size once a range is encrypted; None in records
    # of plain archives, whose blob is the binlog as it is.
    stored_size: int | None = None
    # Each set of recipients (their fingerprints) a range of this file was encrypted to,
    # in the order first used: in the summary, so doctor reads it from one listing.
    recipients: list[list[str]] = field(default_factory=list)
    blocks: int = 0
    # The id of the last block drkit committed: a rewrite in blocks of the same bytes (sizes
    # adding up to ``size``) has ids of its own. Not the ETag: metadata changes that.
    last_block: str | None = None
    partial: bool = field(default=False, repr=False, compare=False)  # from a listing: no ranges

    @property
    def blob_size(self) -> int:
        """The blob's bytes that the committed ranges take."""
        return self.size if self.stored_size is None else self.stored_size


_KNOWN = {f.name for f in fields(ArchivedFile)} - {"partial"}


def stored_span(committed: dict[str, Any]) -> tuple[int, int]:
    """Where a committed range's bytes are in the blob (a plain range: its binlog positions)."""
    return committed.get("stored_start", committed["start"]), \
        committed.get("stored_end", committed["end"])


def lost_writer(what: str) -> LockHeldError:
    """The one sentence a writer that lost its archive to another says before it stops."""
    return LockHeldError(
        f"Another writer changed the binlog archive ({what}); this writer stopped before "
        "writing again, so nothing of it was overwritten.",
        "Run one drkit binlog stream per archive (binlog.prefix); drkit binlog status "
        "shows what the archive holds.")


@dataclass(frozen=True)
class ArchiveListing:
    """The archive as one listing saw it (:meth:`Archive.listed`)."""

    files: list[ArchivedFile]  # every archived file's summary, in the files' order
    sizes: dict[str, int]  # each archived file's blob size, by file (its record may be gone)

    @property
    def newest_event_at(self) -> str | None:
        return max((f.last_event_at for f in self.files if f.last_event_at), default=None)


class Archive:
    """The archive in the store: its files' records and its gaps."""

    def __init__(self, store: BackupStore) -> None:
        self.store = store
        self.etags: dict[str, str | None] = {}  # blob name -> the ETag this process last saw

    def files(self) -> list[ArchivedFile]:
        """Every archived file's summary, from one listing."""
        return self.listed().files

    def listed(self) -> ArchiveListing:
        """The archive as one listing saw it: every archived file's summary (records drkit
        wrote before summaries were metadata are read one by one) and every file's blob
        size. A command lists once and keeps it: status, verify and a restore read the
        same listing."""
        found, sizes = [], {}
        for blob in self.store.blobs(metadata=True):
            self.etags[blob.name] = blob.etag
            if not blob.name.endswith((SIDECAR, GAPS, LEASE)):
                sizes[blob.name[len(self.store.prefix):]] = blob.size
            if not blob.name.endswith(SIDECAR) or blob.name.endswith(GAPS):
                continue
            summary = blob.metadata.get(SUMMARY)
            found.append(self._parse(blob.name, summary, partial=True) if summary
                         else self._file(blob.name))
        return ArchiveListing(sorted(found, key=lambda f: file_order(f.file)), sizes)

    def full(self, archived: ArchivedFile) -> ArchivedFile:
        """``archived`` with its ranges (read if it came from the listing)."""
        if not archived.partial:
            return archived
        return self._file(self.store.prefix + archived.file + SIDECAR)

    def _file(self, name: str) -> ArchivedFile:
        data, self.etags[name] = self.store.read_with_etag(name)
        return self._parse(name, data, partial=False)

    @staticmethod
    def _parse(name: str, text: str | bytes, partial: bool) -> ArchivedFile:
        try:
            record = json.loads(text)
            return ArchivedFile(**{k: v for k, v in record.items() if k in _KNOWN},
                                partial=partial)
        except (ValueError, TypeError, AttributeError):
            raise BinlogArchiveError(
                f"The archive's record {name} is not one drkit wrote (damaged or edited).",
                "Restore it from its earlier blob version, or move the file and its record "
                "aside and run drkit binlog stream again.") from None

    def gaps(self) -> list[dict[str, Any]]:
        name = self.store.prefix + GAPS
        found = self.store.read_if_present(name)
        if found is None:
            self.etags[name] = None
            return []
        data, self.etags[name] = found
        return json.loads(data)

    def record_gap(self, gap: dict[str, Any]) -> None:
        self.put(self.store.prefix + GAPS, [*self.gaps(), gap])

    def save(self, archived: ArchivedFile) -> None:
        record = {k: v for k, v in asdict(archived).items() if k in _KNOWN}
        summary = {k: v for k, v in record.items() if k != "ranges"}
        self.put(self.store.prefix + archived.file + SIDECAR, record,
                 {SUMMARY: json.dumps(summary, separators=(",", ":"), ensure_ascii=True)})

    def put(self, name: str, value: Any, metadata: dict[str, str] | None = None) -> None:
        """Write ``name`` if it is as this writer last saw it (absent if never seen)."""
        etag = self.store.write(name, json.dumps(value, indent=1).encode(),
                                replacing=self.etags.get(name), metadata=metadata)
        if etag is None:
            raise lost_writer(f"{name} is not as this writer left it")
        self.etags[name] = etag


def file_order(name: str) -> tuple[str, int]:
    """``binlog.000012`` sorts after ``binlog.000009``, and ``.1000000`` after ``.999999``."""
    stem, _, number = name.rpartition(".")
    return stem, int(number) if number.isdigit() else 0
