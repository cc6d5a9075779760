"""``drkit binlog stream`` and ``binlog status``: the source's binary log, archived in Azure.

One block blob per binlog file under ``binlog.prefix`` in the backup container, byte for byte
as the server has it (with ``encryption.recipients``, each block an age file of those bytes:
drkit.binlog.writer), grown by staging a block and committing the whole block list again: what
was read is durable in Azure at the latest ``binlog.flush_seconds`` after it was read. Beside
each file, ``<file>.json`` says what it holds: the committed size, first and last event time,
the server id, the last GTID, whether the file is complete (it ended with the server's rotate
event), the sha256 of every committed range, and the id of its last committed block (a
blob rewritten by anything else, even with the same bytes, is refused).

A run resumes from what the archive holds: the committed binlog size is where it reads from,
so nothing is archived twice or skipped (a range committed just before a kill, whose sidecar
was not yet written, is read back from the blob and recorded if its sha256 matches). A new
archive starts where the oldest point-in-time base needs it (or ``--from``, or the source's
current file), never at whatever old binlog the source happens to keep. One writer per
archive: a lease in Azure and conditional commits (drkit.binlog.writer) refuse a second
one, on any host. When the source no longer has
the binlog that comes next (purged before it was archived), the gap is recorded in
``gaps.json`` and reported by ``binlog status`` and doctor, never bridged.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from drkit.aws import metrics
from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import Catalog, load_manifest
from drkit.azure.lease import WriterLease
from drkit.binlog.protocol import BinlogReader, DumpOptions, Event, Heartbeat, binary_logs
from drkit.binlog.records import LEASE, Archive, ArchivedFile, file_order
from drkit.binlog.writer import BLOCK_LIMIT, FileWriter
from drkit.config import Settings
from drkit.console import Environment, log_event
from drkit.errors import BinlogArchiveError, DrkitError, ParameterError
from drkit.mysql.connection import Server, source_server
from drkit.ops.binlog_verify import pitr_bases, verify
from drkit.ops.lock import RunLock
from drkit.stream import encryption

__all__ = ["StatusRead", "status", "stream"]

# How binlog status reads the archive. "index": the index, the files it cannot vouch for
# (where the oldest base starts, the newest) and their blobs; the same few requests at 5
# files or 5,000. "listing": every file's record and blob size (one listing, growing with
# the archive), checked against the index; doctor's. "deep": every byte read again.
StatusRead = Literal["index", "listing", "deep"]



@dataclass
class StreamResult:
    files: list[str] = field(default_factory=list)
    events: int = 0
    bytes: int = 0
    gaps: list[dict[str, Any]] = field(default_factory=list)
    newest_event_at: str | None = None

    @property
    def summary(self) -> str:
        """One line for the log and the terminal."""
        if not self.files:
            return "no new events to archive"
        return f"archived {self.events} events ({self.bytes} bytes) of {', '.join(self.files)}"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {"ok": True, "files": data["files"], "events": self.events,
                "archived_bytes": self.bytes, "gaps": self.gaps,
                "newest_event_at": self.newest_event_at}


def stream(settings: Settings, env: Environment | None = None, once: bool = True,
           stop_after_seconds: float | None = None,
           start_from: str | None = None) -> StreamResult:
    """Archive the source's binary log from where the archive ends: to its current end and
    return (``once``), or on and on (until ``stop_after_seconds``, for tests and benches).
    One writer per archive: the local lock, then the archive's lease in Azure (another
    host's writer holds that one)."""
    state = settings.backup.state_dir.expanduser()
    if not settings.binlog.enabled:
        log_event("binlog.not_enabled", "binlog.enabled is false, yet the archive is being "
                  "written: restores and the failover use it, but doctor and the alarms do "
                  "not watch it; set binlog.enabled: true in the config", logging.WARNING)
    store = BackupStore.from_settings(settings, prefix=settings.binlog.prefix)
    with RunLock(state / "binlog-stream.lock", "binlog stream"), \
            WriterLease(store, store.prefix + LEASE, "binlog stream") as lease:
        return _Streamer(settings, Archive(store), lease).run(once, stop_after_seconds,
                                                             start_from)


class _Streamer:
    """One run of the archiver: the file being written, the files the archive knows, and
    what this run archived."""

    writer: FileWriter  # the file being written; the next one's after a rotate

    def __init__(self, settings: Settings, archive: Archive, lease: WriterLease) -> None:
        self.settings, self.archive, self.lease = settings, archive, lease
        # Each block encrypted to the recipients (refused here, before a write, if it
        # cannot be); the streamer never holds the identity.
        self.sealer = encryption.sealer(settings.encryption.recipients)
        self.result = StreamResult()
        self.known: dict[str, ArchivedFile] = {}  # file -> its record

    def run(self, once: bool, stop_after: float | None, start_from: str | None) -> StreamResult:
        """Read from where the archive ends (``start_from``: where a new one starts) to the
        source's current end (``once``) or on and on; what was read is flushed however the
        run ends."""
        server = source_server(self.settings)
        self.writer = FileWriter(self.archive, self._start(server, start_from), self.lease,
                                 self.sealer)
        archived = self.writer.archived  # reconciled with its blob: where reading starts
        self.known[archived.file] = archived
        self.archive.write_index(self.known.values(), writing=archived.file)
        binlog = self.settings.binlog
        # A beat before reading: --once archives it; a follower beats on while it runs.
        heartbeat = Heartbeat(server, binlog.heartbeat_seconds) if binlog.heartbeat else None
        if heartbeat and not once:
            heartbeat.start()
        reader = BinlogReader(server, archived.file, max(archived.size, 4), DumpOptions(
            binlog.replica_id, follow=not once,
            heartbeat_seconds=min(binlog.flush_seconds / 2, 15)))
        try:
            self._follow(reader, once, stop_after)
        except BaseException:
            with contextlib.suppress(Exception):  # what was read is kept if it can be
                self._note(self.writer.flush())
            raise
        else:
            self._note(self.writer.flush())  # a failure here is the run's
        finally:
            reader.close()
            if heartbeat:
                heartbeat.stop()
            _publish_lag(self.settings, self.result.newest_event_at)  # also when stopped
        result = self.result
        log_event("binlog.archived", result.summary[:1].upper() + result.summary[1:],
                  **result.as_dict())
        return result

    def _start(self, server: Server, start_from: str | None) -> ArchivedFile:
        """The file to read first, and where in it (the archive's records read)."""
        logs = [name for name, _ in binary_logs(server)]
        if not logs:
            raise BinlogArchiveError("The source has no binary logs (binary logging is off).",
                                     "Turn on binary logging (on RDS: automated backups on, "
                                     "binlog_format ROW).")
        self.known = {a.file: a for a in self.archive.files()}
        for archived in self.known.values():
            if not archived.partial:  # written before summaries were metadata: once, now
                self.archive.save(archived)
        return self._resume_point(logs, start_from)

    def _follow(self, reader: BinlogReader, once: bool, stop_after: float | None) -> None:
        """Archive what the reader gives: durable at the latest flush_seconds after it was
        read, memory bounded by a block; the lag published every minute while following."""
        clock = started = published = time.monotonic()
        for event in reader:  # None: a heartbeat, only time passed
            if event is not None:
                self._add(event)
            if time.monotonic() - clock >= self.settings.binlog.flush_seconds or \
                    self.writer.pending_bytes >= BLOCK_LIMIT:
                self._note(self.writer.flush())
                clock = time.monotonic()
                if not once and clock - published >= 60:
                    _publish_lag(self.settings, self.result.newest_event_at)
                    published = clock
            if stop_after is not None and time.monotonic() - started > stop_after:
                break

    def _add(self, event: Event) -> None:
        if event.file != self.writer.archived.file:
            # The source went on to its next file (after a rotate, a restart or a crash):
            # the one before is whole as archived.
            self._note(self.writer.flush(complete=True, next_file=event.file))
            self.writer = FileWriter(self.archive, self.known.get(event.file)
                                     or ArchivedFile(event.file), self.lease, self.sealer)
            self.known[event.file] = self.writer.archived
            self.archive.write_index(self.known.values(), writing=event.file)
        self.writer.add(event)
        self.result.events += 1

    def _note(self, written: int) -> None:
        result, archived = self.result, self.writer.archived
        result.bytes += written
        if written and archived.file not in result.files:
            result.files.append(archived.file)
        result.newest_event_at = archived.last_event_at or result.newest_event_at

    def _resume_point(self, logs: list[str], start_from: str | None) -> ArchivedFile:
        """Where to read from: the end of the newest archived file, or the next file (a new
        archive: where its oldest base needs it); a file the source no longer has is a gap,
        recorded here."""
        known = self.known
        if not known:
            return ArchivedFile(_first_file(self.settings, logs, start_from))
        if start_from is not None:
            raise ParameterError(
                f"--from starts a new archive, and this one holds {next(iter(known))} .. "
                f"{list(known)[-1]}; nothing was archived.",
                "Leave out --from: the run goes on where the archive ends.")
        newest = list(known.values())[-1]
        wanted = newest.next_file if newest.complete else newest.file
        if wanted in logs:
            return newest if wanted == newest.file else ArchivedFile(wanted)
        rest = f"the rest of {newest.file} and " if not newest.complete else ""
        gap = {"after_file": newest.file, "after_position": newest.size,
               "after_event_at": newest.last_event_at, "resumed_file": logs[0],
               "detected_at": datetime.now(UTC).isoformat(timespec="seconds"),
               "missing": f"{rest}every binlog before {logs[0]} (purged before it was "
                          "archived)"}
        self.archive.record_gap(gap)
        self.result.gaps.append(gap)
        log_event("binlog.gap", f"Binlog gap: {gap['missing']}; archiving resumes at "
                  f"{logs[0]}.", level=logging.ERROR, **gap)
        return ArchivedFile(logs[0])


def _publish_lag(settings: Settings, newest_event_at: str | None) -> None:
    """BinlogArchiveLagSeconds: how old the newest archived event is (with the heartbeat on,
    the archive's recovery point). Never fails the archiving: AWS may be the thing down."""
    if newest_event_at is None:
        return
    lag = (datetime.now(UTC) - datetime.fromisoformat(newest_event_at)).total_seconds()
    metrics.publish(settings, list(settings.source.databases),
                    {"BinlogArchiveLagSeconds": (max(0.0, lag), "Seconds")},
                    timeout=settings.secret_timeout_seconds)


def _first_file(settings: Settings, logs: list[str], start_from: str | None) -> str:
    """A new archive's first file: ``--from``, else the binlog of the oldest point-in-time
    base the catalog keeps, else the source's current file. Never what no base needs (a
    whole retained binlog can be many GB)."""
    if start_from is not None:
        if start_from not in logs:
            raise ParameterError(f"The source has no binlog {start_from} (it has {logs[0]} "
                                 f".. {logs[-1]}); nothing was archived.",
                                 "Name one of its binary logs (SHOW BINARY LOGS) with --from.")
        return start_from
    base = _oldest_base(settings)
    if base is None:
        log_event("binlog.start", f"A new archive starts at the source's current binlog "
                  f"{logs[-1]}: no backup in the catalog can start a point-in-time restore, so "
                  "no older binlog is needed (drkit binlog stream --from FILE starts earlier)",
                  file=logs[-1])
        return logs[-1]
    name, file = base
    if file in logs:
        log_event("binlog.start", f"A new archive starts at {file}, where the oldest "
                  f"point-in-time base {name} needs it", file=file, backup=name)
        return file
    start = logs[0] if file_order(file) < file_order(logs[0]) else logs[-1]
    log_event("binlog.start", f"The oldest point-in-time base {name} needs {file}, which the "
              f"source no longer has: a new archive starts at {start}; that base cannot "
              "start a point-in-time restore", logging.WARNING, file=start, backup=name)
    return start


def _oldest_base(settings: Settings) -> tuple[str, str] | None:
    """(backup, binlog file) of the oldest backup kept whose coordinates are exact."""
    store = BackupStore.from_settings(settings)
    for entry in Catalog(store).entries():
        if not entry.has_manifest:
            continue
        try:
            consistency = load_manifest(store, entry.name).consistency
        except DrkitError:
            continue  # a manifest drkit cannot read starts no restore
        if consistency.get("binlog_exact") and consistency.get("binlog_snapshot"):
            return entry.name, consistency["binlog_snapshot"]["file"]
    return None


def status(settings: Settings, read: StatusRead = "index") -> dict[str, Any]:
    """The archive as ``binlog status`` shows it: the newest archived event (the recovery
    point a point-in-time restore can reach now), its age, the files, gaps and size, how
    far the source is ahead when it answers, and the archive verified as ``read`` says."""
    archive = Archive(BackupStore.from_settings(settings, prefix=settings.binlog.prefix))
    bases = pitr_bases(settings)
    start = min((b.snapshot_file for b in bases), key=file_order, default=None)
    listing = archive.indexed([start] if start else []) if read == "index" \
        else archive.listed(against_index=True)
    verified = verify(settings, read == "deep", listing, bases)
    if not verified.ok and listing.read_from == "index":
        # The index may be what lacks a file (edited, an older writer's): a break is the
        # records' to say, as a restore reads them. Rare (one a later base supersedes does
        # not count), so the listing only then.
        listing = archive.listed(against_index=True)
        verified = verify(settings, False, listing, bases)
    gaps = archive.gaps()
    files, newest = listing.files, listing.newest_event_at
    for gap in gaps:
        gap["superseded_by"] = _base_after(settings, gap["detected_at"])
    report: dict[str, Any] = {
        "ok": all(gap["superseded_by"] for gap in gaps), "files": len(files),
        "archived_bytes": sum(f.size for f in files),
        "oldest_file": files[0].file if files else None,
        "newest_file": files[-1].file if files else None,
        "newest_event_at": newest,
        "lag_seconds": round((datetime.now(UTC) - datetime.fromisoformat(newest))
                             .total_seconds(), 1) if newest else None,
        "gaps": gaps, "source_ahead_bytes": None, "read_from": listing.read_from}
    report["verify"] = verified.as_dict()
    report["ok"] = report["ok"] and report["verify"]["ok"]
    with contextlib.suppress(DrkitError):  # the source may be the thing that is down
        file, size = binary_logs(source_server(settings))[-1]
        if files and file == files[-1].file:
            report["source_ahead_bytes"] = max(0, size - files[-1].size)
    return report


def _base_after(settings: Settings, moment: str) -> str | None:
    """The newest verified full backup taken after ``moment`` whose binlog coordinates are
    exact: a point-in-time restore can start there, so a gap before it no longer matters."""
    store = BackupStore.from_settings(settings)
    after = datetime.fromisoformat(moment)
    for entry in reversed(Catalog(store).entries()):
        if entry.taken_at < after:
            return None
        if entry.verified == "ok" and \
                load_manifest(store, entry.name).consistency.get("binlog_exact"):
            return entry.name
    return None
