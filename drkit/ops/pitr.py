"""``drkit restore --until TIME``: a full backup, then the archived binlog up to TIME.

The base is the newest verified full backup taken before TIME whose binlog coordinates are
exact (see :func:`drkit.mysql.dump.snapshot_coordinates`), with the archive gap-free from
there. It is restored and proven as any restore; then the archived events from its snapshot
position are applied, transaction by transaction, up to the last one that began at or
before TIME. Every archived range is checked against its sha256 as it is read. Row events
are applied as plain INSERT/UPDATE/DELETE (:mod:`drkit.binlog.rowevents` says why), DDL of
the restored databases as itself; what belongs to other databases is passed over.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import STALE, BackupEntry, Catalog, load_manifest, parse_time
from drkit.binlog.events import GTID_EVENTS, QUERY, TRANSACTION_PAYLOAD, XID
from drkit.binlog.protocol import MAGIC
from drkit.binlog.replay import RowApplier
from drkit.config import Settings
from drkit.console import Environment, Progress, log_event
from drkit.errors import (
    BackupNotFoundError,
    BinlogArchiveError,
    BinlogGapError,
    DrkitError,
    ParameterError,
    ProofFailedError,
    RestoreBlockedError,
)
from drkit.manifest import Manifest, binlog_coordinates
from drkit.mysql.connection import Server
from drkit.mysql.swap import drop_scratch
from drkit.ops.binlog_archive import Archive, ArchivedFile, file_order
from drkit.ops.binlog_verify import refuse_broken
from drkit.ops.restore import RestoreResult, restore_backup
from drkit.ops.verify import verify_backup
from drkit.stream.readahead import read_ahead
from drkit.units import duration, few


def restore_until(settings: Settings, until: str, env: Environment | None = None, *,
                  databases: list[str] | None = None,
                  **restore_options: Any) -> RestoreResult:
    """Restore ``databases`` (to be named when the backups hold several) as they stood at
    TIME (UTC, or ``latest``: the newest archived event): the newest base holding them,
    verified first if it never was, then the archived binlog."""
    moment, entry, manifest = resolve(settings, until, databases)
    databases = databases or manifest.databases
    database = ", ".join(databases)
    asked = restore_options.get("rename_to") or database  # the names the user knows
    store = BackupStore.from_settings(settings)
    archive = Archive(BackupStore.from_settings(settings, prefix=settings.binlog.prefix))
    # Before anything is loaded (verifying the base loads it): a gap, or a file missing or
    # not matching its record, between the base and TIME refuses the restore.
    _refuse_gaps(archive, manifest, moment)
    refuse_broken(settings, manifest, moment)
    if entry.verified != "ok":  # never restored from before it is known to be good
        log_event("restore.verify_base", f"Base {entry.name} of {database} is not verified "
                  f"({entry.verified or 'never'}): verifying it first", backup=entry.name)
        verify_backup(store, entry, env or Environment())
    files = archive.files()
    log_event("restore.until", f"Point in time {moment:%Y-%m-%d %H:%M:%S} UTC of {database}: "
              f"base {entry.name}, then the binlog from "
              f"{binlog_coordinates(manifest.consistency['binlog_snapshot'])}",
              databases=databases,
              backup=entry.name)

    def replay(server: Server, load_as: dict[str, str]) -> dict[str, Any]:
        try:
            replayed = apply_binlog(archive, files, manifest, server, load_as, moment, env)
            if replayed["skipped_rows"]:
                raise ProofFailedError(
                    f"{replayed['skipped_rows']} rows the binlog updates or deletes were not "
                    "on the target as on the source: the copy is not the source's state at "
                    "that time.", "Report it with the restore's log; restore to an earlier "
                    "time, or restore the full backup alone.")
            if settings.binlog.heartbeat:
                _check_heartbeat(replayed, moment, settings.binlog.beat_interval)
        except BaseException as error:
            # Loaded here (new, or empty before: the restore refuses anything else), and
            # now at no known point in time: never left to be taken for the state of TIME.
            drop_scratch(server, list(load_as.values()))
            if isinstance(error, DrkitError):
                error.message += f" The restored copy ({asked}) was dropped."
            raise
        return replayed

    return restore_backup(settings, entry.name, env, then=replay, databases=databases,
                          **restore_options)


def resolve(settings: Settings, until: str,
            databases: list[str] | None = None) -> tuple[datetime, BackupEntry, Manifest]:
    """TIME as a moment, and the base backup a restore of ``databases`` to it starts from.
    What the user gave is checked first (TIME, the databases), the archive after."""
    asked = None if until.strip().lower() == "latest" else _utc(until)
    store = BackupStore.from_settings(settings)
    entries = Catalog(store).entries()
    databases = base_databases(entries, databases)
    archive = Archive(BackupStore.from_settings(settings, prefix=settings.binlog.prefix))
    newest = max((f.last_event_at for f in archive.files() if f.last_event_at), default=None)
    if newest is None:
        raise BinlogArchiveError("The binlog archive is empty: there is no point in time to "
                                 "restore to beyond a full backup.",
                                 "Run drkit binlog stream (drkit schedule prints its unit).")
    moment = asked or datetime.fromisoformat(newest)
    if moment > datetime.fromisoformat(newest):
        raise BackupNotFoundError(f"{moment:%Y-%m-%d %H:%M:%S} UTC is after the newest "
                                  f"archived event ({newest}).",
                                  "Restore to it or earlier, or use --until latest.")
    return moment, *choose_base(store, moment, databases, entries)


def base_databases(entries: list[BackupEntry], databases: list[str] | None) -> list[str]:
    """The databases a point-in-time restore restores: those named, or the only one the
    backups hold; a choice between several is never made for the user."""
    held = sorted({db for entry in entries for db in entry.databases})
    if databases is None and len(held) > 1:
        raise RestoreBlockedError(
            f"The backups hold {len(held)} databases ({few(held)}); a point-in-time restore "
            "restores the one you name; nothing was restored.", "Name it with --database DB.")
    if databases is None and not held:
        raise BackupNotFoundError("There is no full backup to start a point-in-time restore "
                                  "from.", "Take one: drkit backup, then drkit verify.")
    if missing := [db for db in databases or () if db not in held]:
        raise BackupNotFoundError(f"No backup holds database {few(missing)} (they hold "
                                  f"{few(held)}); nothing was restored.",
                                  "Name a database that is backed up with --database.")
    return databases or held


def choose_base(store: BackupStore, moment: datetime, databases: list[str],
                entries: list[BackupEntry]) -> tuple[BackupEntry, Manifest]:
    """The newest backup holding ``databases`` taken before ``moment`` with exact
    coordinates, that verify has not found bad (one never verified is verified before it
    is restored). Another database's backup is never taken for them."""
    database = ", ".join(databases)
    for entry in reversed(entries):
        if entry.taken_at > moment or not set(databases) <= set(entry.databases) or \
                entry.verified not in _USABLE:
            continue
        manifest = load_manifest(store, entry.name)
        # Binlog times are whole seconds: every transaction before the snapshot began by
        # the backup's end, so in its second or earlier, which TIME includes.
        if manifest.consistency.get("binlog_exact") and \
                manifest.finished_at.replace(microsecond=0) <= moment:
            return entry, manifest
    bases = [e for e in entries if set(databases) <= set(e.databases)
             and e.verified in _USABLE]
    earliest = next((load_manifest(store, e.name) for e in bases if load_manifest(
        store, e.name).consistency.get("binlog_exact")), None)
    raise BackupNotFoundError(
        f"No full backup of {database} with exact binlog coordinates was finished before "
        f"{moment:%Y-%m-%d %H:%M:%S} UTC"
        + (f"; the earliest reachable time is {earliest.finished_at:%Y-%m-%d %H:%M:%S} UTC, "
           f"when {earliest.name} finished." if earliest else "."),
        "Pick a later time, or take and verify a full backup (drkit backup; drkit verify).")


# Verified good, never verified (verified before use), or changed since (verified again).
_USABLE = ("ok", None, STALE)


def _refuse_gaps(archive: Archive, manifest: Manifest, moment: datetime) -> None:
    start = manifest.consistency["binlog_snapshot"]["file"]
    for gap in archive.gaps():
        if file_order(gap["after_file"]) >= file_order(start) and (
                gap["after_event_at"] is None or
                datetime.fromisoformat(gap["after_event_at"]) < moment):
            raise BinlogGapError(
                f"The binlog archive has a gap after {gap['after_file']} ({gap['missing']}) "
                f"between backup {manifest.name} and {moment:%Y-%m-%d %H:%M:%S} UTC.",
                "Pick a time before the gap, or one after a full backup taken after it "
                "(drkit binlog status).")


def apply_binlog(archive: Archive, files: list[ArchivedFile], manifest: Manifest,
                 server: Server, load_as: dict[str, str], moment: datetime,
                 env: Environment | None = None) -> dict[str, Any]:
    snapshot = manifest.consistency["binlog_snapshot"]
    names = [f.file for f in files]
    if snapshot["file"] not in names:
        raise BinlogGapError(f"The binlog archive does not hold {snapshot['file']}, where "
                             f"backup {manifest.name} stands.", "See drkit binlog status.")
    files = files[names.index(snapshot["file"]):]
    with (env or Environment()).progress(
            f"replay binlog to {moment:%Y-%m-%d %H:%M:%S}",  # to the archive's end at most
            sum(f.size for f in files) - snapshot["position"]) as progress:
        return _replay_files(archive, files, manifest, server, load_as, moment, progress)


def _replay_files(archive: Archive, files: list[ArchivedFile], manifest: Manifest,
                  server: Server, load_as: dict[str, str], moment: datetime,
                  progress: Progress) -> dict[str, Any]:
    snapshot = manifest.consistency["binlog_snapshot"]
    until = moment.timestamp()
    clock = time.monotonic()
    applier = RowApplier(server, load_as)
    reached, transactions, events = None, 0, 0

    def replay(kind: int, timestamp: int, data: bytes) -> bool:
        """Applies one event; False once the next transaction begins after TIME."""
        nonlocal reached, transactions, events
        if kind in GTID_EVENTS or (kind == QUERY and applier.is_begin(data)):
            if timestamp > until:
                return False
            applier.begin()
        if kind == TRANSACTION_PAYLOAD:  # MySQL 8's compressed transaction: its events
            return all(replay(inner[4], timestamp, applier.framed(inner))
                       for inner in applier.payload(data))
        applier.apply(kind, data)
        events += 1
        if kind == XID or (kind == QUERY and applier.committed):
            transactions += 1
            reached = timestamp
        return True

    stopped, read = False, -snapshot["position"]  # bytes of the archive from the snapshot
    try:
        for archived in files:
            first = archived.file == snapshot["file"]
            # Closed as soon as it is left, also by an error: its read-ahead stops with it.
            with contextlib.closing(archived_events(archive, archived)) as events_of_file:
                for position, kind, timestamp, data in events_of_file:
                    if first and position < snapshot["position"]:
                        applier.note(kind, data)  # the format and table maps, nothing applied
                    elif not replay(kind, timestamp, data):
                        stopped = True  # TIME reached
                        break
                    progress.update(max(0, read + position))
            if stopped:
                break
            read += archived.size
        applier.finish()
    finally:
        applier.close()
    seconds = time.monotonic() - clock
    result = {"until": moment.isoformat(), "reached": datetime.fromtimestamp(
        reached, UTC).isoformat() if reached else manifest.finished_at.isoformat(),
              "heartbeat": applier.heartbeat,
              "transactions": transactions, "events": events, "rows": applier.rows,
              "skipped_rows": applier.skipped_rows, "replay_seconds": round(seconds, 3),
              # Where the copy stands in the archive when it took all of it: what a later
              # run compares with the archive's end to know the copy lacks nothing.
              "archive_end": None if stopped else archive_end(files),
              "events_per_second": round(events / max(seconds, 1e-6))}
    log_event("restore.replayed", f"Replayed {transactions} transactions ({applier.rows} rows) "
              f"up to {result['reached']} in {duration(seconds)}", **result)
    return result


def archive_end(files: list[ArchivedFile]) -> dict[str, Any] | None:
    """The archive's last file and its committed size: where a copy that took all of it
    stands."""
    return {"file": files[-1].file, "size": files[-1].size} if files else None


def _check_heartbeat(replayed: dict[str, Any], moment: datetime, every: float) -> None:
    """The newest heartbeat replayed is the time the data provably reached: within one
    interval before TIME, or the archive did not hold what it should have."""
    beat = replayed["heartbeat"]
    reached = datetime.fromisoformat(beat).replace(tzinfo=UTC) if beat else None
    # Binlog times are whole seconds: a beat at 12:00:07.2 is one of 12:00:07.
    if reached is None or reached.replace(microsecond=0) > moment or \
            (moment - reached).total_seconds() > every + 1:
        raise ProofFailedError(
            f"The replayed data reaches {reached or 'no heartbeat at all'} by its newest "
            f"heartbeat, not {moment:%Y-%m-%d %H:%M:%S} UTC (beats every {every:g} s): the "
            "binlog archive does not hold everything up to that time.",
            "Look at drkit binlog status (lag, gaps) and whether the streamer and its "
            "heartbeat run; restore to an earlier time.")
    replayed["reached"] = reached.isoformat()


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


def _utc(text: str) -> datetime:
    """TIME as written (ISO 8601; no zone means UTC) as a UTC moment, whole seconds."""
    try:
        moment = parse_time(text.strip())
    except ValueError:
        raise ParameterError(f"--until {text!r} is not a time.",
                             "Write it as 2026-11-27T14:03:00 (UTC), with an offset "
                             "(+09:00), or latest.") from None
    return moment.astimezone(UTC).replace(microsecond=0)
