"""``drkit binlog verify``: can the archive serve a point-in-time restore, and to which times.

Recorded gaps and the lag say nothing of a record deleted or a blob changed since it was
written; a restore would find out only after loading and proving its whole base. This
check walks the archive from the oldest point-in-time base's snapshot file to the newest
file and finds every **break**: a file missing (its record, its blob, or a number skipped),
a record that does not match its blob (size, ranges not covering 0..size), and in deep mode
a range whose bytes do not match their sha256 (read by the restore's own reader). Cheap mode
costs one listing and the records' GETs. Each break cuts off the times from the last event
before it to the finish of the next base after it (or every later time); a break with a
verified base after it no longer matters for what comes after that base. The result also
says, for each base, the times it can restore to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import NOT_FAILED, Catalog, load_manifest
from drkit.binlog.archived import archived_events  # the restore's reader, checks and all
from drkit.binlog.records import (
    SIDECAR,
    Archive,
    ArchivedFile,
    ArchiveListing,
    file_order,
    stored_span,
)
from drkit.config import Settings
from drkit.errors import BinlogArchiveError, BinlogGapError, DrkitError
from drkit.exitstatus import ExitStatus
from drkit.manifest import Manifest


@dataclass
class Base:
    name: str
    finished_at: str
    snapshot_file: str
    verified: bool


@dataclass
class Break:
    """Where the archive cannot be read on: ``file`` (through ``through``) and why."""

    file: str
    through: str
    kind: str  # "missing" (exit 49) or "damaged" (exit 48)
    problem: str  # a clause naming the file
    last_event_before: str | None  # the newest archived event before it
    cuts_from: str | None = None
    cuts_until: str | None = None  # None: every later time
    superseded_by: str | None = None

    @property
    def exit_code(self) -> int:
        return BinlogGapError.exit_code if self.kind == "missing" else \
            BinlogArchiveError.exit_code

    @property
    def sentence(self) -> str:
        until = f"until {self.cuts_until} (backup {self.superseded_by})" \
            if self.superseded_by else "on"
        return (f"{self.problem}; no point in time from {self.cuts_from or 'its base'} "
                f"{until} can be restored.")

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "through": self.through, "kind": self.kind,
                "detail": self.sentence, "cuts_from": self.cuts_from,
                "cuts_until": self.cuts_until, "superseded_by": self.superseded_by,
                "exit_code": self.exit_code}


@dataclass
class Verification:
    deep: bool
    files: int = 0
    checked_files: int = 0
    from_file: str | None = None
    newest_event_at: str | None = None
    bases: list[Base] = field(default_factory=list)
    breaks: list[Break] = field(default_factory=list)
    # Where the index (what binlog status reads) says other than the listing: no break,
    # restores read the records, but status may show what the archive does not hold.
    index_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(b.superseded_by for b in self.breaks)

    @property
    def exit_code(self) -> int:
        # The first break that still matters: the earliest cut is what a user meets first.
        return next((b.exit_code for b in self.breaks if not b.superseded_by), ExitStatus.OK)

    def windows(self) -> list[dict[str, Any]]:
        """Per base: from its finish to the last event before the next break, or the
        newest event; None when nothing after its finish can be reached."""
        found = []
        for base in self.bases:
            cut = next((b for b in self.breaks if file_order(b.through) >=
                        file_order(base.snapshot_file)), None)
            end = (cut.last_event_before if cut else self.newest_event_at)
            if end is not None and _moment(end) < _moment(base.finished_at):
                end = None
            found.append({"backup": base.name, "from": base.finished_at if end else None,
                          "until": end, "cut_by": cut.file if cut else None,
                          "verified": base.verified})
        return found

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "deep": self.deep, "exit_code": self.exit_code,
                "files": self.files, "checked_files": self.checked_files,
                "from_file": self.from_file, "newest_event_at": self.newest_event_at,
                "windows": self.windows(), "breaks": [b.as_dict() for b in self.breaks],
                "index_problems": self.index_problems}


def verify(settings: Settings, deep: bool = False, listing: ArchiveListing | None = None,
           bases: list[Base] | None = None) -> Verification:
    """The archive checked from the oldest base's snapshot file on (``deep``: every range
    read again and checked against its sha256), as ``listing`` saw it (the command's, if it
    read the archive already; else listed here), from ``bases`` (else the catalog's)."""
    archive = Archive(BackupStore.from_settings(settings, prefix=settings.binlog.prefix))
    listing = listing or archive.listed(against_index=True)
    records, sizes = {f.file: f for f in listing.files}, listing.sizes
    result = Verification(deep=deep, files=len({*records, *sizes}),  # a record may be gone
                          index_problems=list(listing.index_problems))
    result.newest_event_at = listing.newest_event_at
    result.bases = pitr_bases(settings) if bases is None else bases
    if not result.files or not result.bases:
        return result  # nothing to restore to: doctor says "empty" or "no base"
    result.from_file = min((b.snapshot_file for b in result.bases), key=file_order)
    walk(archive, records, sizes, archive.gaps(), result)
    settle(result)
    return result


def pitr_bases(settings: Settings) -> list[Base]:
    """Backups a point-in-time restore can start from (exact coordinates, not found bad),
    oldest first."""
    store = BackupStore.from_settings(settings)
    bases = []
    for entry in Catalog(store).entries():
        if entry.verified not in NOT_FAILED or not entry.has_manifest:
            continue
        manifest = load_manifest(store, entry.name)
        consistency = manifest.consistency
        if consistency.get("binlog_exact") and consistency.get("binlog_snapshot"):
            bases.append(Base(entry.name, _iso(manifest.finished_at),
                              consistency["binlog_snapshot"]["file"], entry.verified == "ok"))
    return sorted(bases, key=lambda b: b.finished_at)


def walk(archive: Archive, records: dict[str, ArchivedFile], sizes: dict[str, int],
         gaps: list[dict[str, Any]], result: Verification) -> None:
    """Every file from ``result.from_file`` to the newest, in order: the breaks found."""
    start = file_order(result.from_file or "")
    names = sorted((n for n in {*records, *sizes} if file_order(n) >= start), key=file_order)
    recorded = {g["after_file"]: g for g in gaps}
    expected, previous, last_event = result.from_file or "", None, None
    for name in names:
        gap = recorded.get(previous) if previous else None
        if name != expected or (gap and previous in records and
                                not records[previous].complete):
            missing = f"the rest of {previous}" if name == expected else \
                f"{expected}" + (f" .. {_step(name, -1)}" if _step(name, -1) != expected else "")
            why = f" ({gap['missing']})" if gap else ""
            result.breaks.append(Break(
                expected if name != expected else previous or name, _step(name, -1),
                "missing", f"The binlog archive lacks {missing}{why}: it goes on at {name}",
                last_event))
        record, size = records.get(name), sizes.get(name)
        problem = _mismatch(name, record, size, newest=name == names[-1])
        reached = None
        if problem is None and result.deep:
            problem, reached = _reread(archive, record)
        if problem:
            result.breaks.append(Break(name, name, problem[0], problem[1],
                                       reached or last_event))
        elif record and record.last_event_at:
            last_event = record.last_event_at
        result.checked_files += 1
        previous, expected = name, _step(name, 1)


def _mismatch(name: str, record: ArchivedFile | None, size: int | None,
              newest: bool) -> tuple[str, str] | None:
    """Why ``name``'s record and blob cannot be read as they are, or None."""
    if record is None:
        return "missing", f"Archived binlog {name} has no record ({name}{SIDECAR})"
    if size is None:
        return "missing", f"Archived binlog {name} has a record but no blob"
    # A block committed just before a kill, its record not yet written: only in the newest
    # file, which the streamer's next run records (binlog_archive._reconcile).
    if size < record.blob_size or (size > record.blob_size and not newest):
        return "damaged", (f"Archived binlog {name} is {size} bytes where its record says "
                           f"{record.blob_size}")
    if record.partial:  # from the listing: its ranges are read only by --deep
        return None
    end = stored_end = 0
    for piece in record.ranges:  # contiguous in the binlog and in the blob, each checksummed
        if piece.get("start") != end or stored_span(piece)[0] != stored_end or \
                not piece.get("sha256"):
            break
        end, stored_end = piece["end"], stored_span(piece)[1]
    if (end, stored_end) != (record.size, record.blob_size):
        return "damaged", (f"Archived binlog {name}'s record does not cover its bytes 0-"
                           f"{record.size} with checksummed ranges (from {end} on)")
    return None


def _reread(archive: Archive, record: ArchivedFile | None) -> tuple[tuple[str, str] | None,
                                                                     str | None]:
    """Deep mode: the file read as a restore reads it; the failure, and the newest event
    read before it."""
    newest = None
    try:
        for _, _, timestamp, _ in archived_events(archive, record):
            newest = timestamp or newest
    except BinlogArchiveError as error:
        return ("damaged", error.message.rstrip(".")), \
            (datetime.fromtimestamp(newest, UTC).isoformat() if newest else None)
    return None, None


def settle(result: Verification) -> None:
    """Each break's span: from the last event before it (or the base's finish) to the
    finish of the first verified base after it (superseding it), or every later time."""
    for found in result.breaks:
        after = next((b for b in result.bases if b.verified and
                      file_order(b.snapshot_file) > file_order(found.through)), None)
        affected = [b for b in result.bases
                    if file_order(b.snapshot_file) <= file_order(found.through)]
        found.cuts_from = found.last_event_before or (
            affected[0].finished_at if affected else None)
        if after:
            found.superseded_by, found.cuts_until = after.name, after.finished_at


def refuse_broken(settings: Settings, manifest: Manifest, moment: datetime,
                  listing: ArchiveListing | None = None) -> None:
    """Before a restore to ``moment`` from ``manifest`` loads anything: the cheap check of
    the archive (as ``listing`` saw it, if given) between its snapshot and ``moment``; a
    break there refuses the restore."""
    snapshot = file_order(manifest.consistency["binlog_snapshot"]["file"])
    for found in verify(settings, listing=listing).breaks:
        if file_order(found.through) >= snapshot and (
                found.last_event_before is None or _moment(found.last_event_before) < moment):
            error: type[DrkitError] = BinlogGapError if found.kind == "missing" \
                else BinlogArchiveError
            raise error(f"{found.problem}, between backup {manifest.name} and "
                        f"{moment:%Y-%m-%d %H:%M:%S} UTC; nothing was restored.",
                        "Restore to a time before it, or after a later full backup; drkit "
                        "binlog verify lists the times that can be restored.")


def _step(name: str, by: int) -> str:
    """The binlog file ``by`` after ``name`` (binlog.000009 -> binlog.000010)."""
    stem, _, number = name.rpartition(".")
    if not number.isdigit():
        return name
    return f"{stem}.{int(number) + by:0{len(number)}d}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
