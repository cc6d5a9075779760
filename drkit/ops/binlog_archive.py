"""``drkit binlog stream`` and ``binlog status``: the source's binary log, archived in Azure.

One block blob per binlog file under ``binlog.prefix`` in the backup container, byte for byte
as the server has it, grown by staging a block and committing the whole block list again: what
was read is durable in Azure at the latest ``binlog.flush_seconds`` after it was read. Beside
each file, ``<file>.json`` says what it holds: the committed size, first and last event time,
the server id, the last GTID, whether the file is complete (it ended with the server's rotate
event), and the sha256 of every committed range.

A run resumes from what the archive holds: the blob's committed size is where it reads from,
so nothing is archived twice or skipped (a range committed just before a kill, whose sidecar
was not yet written, is read back from the blob and recorded). When the source no longer has
the binlog that comes next (purged before it was archived), the gap is recorded in
``gaps.json`` and reported by ``binlog status`` and doctor, never bridged.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import struct
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

from drkit.aws import metrics
from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import Catalog, load_manifest
from drkit.config import Settings
from drkit.console import Environment, log_event
from drkit.errors import BinlogArchiveError, DrkitError
from drkit.interrupts import deferred_signals
from drkit.mysql.binlog import MAGIC, BinlogReader, Event, Heartbeat, binary_logs
from drkit.mysql.connection import source_server
from drkit.ops.lock import RunLock

SIDECAR = ".json"
BLOCK_LIMIT = 4 * 1024 * 1024  # at 20 MB/s of binlog: five blocks a second, RSS well under 100 MiB
GAPS = "gaps.json"


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
    ranges: list[dict[str, Any]] = field(default_factory=list)  # start, end, sha256
    blocks: int = 0


@dataclass
class StreamResult:
    files: list[str] = field(default_factory=list)
    events: int = 0
    bytes: int = 0
    gaps: list[dict[str, Any]] = field(default_factory=list)
    newest_event_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {"ok": True, "files": data["files"], "events": self.events,
                "archived_bytes": self.bytes, "gaps": self.gaps,
                "newest_event_at": self.newest_event_at}


class Archive:
    """The archive in the store: its files' sidecars and its gaps."""

    def __init__(self, store: BackupStore) -> None:
        self.store = store

    def files(self) -> list[ArchivedFile]:
        try:
            names = [b.name for b in self.store.container.list_blobs(
                name_starts_with=self.store.prefix) if b.name.endswith(SIDECAR)
                and not b.name.endswith(GAPS)]
            return sorted((self._file(n) for n in names), key=lambda f: file_order(f.file))
        except AzureError as exc:
            raise self.store.error(exc) from None

    def _file(self, name: str) -> ArchivedFile:
        try:
            record = self._json(name)
            known = {f.name for f in fields(ArchivedFile)}
            return ArchivedFile(**{k: v for k, v in record.items() if k in known})
        except (ValueError, TypeError, AttributeError):
            raise BinlogArchiveError(
                f"The archive's record {name} is not one drkit wrote (damaged or edited).",
                "Restore it from its earlier blob version, or move the file and its record "
                "aside and run drkit binlog stream again.") from None

    def gaps(self) -> list[dict[str, Any]]:
        try:
            return self._json(self.store.prefix + GAPS)
        except ResourceNotFoundError:
            return []
        except AzureError as exc:
            raise self.store.error(exc) from None

    def record_gap(self, gap: dict[str, Any]) -> None:
        self._put(self.store.prefix + GAPS, [*self.gaps(), gap])

    def save(self, archived: ArchivedFile) -> None:
        self._put(self.store.prefix + archived.file + SIDECAR, asdict(archived))

    def _json(self, name: str) -> Any:
        return json.loads(self.store.container.download_blob(name).readall())

    def _put(self, name: str, value: Any) -> None:
        try:
            self.store.container.upload_blob(name, json.dumps(value, indent=1).encode(),
                                             overwrite=True)
        except AzureError as exc:
            raise self.store.error(exc) from None


class _FileWriter:
    """Appends events to one file's blob: a block per flush, the block list recommitted."""

    def __init__(self, archive: Archive, archived: ArchivedFile) -> None:
        self.archive = archive
        self.archived = archived
        self.blob = archive.store.container.get_blob_client(archive.store.prefix + archived.file)
        # What the next block holds: the events as read (joined once, when it is staged).
        self.pending_events: list[Event] = []
        self.pending_bytes = len(MAGIC) if archived.size == 0 else 0

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
            ids = [_block_id(i) for i in range(archived.blocks)]
            try:
                self.blob.stage_block(_block_id(archived.blocks), data, length=len(data))
                self.blob.commit_block_list([*ids, _block_id(archived.blocks)])
            except HttpResponseError as exc:
                if exc.error_code != "InvalidBlockList":
                    raise self.archive.store.error(exc) from None
                raise BinlogArchiveError(
                    f"The archived {archived.file} was rewritten by something other than drkit "
                    "(its blocks are gone); nothing more was archived into it.",
                    f"Move {self.blob.blob_name} and its {SIDECAR} record aside, then run "
                    "drkit binlog stream again: it archives the file anew if the source "
                    "still has it.") from None
            except AzureError as exc:
                raise self.archive.store.error(exc) from None
            archived.ranges.append({"start": archived.size, "end": archived.size + len(data),
                                    "sha256": hashlib.sha256(data).hexdigest()})
            archived.blocks += 1
            archived.size += len(data)
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


def stream(settings: Settings, env: Environment | None = None, once: bool = True,
           stop_after_seconds: float | None = None) -> StreamResult:
    """Archive the source's binary log from where the archive ends: to its current end and
    return (``once``), or on and on (until ``stop_after_seconds``, for tests and benches)."""
    state = settings.backup.state_dir.expanduser()
    if not settings.binlog.enabled:
        log_event("binlog.not_enabled", "binlog.enabled is false, yet the archive is being "
                  "written: restores and the failover use it, but doctor and the alarms do "
                  "not watch it; set binlog.enabled: true in the config", logging.WARNING)
    with RunLock(state / "binlog-stream.lock", "binlog stream"):
        return _stream(settings, once, stop_after_seconds)


def _stream(settings: Settings, once: bool, stop_after: float | None) -> StreamResult:
    server = source_server(settings)
    archive = Archive(BackupStore.from_settings(settings, prefix=settings.binlog.prefix))
    result = StreamResult()
    logs = [name for name, _ in binary_logs(server)]
    if not logs:
        raise BinlogArchiveError("The source has no binary logs (binary logging is off).",
                             "Turn on binary logging (on RDS: automated backups on, "
                             "binlog_format ROW).")
    known = {a.file: a for a in archive.files()}
    archived = _resume_point(archive, known, logs, result)
    writer = _FileWriter(archive, archived)
    # A beat before reading: --once archives it; a follower beats on while it runs.
    heartbeat = Heartbeat(server, settings.binlog.heartbeat_seconds) \
        if settings.binlog.heartbeat else None
    if heartbeat and not once:
        heartbeat.start()
    reader = BinlogReader(server, settings.binlog.replica_id, archived.file,
                          max(archived.size, 4), follow=not once,
                          heartbeat_seconds=min(settings.binlog.flush_seconds / 2, 15))
    clock = started = published = time.monotonic()
    try:
        for event in reader:  # None: a heartbeat, only time passed
            if event is not None:
                if event.file != writer.archived.file:
                    # The source went on to its next file (after a rotate, a restart or a
                    # crash): the one before is whole as archived.
                    _note(result, writer.archived,
                          writer.flush(complete=True, next_file=event.file))
                    writer = _FileWriter(archive,
                                         known.get(event.file) or ArchivedFile(event.file))
                    known[event.file] = writer.archived
                writer.add(event)
                result.events += 1
            # Durable at the latest flush_seconds after reading; memory bounded by a block.
            if time.monotonic() - clock >= settings.binlog.flush_seconds or \
                    writer.pending_bytes >= BLOCK_LIMIT:
                _note(result, writer.archived, writer.flush())
                clock = time.monotonic()
                if not once and clock - published >= 60:
                    _publish_lag(settings, result.newest_event_at)
                    published = clock
            if stop_after is not None and time.monotonic() - started > stop_after:
                break
    except BaseException:
        with contextlib.suppress(Exception):  # what was read is kept if it can be
            _note(result, writer.archived, writer.flush())
        raise
    else:
        _note(result, writer.archived, writer.flush())  # a failure here is the run's
    finally:
        reader.close()
        if heartbeat:
            heartbeat.stop()
        _publish_lag(settings, result.newest_event_at)  # also when stopped by a signal
    log_event("binlog.archived", f"Archived {result.events} events ({result.bytes} bytes) "
              f"of {', '.join(result.files) or 'no new events'}", **result.as_dict())
    return result


def _publish_lag(settings: Settings, newest_event_at: str | None) -> None:
    """BinlogArchiveLagSeconds: how old the newest archived event is (with the heartbeat on,
    the archive's recovery point). Never fails the archiving: AWS may be the thing down."""
    if newest_event_at is None:
        return
    lag = (datetime.now(UTC) - datetime.fromisoformat(newest_event_at)).total_seconds()
    metrics.publish(settings, list(settings.source.databases),
                    {"BinlogArchiveLagSeconds": (max(0.0, lag), "Seconds")},
                    timeout=settings.secret_timeout_seconds)


def _resume_point(archive: Archive, known: dict[str, ArchivedFile], logs: list[str],
                  result: StreamResult) -> ArchivedFile:
    """Where to read from: the end of the newest archived file (reconciled with its blob),
    or the next file; a file the source no longer has is a gap, recorded here."""
    if not known:
        return ArchivedFile(logs[0])  # a new archive starts at the oldest binlog there is
    newest = _reconcile(archive, list(known.values())[-1])
    wanted = newest.next_file if newest.complete else newest.file
    if wanted in logs:
        return newest if wanted == newest.file else ArchivedFile(wanted)
    gap = {"after_file": newest.file, "after_position": newest.size,
           "after_event_at": newest.last_event_at, "resumed_file": logs[0],
           "detected_at": datetime.now(UTC).isoformat(timespec="seconds"),
           "missing": f"{'the rest of ' + newest.file + ' and ' if not newest.complete else ''}"
                      f"every binlog before {logs[0]} (purged before it was archived)"}
    archive.record_gap(gap)
    result.gaps.append(gap)
    log_event("binlog.gap", f"Binlog gap: {gap['missing']}; archiving resumes at {logs[0]}.",
              level=logging.ERROR, **gap)
    return ArchivedFile(logs[0])


def _reconcile(archive: Archive, archived: ArchivedFile) -> ArchivedFile:
    """A block committed before its sidecar was written (a kill between the two): record it
    from the blob itself, so the next read starts after it."""
    blob = archive.store.container.get_blob_client(archive.store.prefix + archived.file)
    try:
        blocks = blob.get_block_list("committed")[0]
    except ResourceNotFoundError:
        return archived
    except AzureError as exc:
        raise archive.store.error(exc) from None
    committed = sum(block.size for block in blocks)
    if committed > archived.size:
        data = blob.download_blob(offset=archived.size).readall()
        archived.ranges.append({"start": archived.size, "end": committed,
                                "sha256": hashlib.sha256(data).hexdigest()})
        archived.blocks, archived.size = len(blocks), committed
        for timestamp, server_id in _headers(data):
            archived.last_event_at = _time(timestamp)
            archived.server_id = server_id
        archive.save(archived)
    return archived


def _headers(data: bytes) -> list[tuple[int, int]]:
    """(timestamp, server id) of each whole event in ``data`` (which starts at an event)."""
    found, offset = [], 4 if data.startswith(MAGIC) else 0
    while offset + 19 <= len(data):
        timestamp, _, server_id, size = struct.unpack("<IBII", data[offset:offset + 13])
        found.append((timestamp, server_id))
        offset += max(size, 19)
    return found


def _note(result: StreamResult, archived: ArchivedFile, written: int) -> None:
    result.bytes += written
    if written and archived.file not in result.files:
        result.files.append(archived.file)
    result.newest_event_at = archived.last_event_at or result.newest_event_at


def file_order(name: str) -> tuple[str, int]:
    """``binlog.000012`` sorts after ``binlog.000009``, and ``.1000000`` after ``.999999``."""
    stem, _, number = name.rpartition(".")
    return stem, int(number) if number.isdigit() else 0


def _block_id(index: int) -> str:
    return base64.b64encode(f"binlog-{index:010d}".encode()).decode()


def _time(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def status(settings: Settings, deep: bool = False) -> dict[str, Any]:
    """The archive as ``binlog status`` shows it: the newest archived event (the recovery
    point a point-in-time restore can reach now), its age, the files, gaps and size, and how
    far the source is ahead when it answers."""
    archive = Archive(BackupStore.from_settings(settings, prefix=settings.binlog.prefix))
    files, gaps = archive.files(), archive.gaps()
    for gap in gaps:
        gap["superseded_by"] = _base_after(settings, gap["detected_at"])
    newest = max((f.last_event_at for f in files if f.last_event_at), default=None)
    report: dict[str, Any] = {
        "ok": all(gap["superseded_by"] for gap in gaps), "files": len(files),
        "archived_bytes": sum(f.size for f in files),
        "oldest_file": files[0].file if files else None,
        "newest_file": files[-1].file if files else None,
        "newest_event_at": newest,
        "lag_seconds": round((datetime.now(UTC) - datetime.fromisoformat(newest))
                             .total_seconds(), 1) if newest else None,
        "gaps": gaps, "source_ahead_bytes": None}
    from drkit.ops.binlog_verify import verify  # the records and blobs, whole or not

    report["verify"] = verify(settings, deep).as_dict()
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
