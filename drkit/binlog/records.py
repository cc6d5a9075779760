"""The binlog archive's records: ``<file>.json`` beside each archived binlog file,
``gaps.json``, the index and prune's mark.

A record's summary (everything but its ranges' sha256s) is also the record blob's metadata,
written in the same request as its body: one listing with metadata reads every file's
summary, whatever the number of files (one GET per file took 5.6 s at 500 files). The
ranges, needed only to check a file's bytes, are read from the body of the files read.

Every record is written on a condition: new (``If-None-Match: *``) or exactly the version
this writer last saw (``If-Match``); a writer that finds otherwise has a rival and stops.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Literal

from drkit.azure.blobstore import BackupStore
from drkit.errors import BinlogArchiveError, LockHeldError
from drkit.failpoints import failpoint

SIDECAR = ".json"
GAPS = "gaps.json"
INDEX = "index.json"
PRUNED = "pruned.json"
LEASE = "writer.lock"  # the archive's lease blob: one writer per archive
NOT_RECORDS = (GAPS, INDEX, PRUNED)  # the archive's .json blobs that are no file's record
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
_SUMMARY_FIELDS = tuple(f.name for f in fields(ArchivedFile) if f.name in _KNOWN - {"ranges"})


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
    # "index": the summaries and sizes are the index's, but for the files whose records
    # and blobs were read: what a listing would find in between is not known.
    read_from: Literal["listing", "index"] = "listing"
    # A listing checked against the index (listed(against_index=True)): where they differ.
    index_problems: tuple[str, ...] = ()

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

    def listed(self, against_index: bool = False) -> ArchiveListing:
        """The archive as one listing saw it: every archived file's summary (records drkit
        wrote before summaries were metadata are read one by one) and every file's blob
        size. A command lists once and keeps it: status, verify and a restore read the
        same listing. ``against_index``: with where the index says otherwise (what binlog
        status would show that the archive does not hold)."""
        # The index first: a writer that moves on meanwhile makes it older than the listing
        # (a state the index's readers read on from), never newer.
        index, unreadable = None, False
        if against_index:
            try:
                index = self._index()
            except _UnreadableIndex:
                unreadable = True
        found, sizes = [], {}
        for blob in self.store.blobs(metadata=True):
            self.etags[blob.name] = blob.etag
            own = blob.name[len(self.store.prefix):]
            if own in NOT_RECORDS or own == LEASE:
                continue
            if not own.endswith(SIDECAR):
                sizes[own] = blob.size
                continue
            summary = blob.metadata.get(SUMMARY)
            found.append(self._parse(blob.name, summary, partial=True) if summary
                         else self._file(blob.name))
        listing = ArchiveListing(sorted(found, key=lambda f: file_order(f.file)), sizes)
        if unreadable:
            return replace(listing, index_problems=(UNREADABLE_INDEX,))
        if index is None:
            return listing
        problems = _disagreements(*index, listing.files, self.pruned_through())
        return replace(listing, index_problems=tuple(problems))

    def indexed(self, checking: Iterable[str] = ()) -> ArchiveListing:
        """The archive as its index has it, in a few requests whatever its size: the index,
        prune's mark, then the records of the files begun since the index was written
        (each complete record names the next). Those files, the files ``checking`` names
        and their blobs are read: their records and sizes are as they are now. The listing
        where the archive has no index (written before there was one) or one drkit cannot
        read."""
        try:
            found = self._index()
        except _UnreadableIndex:
            found = None  # the listing knows better (binlog verify and doctor name it)
        if found is None:
            return self.listed()
        checking = list(checking)
        entries, writing = found
        index = _after_mark(entries, self.pruned_through(
            [*checking, *([writing] if writing else [])]))
        files = {f.file: f for f in index}
        read = _read_on(_reading_from(index, writing), lambda name: self._read_into(name, files))
        newest = max(files, key=file_order, default=None)
        for name in {*checking, *([newest] if newest else [])} - read:
            self._read_into(name, files)
            read.add(name)
        sizes = {f.file: f.blob_size for f in files.values()}
        for name in read:
            size = self.store.size_if_present(self.store.prefix + name)
            if size is None:
                sizes.pop(name, None)
            else:
                sizes[name] = size
        return ArchiveListing(sorted(files.values(), key=lambda f: file_order(f.file)), sizes,
                              "index")

    def _index(self) -> tuple[list[ArchivedFile], str | None] | None:
        """The index's summaries and the file its writer was writing; None if there is no
        index. _UnreadableIndex: one that is not as drkit writes it."""
        found = self.store.read_if_present(self.store.prefix + INDEX)
        if found is None:
            return None
        try:
            index = json.loads(found[0])
            entries = [_from_record(entry, partial=True) for entry in index["files"]]
            writing = index.get("writing")
            if not isinstance(writing, str | None):
                raise TypeError("writing is no file name")
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            # RecursionError: JSON nested deeper than Python's parser goes ("[[[[...")
            raise _UnreadableIndex from None
        return entries, writing

    def _read_into(self, name: str, files: dict[str, ArchivedFile]) -> ArchivedFile | None:
        """``name``'s record as it is now, put in ``files`` (taken out if it has none)."""
        blob = self.store.prefix + name + SIDECAR
        found = self.store.read_if_present(blob)
        if found is None:
            files.pop(name, None)
            return None
        data, self.etags[blob] = found
        files[name] = self._parse(blob, data, partial=False)
        return files[name]

    def write_index(self, files: Iterable[ArchivedFile], writing: str) -> None:
        """The index of ``files`` (the writer's: every file recorded; not yet recorded, one
        is left out) less those prune's mark has taken, and the file ``writing`` now."""
        kept = _after_mark([f for f in sorted(files, key=lambda f: file_order(f.file))
                            if f.size or f.complete], self.pruned_through([writing]))
        failpoint("binlog.index")  # a kill here leaves the index behind the records
        name = self.store.prefix + INDEX
        body = json.dumps({"format": 1, "writing": writing,  # compact: a version per rewrite
                           "files": [_summary(f) for f in kept]}, separators=(",", ":")).encode()
        etag = self.store.write(name, body, replacing=self.etags.get(name))
        if etag is None:
            # Deleted, edited or an older one put back since: not a rival (a rival's records
            # stop this writer, on their condition), and readers read on from any index.
            # Replaced as it is now, rather than the archive left unwritten.
            found = self.store.read_if_present(name)
            etag = self.store.write(name, body, replacing=found[1] if found else None)
        if etag is None:
            raise lost_writer(f"{name} is written by another meanwhile")
        self.etags[name] = etag

    def pruned_through(self, keeping: Iterable[str] = ()) -> str | None:
        """The newest file prune has taken (or is taking) from the archive; None if none.
        prune takes only complete files before the oldest base's first, so a mark at or
        past one of ``keeping`` (that first file, the file being written) is none of
        prune's: None then too (binlog verify names the files it would hide)."""
        through = _through(self.store.read_if_present(self.store.prefix + PRUNED))
        if through is None or any(file_order(through) >= file_order(k) for k in keeping):
            return None
        return through

    def mark_pruned(self, through: str) -> None:
        """Before prune deletes the files up to ``through``: readers of the index pass them
        over from now on. A mark never moves back (two prunes: the further one stays)."""
        name = self.store.prefix + PRUNED
        while True:
            found = self.store.read_if_present(name)
            current = _through(found)
            if current is not None and file_order(current) >= file_order(through):
                return
            if self.store.write(name, json.dumps({"through": through}).encode(),
                                replacing=found[1] if found else None) is not None:
                return  # else another prune wrote meanwhile: read its mark again

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
            return _from_record(json.loads(text), partial)
        except (ValueError, TypeError, AttributeError, RecursionError):
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
        try:
            gaps = json.loads(data)
        except (ValueError, RecursionError):
            gaps = None
        if not isinstance(gaps, list) or not all(isinstance(g, dict) for g in gaps):
            raise BinlogArchiveError(
                f"The archive's gap record {name} is not one drkit wrote (damaged or edited).",
                "Restore it from its earlier blob version: it says where the archive has "
                "holes, which no restore may cross.")
        return gaps

    def record_gap(self, gap: dict[str, Any]) -> None:
        self.put(self.store.prefix + GAPS, [*self.gaps(), gap])

    def save(self, archived: ArchivedFile) -> None:
        record = {k: v for k, v in asdict(archived).items() if k in _KNOWN}
        self.put(self.store.prefix + archived.file + SIDECAR, record,
                 {SUMMARY: json.dumps(_summary(archived), separators=(",", ":"),
                                      ensure_ascii=True)})

    def put(self, name: str, value: Any, metadata: dict[str, str] | None = None) -> None:
        """Write ``name`` if it is as this writer last saw it (absent if never seen)."""
        etag = self.store.write(name, json.dumps(value, indent=1).encode(),
                                replacing=self.etags.get(name), metadata=metadata)
        if etag is None:
            raise lost_writer(f"{name} is not as this writer left it")
        self.etags[name] = etag


# binlog status then lists the archive, until binlog stream writes the index again.
UNREADABLE_INDEX = f"{INDEX} is not one drkit wrote (damaged or edited)"


class _UnreadableIndex(Exception):
    """The index is there, but not as drkit writes it (damaged, edited, another program's)."""


def _after_mark(files: Iterable[ArchivedFile], through: str | None) -> list[ArchivedFile]:
    """``files`` less those up to prune's mark ``through`` (gone or going)."""
    return [f for f in files if _kept(f.file, through)]


def _kept(name: str, through: str | None) -> bool:
    """Whether file ``name`` comes after prune's mark ``through`` (or there is none)."""
    return through is None or file_order(name) > file_order(through)


def _disagreements(index: list[ArchivedFile], writing: str | None,
                   records: list[ArchivedFile], through: str | None) -> Iterator[str]:
    """Where ``index`` (and the file it says is ``writing``) says other than the ``records``
    listed after it was read: a file it names that has no record, a complete file's entry
    not its record's summary, files its readers would not reach (neither in it nor named,
    file after file, by the records from ``writing`` on), files still held up to prune's
    mark ``through`` (which its readers pass over). Beyond that, files up to the mark may be
    gone: not compared."""
    listed = {f.file: f for f in _after_mark(records, through)}
    for entry in _after_mark(index, through):
        record = listed.get(entry.file)
        if record is None:
            yield f"the index names {entry.file}, which has no record"
        elif (entry.complete and _summary(entry) != _summary(record)) or \
                record.size < entry.size:
            yield f"the index's entry for {entry.file} is not what its record says"
    reached = _read_on(_reading_from(index, writing), listed.get) | {e.file for e in index}
    yield from (f"the index lacks {run}" for run in _runs(n for n in listed if n not in reached))
    # Held during a prune (it marks, then deletes); after it, only if it stopped midway or
    # the mark is none of prune's.
    if held := _runs(f.file for f in records if not _kept(f.file, through)):
        yield (f"prune's mark ({PRUNED}) names {through}, yet the archive still holds "
               f"{', '.join(held)} up to it: binlog status may pass over them; unless "
               f"a drkit prune is running, delete {PRUNED}")


def _reading_from(index: list[ArchivedFile], writing: str | None) -> str | None:
    """The file the index's readers read on from: the one its writer was writing."""
    return writing or (index[-1].file if index else None)


def _read_on(name: str | None, record_of: Callable[[str], ArchivedFile | None]) -> set[str]:
    """``name`` and each file after it that a complete record names (``record_of`` gives a
    file's record, or None): the files the index's readers read."""
    read: set[str] = set()
    while name is not None and name not in read:
        read.add(name)
        record = record_of(name)
        name = record.next_file if record is not None and record.complete else None
    return read


def _runs(names: Iterable[str]) -> list[str]:
    """Files in order, each run of consecutive ones as one: ``a .. c (3 files)``."""
    runs: list[list[str]] = []
    for name in sorted(names, key=file_order):
        stem, number = file_order(name)
        if runs and file_order(runs[-1][-1]) == (stem, number - 1):
            runs[-1].append(name)
        else:
            runs.append([name])
    return [run[0] if len(run) == 1 else f"{run[0]} .. {run[-1]} ({len(run)} files)"
            for run in runs]


def _through(found: tuple[bytes, str] | None) -> str | None:
    """The file a prune mark names; None if there is none, or none drkit can read (the index
    is then read as it is: what it names that is gone, binlog verify finds)."""
    try:
        through = json.loads(found[0])["through"] if found else None
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
    return through if isinstance(through, str) else None


# Each field's JSON types in a record, its summary and the index's entry: a value of another
# type (an edit, another program) makes the record or index one drkit did not write.
_TYPES: dict[str, tuple[type, ...]] = {
    "file": (str,), "size": (int,), "server_id": (int, type(None)),
    "first_event_at": (str, type(None)), "last_event_at": (str, type(None)),
    "last_gtid": (str, type(None)), "complete": (bool,), "next_file": (str, type(None)),
    "ranges": (list,), "stored_size": (int, type(None)), "recipients": (list,),
    "blocks": (int,), "last_block": (str, type(None))}


def _from_record(record: dict[str, Any], partial: bool) -> ArchivedFile:
    """The record (or summary) as drkit wrote it; TypeError or ValueError where it is not."""
    known = {k: v for k, v in record.items() if k in _KNOWN}
    wrong = [k for k, v in known.items() if not isinstance(v, _TYPES[k])
             or (isinstance(v, bool) and bool not in _TYPES[k])]
    if wrong:
        raise TypeError(f"{', '.join(wrong)} of another type")
    for moment in (known.get("first_event_at"), known.get("last_event_at")):
        if moment is not None:
            datetime.fromisoformat(moment)  # ValueError: no time
    return ArchivedFile(**known, partial=partial)


def _summary(archived: ArchivedFile) -> dict[str, Any]:
    """The record without its ranges (not copied, as asdict would, only to be dropped): the
    blob's metadata and the index's entry."""
    return {name: getattr(archived, name) for name in _SUMMARY_FIELDS}


def file_order(name: str) -> tuple[str, int]:
    """``binlog.000012`` sorts after ``binlog.000009``, and ``.1000000`` after ``.999999``."""
    stem, _, number = name.rpartition(".")
    return stem, int(number) if number.isdigit() else 0
